package convstate

import (
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
)

func TestApplyComparesWithTheRecordedAttributes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		recorded string // "" when the conversation was never seen
		typ      string
		entries  map[string]string
		news     bool
		changed  string            // conversation.changed, "" for none
		filled   map[string]string // entries taken from the record
	}{
		{
			name: "a status that changed is reported with its previous value", recorded: `{"status":"open"}`,
			typ: event.ConversationUpdated, entries: map[string]string{"conversation.status": `"resolved"`},
			news: true, changed: `[{"status":{"previous_value":"open","current_value":"resolved"}}]`,
		},
		{
			name: "the same labels written with other spacing are no change", recorded: `{"labels":["vip","new"]}`,
			typ: event.ConversationUpdated, entries: map[string]string{"conversation.labels": `[ "vip", "new" ]`},
		},
		{
			name: "spacing inside a string is a change", recorded: `{"attributes":{"plan":"pro"}}`,
			typ: event.ConversationUpdated, entries: map[string]string{"conversation.attributes": `{"plan":"pro "}`},
			news: true, changed: `[{"custom_attributes":{"previous_value":{"plan":"pro"},"current_value":{"plan":"pro "}}}]`,
		},
		{
			name: "null to a value is a change", recorded: `{"priority":null}`,
			typ: event.ConversationUpdated, entries: map[string]string{"conversation.priority": `"high"`},
			news: true, changed: `[{"priority":{"previous_value":null,"current_value":"high"}}]`,
		},
		{
			name: "an attribute never recorded is news but no change", recorded: `{"status":"open"}`,
			typ: event.ConversationUpdated, entries: map[string]string{"conversation.status": `"open"`, "conversation.priority": `"low"`},
			news: true, filled: map[string]string{},
		},
		{
			name: "a turn gets the recorded attributes it lacks, the assignee whole", recorded: `{"status":"open","assignee":{"id":7,"name":"Ana"},"ai_enabled":true}`,
			typ: event.MessageReplied, entries: map[string]string{"message.content": `"Hi"`},
			news:   true,
			filled: map[string]string{"conversation.status": `"open"`, "conversation.assignee.id": `7`, "conversation.assignee.name": `"Ana"`, "conversation.ai_enabled": `true`},
		},
		{
			name: "a turn of a new conversation gets nothing", typ: event.MessageReplied, entries: map[string]string{"message.content": `"Hi"`},
			news: true, filled: map[string]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory(0, 0)
			if tc.recorded != "" {
				m.Put("c1", []byte(tc.recorded))
			}
			var entries []jsondoc.Entry
			for path, raw := range tc.entries {
				entries = append(entries, jsondoc.Entry{Path: path, Raw: []byte(raw)})
			}
			out, news := Load(m, "c1", "").Apply(entries, tc.typ)
			if news != tc.news {
				t.Errorf("news = %t, want %t", news, tc.news)
			}
			changed, _ := find(out, "conversation.changed")
			if string(changed) != tc.changed {
				t.Errorf("conversation.changed = %s, want %s", changed, tc.changed)
			}
			if tc.filled == nil {
				return
			}
			got := map[string]string{}
			for _, e := range out[len(entries):] {
				got[e.Path] = string(e.Raw)
			}
			if len(got) != len(tc.filled) {
				t.Errorf("filled %v, want %v", got, tc.filled)
			}
			for path, raw := range tc.filled {
				if got[path] != raw {
					t.Errorf("%s = %q, want %q", path, got[path], raw)
				}
			}
		})
	}
}

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
