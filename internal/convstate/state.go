// Package convstate remembers each conversation's attributes between
// exchanges, so that conversation.updated events can say what changed and
// later events carry attributes their own exchange lacks.
package convstate

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/tidwall/gjson"
)

// Store remembers each conversation's last seen attributes between
// exchanges, so that a conversation.updated event can say what changed and
// later events can carry attributes their own exchange lacks. Keys are
// opaque strings naming one conversation; values are JSON objects. The
// in-memory Memory is the default; the Caddy layer may back it with
// durable storage. Implementations must be safe for concurrent use and must
// not keep or modify the slices they are given or return.
type Store interface {
	// Get returns the attributes last recorded for key, or nil.
	Get(key string) []byte
	// Put records the attributes of key.
	Put(key string, attrs []byte)
}

// trackedAttrs are the conversation attributes the state remembers. A change
// is reported under name, Chatwoot's changed_attributes name, which
// receivers of Chatwoot-style webhooks already understand, by comparing the
// first field; the other fields travel with it, so a new assignee is never
// completed with the previous assignee's name. These are the attributes
// whose change makes Chatwoot send conversation_updated. An attribute without
// a name is remembered but never reported.
var trackedAttrs = []struct {
	name   string
	fields []string
}{
	{"status", []string{"conversation.status"}},
	{"priority", []string{"conversation.priority"}},
	{"assignee_id", []string{"conversation.assignee.id", "conversation.assignee.name", "conversation.assignee.email"}},
	{"team_id", []string{"conversation.team_id"}},
	{"snoozed_until", []string{"conversation.snoozed_until"}},
	{"label_list", []string{"conversation.labels"}},
	{"custom_attributes", []string{"conversation.attributes"}},
	{"waiting_since", []string{"conversation.waiting_since"}},
	{"first_reply_created_at", []string{"conversation.first_reply_created_at"}},
	// Whether an AI answers: ChatVolt's isAiEnabled, for later turns.
	{"", []string{"conversation.ai_enabled"}},
}

const convPrefix = "conversation."

// recordKeys are, for each of trackedAttrs, the key its fields are under
// in the stored record (assignee for conversation.assignee.id, .name and
// .email).
var recordKeys = func() []string {
	keys := make([]string, len(trackedAttrs))
	for i, a := range trackedAttrs {
		keys[i], _, _ = strings.Cut(a.fields[0][len(convPrefix):], ".")
	}
	return keys
}()

// Conv is one conversation's attributes while an exchange's events are
// derived: all of them compare with what was recorded before the exchange.
type Conv struct {
	store      Store
	key        string
	prev, next []byte
}

// Load reads the state of a conversation. Conversation ids are unique per
// account (Chatwoot display ids), so the account, when known (not empty),
// is part of the key.
func Load(store Store, conversationID, accountID string) *Conv {
	key := conversationID
	if accountID != "" {
		key = accountID + "/" + key
	}
	return &Conv{store: store, key: key, prev: store.Get(key)}
}

// Apply completes an event's entries with the recorded attributes it lacks
// and, for conversation.updated, adds conversation.changed for the recorded
// attributes it changes. A value known to be null is a value: null to "high"
// is a change. An attribute never seen before is not reported as changed:
// its previous value is unknown, not null.
//
// It reports false for an event that changes nothing, as Chatwoot sends
// none: a conversation.updated whose own attributes are all known and
// unchanged, a conversation.status_changed whose status is. A previous value
// that is unknown may have been anything, so it counts as a change.
func (c *Conv) Apply(entries []jsondoc.Entry, eventType string) ([]jsondoc.Entry, bool) {
	if c == nil {
		return entries, true
	}
	entries = entries[:len(entries):len(entries)] // never append into a slice another event shares
	var changed []byte
	news := eventType != event.ConversationUpdated && eventType != event.ConversationStatus
	recorded := c.recorded()
	for i, a := range trackedAttrs {
		cur, ok := find(entries, a.fields[0])
		if !ok {
			if recorded&(1<<i) == 0 {
				continue
			}
			for _, f := range a.fields {
				if prev := c.prevValue(f); prev.Exists() {
					entries = append(entries, jsondoc.Entry{Path: f, Raw: []byte(prev.Raw)})
				}
			}
			continue
		}
		if a.name == "" || (eventType == event.ConversationStatus && a.name != "status") {
			continue
		}
		var prev gjson.Result
		if recorded&(1<<i) != 0 {
			prev = c.prevValue(a.fields[0])
		}
		if !prev.Exists() {
			news = true
			continue
		}
		if sameJSON([]byte(prev.Raw), cur) {
			continue
		}
		news = true
		if eventType != event.ConversationUpdated {
			continue
		}
		if changed == nil {
			changed = append(changed, '[')
		} else {
			changed = append(changed, ',')
		}
		changed = append(jsondoc.AppendString(append(changed, '{'), a.name), `:{"previous_value":`...)
		changed = append(append(append(changed, prev.Raw...), `,"current_value":`...), cur...)
		changed = append(changed, "}}"...)
	}
	if changed != nil {
		if _, ok := find(entries, "conversation.changed"); !ok {
			entries = append(entries, jsondoc.Entry{Path: "conversation.changed", Raw: append(changed, ']')})
		}
	}
	c.next = c.record(entries)
	return entries, news
}

// recorded reports which of trackedAttrs the previous record has a key
// of, bit i for trackedAttrs[i]: one pass over the record, so that the
// attributes it lacks, most of them, need no lookup.
func (c *Conv) recorded() uint32 {
	var bits uint32
	if len(c.prev) == 0 {
		return 0
	}
	gjson.Parse(jsondoc.StringView(c.prev)).ForEach(func(key, _ gjson.Result) bool {
		if i := slices.Index(recordKeys, key.Str); i >= 0 {
			bits |= 1 << i
		}
		return true
	})
	return bits
}

// prevValue is the previous value of a tracked field. The record is never
// modified once stored, so it is read in place.
func (c *Conv) prevValue(field string) gjson.Result {
	return gjson.Get(jsondoc.StringView(c.prev), field[len(convPrefix):])
}

// record is the stored form of an event's attributes: the tracked fields,
// without their "conversation." prefix.
func (c *Conv) record(entries []jsondoc.Entry) []byte {
	var buf [trackedFields]jsondoc.Entry
	tracked := buf[:0]
	size := len("{}")
	for _, a := range trackedAttrs {
		for _, f := range a.fields {
			if raw, ok := find(entries, f); ok {
				tracked = append(tracked, jsondoc.Entry{Path: f[len(convPrefix):], Raw: raw})
				size += len(f) + len(raw) + len(`"":,{}`)
			}
		}
	}
	if len(tracked) == 0 {
		return nil
	}
	return jsondoc.Build(make([]byte, 0, size), tracked)
}

// trackedFields is the number of fields of trackedAttrs, which record
// gathers without allocating.
const trackedFields = 12

// Save records the attributes after the exchange when they changed.
func (c *Conv) Save() {
	if c == nil || c.next == nil || bytes.Equal(c.next, c.prev) {
		return
	}
	c.store.Put(c.key, c.next)
}

func find(entries []jsondoc.Entry, path string) ([]byte, bool) {
	e, ok := jsondoc.Find(entries, path)
	return e.Raw, ok
}

// sameJSON compares two JSON values, ignoring insignificant whitespace.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	// Compacting only removes whitespace: without any, they differ.
	if !hasSpace(a) && !hasSpace(b) {
		return false
	}
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// hasSpace reports whether b has a byte JSON counts as whitespace.
func hasSpace(b []byte) bool {
	return bytes.ContainsAny(b, " \t\r\n")
}
