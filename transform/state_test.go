package transform

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConversationStateAcrossChatwootExchanges follows one conversation
// through the Chatwoot API with a state store: updates say what changed, and
// events fill in the attributes their own exchange lacks.
func TestConversationStateAcrossChatwootExchanges(t *testing.T) {
	d := allPresetsDeriver(t, NewMemoryState(100, time.Hour))
	steps := []struct {
		name string
		tr   traffic
		want []want
	}{
		{
			name: "a status change on a conversation never seen has no previous value to report",
			tr:   traffic{method: "POST", target: "/api/v1/accounts/2/conversations/150/toggle_status", req: "chatwoot/toggle_status.request.json", status: 200, resp: "chatwoot/toggle_status.response.json"},
			want: []want{
				{ConversationStatus, `{"account":{"id":"2"},"conversation":{"id":150,"status":"resolved"}}`},
				{ConversationUpdated, `{"account":{"id":"2"},"conversation":{"id":150,"status":"resolved"}}`},
			},
		},
		{
			name: "creating the conversation records its attributes, apart from another account's",
			tr:   traffic{method: "POST", target: "/api/v1/accounts/1/conversations", req: `{"inbox_id":3,"contact_id":42}`, status: 200, resp: "chatwoot/conversation.response.json"},
			want: []want{
				{ConversationCreated, `{"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150,"status":"open","priority":"low","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id":"1024"},"additional_attributes":{"referer":"https://shop.example.com/orders"},"created_at":1763177700,"can_reply":true,"unread_count":0,"waiting_since":1763177700,"agent_last_seen_at":0,"contact_last_seen_at":0,"last_activity_at":1763177700},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678","avatar":"https://chat.example.com/rails/active_storage/ana.png"}}`},
			},
		},
		{
			name: "a priority change reports only the priority",
			tr:   traffic{method: "PATCH", target: "/api/v1/accounts/1/conversations/150", req: "chatwoot/priority_patch.request.json", status: 200, resp: "chatwoot/priority_patch.response.json"},
			want: []want{
				{ConversationUpdated, `{"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150,"status":"open","priority":"high","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id":"1024"},"additional_attributes":{"referer":"https://shop.example.com/orders"},"created_at":1763177700,"can_reply":true,"unread_count":0,"waiting_since":1763177700,"agent_last_seen_at":0,"contact_last_seen_at":0,"last_activity_at":1763177900,
					"changed":[{"priority":{"previous_value":"low","current_value":"high"}}]},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678","avatar":"https://chat.example.com/rails/active_storage/ana.png"}}`},
			},
		},
		{
			name: "a status change is reported by both events, the update with what changed",
			tr:   traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/toggle_status", req: "chatwoot/toggle_status.request.json", status: 200, resp: "chatwoot/toggle_status.response.json"},
			want: []want{
				{ConversationStatus, `{"account":{"id":"1"},"conversation":{"id":150,"status":"resolved","priority":"high","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id":"1024"}}}`},
				{ConversationUpdated, `{"account":{"id":"1"},"conversation":{"id":150,"status":"resolved","priority":"high","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id":"1024"},
					"changed":[{"status":{"previous_value":"open","current_value":"resolved"}}]}}`},
			},
		},
		{
			name: "a new assignee is reported by id and never completed with the previous one's name",
			tr:   traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/assignments", req: `{"assignee_id":9}`, status: 200, resp: `{"id":9,"name":"Maria Silva"}`},
			want: []want{
				{ConversationUpdated, `{"account":{"id":"1"},"conversation":{"id":"150","assignee":{"id":9,"name":"Maria Silva"},"status":"resolved","priority":"high","labels":["shipping"],"attributes":{"order_id":"1024"},
					"changed":[{"assignee_id":{"previous_value":7,"current_value":9}}]}}`},
			},
		},
		{
			name: "a later message carries the conversation's attributes",
			tr:   traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/messages", req: "chatwoot/message_incoming.request.json", status: 200, resp: "chatwoot/message_incoming.response.json"},
			want: []want{
				{MessageReceived, `{"message":{"direction":"incoming","id":813,"content":"Thanks! When will it arrive?","content_type":"text","content_attributes":{},"private":false,"status":"sent","created_at":1763177820,"sender":{"id":42,"name":"Ana Lopes","email":"ana@example.com","type":"contact"}},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678"},"account":{"id":"1"},"inbox":{"id":3},
					"conversation":{"id":150,"status":"resolved","priority":"high","assignee":{"id":9,"name":"Maria Silva"},"labels":["shipping"],"attributes":{"order_id":"1024"}}}`},
			},
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			checkEvents(t, d.Derive(step.tr.exchange(t)).Events, step.want)
		})
	}
}

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
	ex := traffic{method: "PATCH", target: "/api/v1/accounts/1/conversations/150", req: "chatwoot/priority_patch.request.json", status: 200, resp: "chatwoot/priority_patch.response.json"}.exchange(t)
	for i := 0; i < 2; i++ {
		if ev := d.Derive(ex).Events[0]; ev.Get("conversation.changed").Exists() {
			t.Fatalf("conversation.changed without a state store: %s", ev.Data)
		}
	}
}
