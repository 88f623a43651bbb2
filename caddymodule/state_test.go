package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// A Chatwoot backend whose conversation 150 changes priority, then status:
// the receiver learns what changed, with previous and current values.
func TestConversationChangesCarryPreviousValues(t *testing.T) {
	conversation := func(status, priority string) string {
		return fmt.Sprintf(`{"id":150,"account_id":1,"inbox_id":3,"status":%q,"priority":%q,"meta":{"sender":{"id":42,"name":"Ana Lopes"}}}`, status, priority)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/toggle_status"):
			io.WriteString(w, `{"meta":{},"payload":{"success":true,"conversation_id":150,"current_status":"resolved","snoozed_until":null}}`)
		default:
			io.WriteString(w, conversation("open", gjson.GetBytes(body, "priority").String()))
		}
	}))
	defer backend.Close()
	rcv, std := newReceiver(t), newReceiver(t)
	loadCaddy(t, fmt.Sprintf(`source chatwoot
		webhook %s/hook {
			schema voxsig
		}
		webhook %s/hook {
			schema standard
			events conversation.status_changed
		}`, rcv.URL, std.URL), "reverse_proxy "+backend.Listener.Addr().String(), "", "", "conversation_state 1000 1h")

	send := func(method, path, body string) {
		req, _ := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s", withModulePort, path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Deliveries for one exchange may arrive in any order: collect by event.
	collect := func(n int) map[string][]byte {
		got := map[string][]byte{}
		for i := 0; i < n; i++ {
			d := rcv.next(t, 2*time.Second).body
			got[gjson.GetBytes(d, "event").String()] = d
		}
		return got
	}
	send(http.MethodPatch, "/api/v1/accounts/1/conversations/150", `{"priority":"low"}`)
	collect(1) // first sight: nothing to compare with yet
	send(http.MethodPatch, "/api/v1/accounts/1/conversations/150", `{"priority":"high"}`)
	updated := collect(1)["conversation_updated"]
	if got := gjson.GetBytes(updated, "changed_attributes").Raw; !jsonEqual([]byte(got), []byte(`[{"priority":{"current_value":"high","previous_value":"low"}}]`)) {
		t.Errorf("changed_attributes %s, want priority low -> high\n%s", got, updated)
	}

	send(http.MethodPost, "/api/v1/accounts/1/conversations/150/toggle_status", `{"status":"resolved"}`)
	got := collect(2)
	if status := gjson.GetBytes(got["conversation_status_changed"], "status").String(); status != "resolved" {
		t.Errorf("conversation_status_changed status %q, want resolved: %s", status, got["conversation_status_changed"])
	}
	if ch := gjson.GetBytes(got["conversation_updated"], "changed_attributes").Raw; !jsonEqual([]byte(ch), []byte(`[{"status":{"current_value":"resolved","previous_value":"open"}}]`)) {
		t.Errorf("status change: changed_attributes %s", ch)
	}
	// The status change exchange says nothing of priority; the memory does.
	canonical := std.next(t, 2*time.Second).body
	if p := gjson.GetBytes(canonical, "data.conversation.priority").String(); p != "high" {
		t.Errorf("priority %q, want high carried from the conversation's memory: %s", p, canonical)
	}
}

// patchPriority sets Chatwoot conversation 150's priority through the
// Caddy on port.
func patchPriority(t *testing.T, port int, priority string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPatch, fmt.Sprintf("http://localhost:%d/api/v1/accounts/1/conversations/150", port),
		strings.NewReader(fmt.Sprintf(`{"priority":%q}`, priority)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// With a durable outbox, a restart does not forget what the conversations
// looked like: the first change after it still has its previous value.
func TestConversationStateSurvivesRestart(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":150,"account_id":1,"inbox_id":3,"status":"open","priority":%q}`, gjson.GetBytes(body, "priority").String())
	}))
	defer backend.Close()
	rcv := newReceiver(t)
	outbox := filepath.Join(t.TempDir(), "outbox.db")
	chat := fmt.Sprintf("source chatwoot\nwebhook %s/hook {\nschema voxsig\n}", rcv.URL)
	patch := func(priority string) []byte {
		patchPriority(t, withModulePort, priority)
		return rcv.next(t, 2*time.Second).body
	}
	loadCaddy(t, chat, "reverse_proxy "+backend.Listener.Addr().String(), "", "", "outbox bbolt "+outbox)
	patch("low")
	// Another outbox in between stops the first pipeline, as a restart does.
	loadCaddy(t, chat, "reverse_proxy "+backend.Listener.Addr().String())
	loadCaddy(t, chat, "reverse_proxy "+backend.Listener.Addr().String(), "", "", "outbox bbolt "+outbox)
	got := patch("high")
	if ch := gjson.GetBytes(got, "changed_attributes").Raw; !jsonEqual([]byte(ch), []byte(`[{"priority":{"current_value":"high","previous_value":"low"}}]`)) {
		t.Errorf("after a restart: changed_attributes %s, want priority low -> high", ch)
	}
}

func TestConversationStateOnDiskIsPrunedAsItExpires(t *testing.T) {
	store, err := delivery.OpenBolt(filepath.Join(t.TempDir(), "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	kv := store.KeyValues("conversations")
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	stored := func() []string {
		var keys []string
		if err := kv.Load(func(k string, _ []byte) { keys = append(keys, k) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		return keys
	}

	s := openDurableState(convstate.NewMemory(10, time.Hour), kv, time.Hour, zap.NewNop(), clock)
	s.Put("old", []byte(`{"status":"open"}`))
	s.flush()
	now = now.Add(40 * time.Minute)
	s.Put("new", []byte(`{"status":"open"}`))
	s.flush()
	if got := stored(); !slices.Equal(got, []string{"new", "old"}) {
		t.Fatalf("stored %v, want both", got)
	}
	now = now.Add(30 * time.Minute) // old is 70 minutes old, new 30
	s.flush()
	if got := stored(); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("stored %v after old expired, want [new]", got)
	}
	// A conversation written again lives from its last write.
	s.Put("again", []byte(`{"status":"open"}`))
	s.flush()
	now = now.Add(40 * time.Minute)
	s.Put("again", []byte(`{"status":"pending"}`))
	s.flush()
	now = now.Add(30 * time.Minute) // written 70 and 30 minutes ago
	s.flush()
	if got := stored(); !slices.Equal(got, []string{"again"}) {
		t.Fatalf("stored %v, want [again]: its last write is within the TTL", got)
	}
	// What a restart loads is pruned the same way.
	now = now.Add(time.Hour)
	openDurableState(convstate.NewMemory(10, time.Hour), kv, time.Hour, zap.NewNop(), clock)
	if got := stored(); len(got) != 0 {
		t.Fatalf("stored %v after a restart past the TTL, want nothing", got)
	}
}

// BenchmarkDurableStateIdleFlush is the once-a-second flush of a durable
// conversation state when nothing changed and nothing expired, with
// 100 000 conversations written within the TTL (a busy day of chats, each
// its own conversation).
func BenchmarkDurableStateIdleFlush(b *testing.B) {
	store, err := delivery.OpenBolt(filepath.Join(b.TempDir(), "outbox.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	now := time.Unix(1_700_000_000, 0)
	s := openDurableState(convstate.NewMemory(0, 24*time.Hour), store.KeyValues("conversations"), 24*time.Hour, zap.NewNop(), func() time.Time { return now })
	for i := range 100_000 {
		s.Put(fmt.Sprintf("conv-%d", i), []byte(`{"ai_enabled":true}`))
		if i%1000 == 0 {
			now = now.Add(time.Second)
		}
	}
	s.flush()
	b.ReportAllocs()
	for b.Loop() {
		s.flush()
	}
}
