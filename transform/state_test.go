package transform

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/presetcases"
)

func TestAIStateIsRememberedForLaterTurns(t *testing.T) {
	d := allPresetsDeriver(t, NewMemoryState(10, 0))
	turn := func(status int, resp string) Event {
		h := jsonHeader()
		h.Set("X-Conversation-Id", "conv-ai")
		ex := &Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: h, RequestBody: []byte(chatRequest), Status: status}
		if resp != "" {
			ex.ResponseHeader, ex.ResponseBody = jsonHeader(), []byte(resp)
		}
		return d.Derive(ex).Events[0]
	}
	if ev := turn(200, chatAnswer); ev.Type != MessageReplied || ev.Get("conversation.ai_enabled").Raw != "true" {
		t.Fatalf("answered turn: %s %s", ev.Type, ev.Data)
	}
	if ev := turn(0, ""); ev.Type != MessageReceived || ev.Get("conversation.ai_enabled").Raw != "true" {
		t.Errorf("unanswered later turn should still say the AI is on: %s %s", ev.Type, ev.Data)
	}
}

// fakeClock is a settable time source for MemoryState.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestMemoryStateForgetsLeastRecentlyUsed(t *testing.T) {
	m := NewMemoryState(2, 0)
	m.Put("a", []byte(`{"status":"open"}`))
	m.Put("b", []byte(`{"status":"pending"}`))
	m.Get("a") // a is now the most recently used
	m.Put("c", []byte(`{"status":"resolved"}`))
	if m.Get("b") != nil {
		t.Error("b should have been pushed out")
	}
	if string(m.Get("a")) != `{"status":"open"}` || string(m.Get("c")) != `{"status":"resolved"}` {
		t.Errorf("a and c should remain: %s %s", m.Get("a"), m.Get("c"))
	}
	if m.Len() != 2 {
		t.Errorf("len %d, want 2", m.Len())
	}
}

func TestMemoryStateForgetsAfterTTLWithoutUse(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemoryState(10, time.Minute)
	m.now = clock.now
	m.Put("a", []byte(`{}`))
	m.Put("b", []byte(`{}`))
	clock.t = clock.t.Add(50 * time.Second)
	if m.Get("a") == nil {
		t.Fatal("a expired too early")
	}
	clock.t = clock.t.Add(50 * time.Second) // a was used 50 s ago, b 100 s ago
	if m.Get("a") == nil {
		t.Error("a was used within the TTL and should remain")
	}
	if m.Get("b") != nil {
		t.Error("b was unused for longer than the TTL and should be gone")
	}
}

func TestMemoryStateKeepsItsOwnCopy(t *testing.T) {
	m := NewMemoryState(0, 0)
	buf := []byte(`{"status":"open"}`)
	m.Put("a", buf)
	copy(buf, `{"status":"xxxx"}`)
	if got := string(m.Get("a")); got != `{"status":"open"}` {
		t.Errorf("stored value changed with the caller's buffer: %s", got)
	}
}

func TestMemoryStateIsSafeForConcurrentUse(t *testing.T) {
	m := NewMemoryState(50, time.Hour)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				key := fmt.Sprint((g * i) % 80)
				m.Put(key, []byte(fmt.Sprintf(`{"n":%d}`, i)))
				m.Get(key)
			}
		}()
	}
	wg.Wait()
	if m.Len() > 50 {
		t.Errorf("len %d exceeds the maximum", m.Len())
	}
}

func TestDeriverWithoutStateAddsNothing(t *testing.T) {
	d := allPresetsDeriver(t, nil)
	ex := exchange(t, presetcases.Exchange{Method: "PATCH", Target: "/api/v1/accounts/1/conversations/150",
		Request: "chatwoot/priority_patch.request.json", Status: 200, Response: "chatwoot/priority_patch.response.json"})
	for i := 0; i < 2; i++ {
		if ev := d.Derive(ex).Events[0]; ev.Get("conversation.changed").Exists() {
			t.Fatalf("conversation.changed without a state store: %s", ev.Data)
		}
	}
}
