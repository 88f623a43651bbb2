package convstate

import (
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
)

// BenchmarkApply is the conversation state's work for one event: load the
// record, complete the event, build the new record and save it. "turn" is
// a chat turn of a conversation seen before (what an AI chat sends on
// every message); "updated" a Chatwoot conversation_updated that moves the
// status of a conversation with an assignee back and forth.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct {
		name    string
		prev    string
		typ     string
		entries [2][]jsondoc.Entry // alternately
	}{
		{"turn", `{"ai_enabled":true}`, event.MessageReplied, [2][]jsondoc.Entry{turn, turn}},
		{"updated", `{"status":"open","priority":null,"assignee":{"id":7,"name":"Ana"},"labels":["vip"]}`, event.ConversationUpdated,
			[2][]jsondoc.Entry{statusEntries(`"resolved"`), statusEntries(`"open"`)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := NewMemory(0, 0)
			m.Put("conv", []byte(tc.prev))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c := Load(m, "conv", "")
				if _, ok := c.Apply(tc.entries[i%2], tc.typ); !ok {
					b.Fatal("the event changes nothing")
				}
				c.Save()
				i++
			}
		})
	}
}

var turn = []jsondoc.Entry{
	{Path: "conversation.id", Raw: []byte(`"conv-1"`)},
	{Path: "message.content", Raw: []byte(`"When does my order ship?"`)},
	{Path: "conversation.ai_enabled", Raw: []byte(`true`)},
}

func statusEntries(status string) []jsondoc.Entry {
	return []jsondoc.Entry{
		{Path: "conversation.id", Raw: []byte(`42`)},
		{Path: "conversation.status", Raw: []byte(status)},
		{Path: "conversation.priority", Raw: []byte(`null`)},
	}
}
