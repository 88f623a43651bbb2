package derive

import (
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/presetcases"
)

func TestAIStateIsRememberedForLaterTurns(t *testing.T) {
	d := allPresetsDeriver(t, convstate.NewMemory(10, 0))
	turn := func(status int, resp string) event.Event {
		h := jsonHeader()
		h.Set("X-Conversation-Id", "conv-ai")
		ex := &capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: h, RequestBody: []byte(chatRequest), Status: status}
		if resp != "" {
			ex.ResponseHeader, ex.ResponseBody = jsonHeader(), []byte(resp)
		}
		return d.Derive(ex).Events[0]
	}
	if ev := turn(200, chatAnswer); ev.Type != event.MessageReplied || ev.Get("conversation.ai_enabled").Raw != "true" {
		t.Fatalf("answered turn: %s %s", ev.Type, ev.Data)
	}
	if ev := turn(0, ""); ev.Type != event.MessageReceived || ev.Get("conversation.ai_enabled").Raw != "true" {
		t.Errorf("unanswered later turn should still say the AI is on: %s %s", ev.Type, ev.Data)
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

// Events are built in space that the next exchange reuses: the state must
// keep its conversations under ids of its own.
func TestStateOfAConversationOutlivesLaterExchanges(t *testing.T) {
	state := convstate.NewMemory(10, 0)
	d := allPresetsDeriver(t, state)
	for _, conv := range []string{"conv-a", "conv-b", "conv-c"} {
		h := jsonHeader()
		h.Set("X-Conversation-Id", conv)
		d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: h, RequestBody: []byte(chatRequest),
			Status: 200, ResponseHeader: jsonHeader(), ResponseBody: []byte(chatAnswer)})
	}
	for _, conv := range []string{"conv-a", "conv-b", "conv-c"} {
		if got := string(state.Get(conv)); got != `{"ai_enabled":true}` {
			t.Errorf("state of %s: %q, want the AI on", conv, got)
		}
	}
}
