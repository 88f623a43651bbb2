package transform

import (
	"bytes"
	"container/list"
	"encoding/json"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// StateStore remembers each conversation's last seen attributes between
// exchanges, so that a conversation.updated event can say what changed and
// later events can carry attributes their own exchange lacks. Keys are
// opaque strings naming one conversation; values are JSON objects. The
// in-memory MemoryState is the default; the Caddy layer may back it with
// durable storage. Implementations must be safe for concurrent use and must
// not keep or modify the slices they are given or return.
type StateStore interface {
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

// convState is one conversation's attributes while an exchange's events are
// derived: all of them compare with what was recorded before the exchange.
type convState struct {
	store      StateStore
	key        string
	prev, next []byte
}

// loadConv reads the state of the event's conversation; nil when the event
// has no conversation id. Conversation ids are unique per account (Chatwoot
// display ids), so the account is part of the key.
func loadConv(store StateStore, ev *builtData) *convState {
	id, ok := ev.get("conversation.id")
	if !ok {
		return nil
	}
	key := id.String()
	if acc, ok := ev.get("account.id"); ok {
		key = acc.String() + "/" + key
	}
	return &convState{store: store, key: key, prev: store.Get(key)}
}

// apply completes an event's entries with the recorded attributes it lacks
// and, for conversation.updated, adds conversation.changed for the recorded
// attributes it changes. A value known to be null is a value: null to "high"
// is a change. An attribute never seen before is not reported as changed:
// its previous value is unknown, not null.
//
// It reports false for an event that changes nothing, as Chatwoot sends
// none: a conversation.updated whose own attributes are all known and
// unchanged, a conversation.status_changed whose status is. A previous value
// that is unknown may have been anything, so it counts as a change.
func (c *convState) apply(entries []docEntry, eventType string) ([]docEntry, bool) {
	if c == nil {
		return entries, true
	}
	entries = entries[:len(entries):len(entries)] // never append into a slice another event shares
	var changed []byte
	news := eventType != ConversationUpdated && eventType != ConversationStatus
	for _, a := range trackedAttrs {
		cur, ok := findEntry(entries, a.fields[0])
		if !ok {
			for _, f := range a.fields {
				if prev := gjson.GetBytes(c.prev, f[len(convPrefix):]); prev.Exists() {
					entries = append(entries, docEntry{path: f, raw: []byte(prev.Raw)})
				}
			}
			continue
		}
		if a.name == "" || (eventType == ConversationStatus && a.name != "status") {
			continue
		}
		prev := gjson.GetBytes(c.prev, a.fields[0][len(convPrefix):])
		if !prev.Exists() {
			news = true
			continue
		}
		if sameJSON([]byte(prev.Raw), cur) {
			continue
		}
		news = true
		if eventType != ConversationUpdated {
			continue
		}
		if changed == nil {
			changed = append(changed, '[')
		} else {
			changed = append(changed, ',')
		}
		changed = append(appendString(append(changed, '{'), a.name), `:{"previous_value":`...)
		changed = append(append(append(changed, prev.Raw...), `,"current_value":`...), cur...)
		changed = append(changed, "}}"...)
	}
	if changed != nil {
		if _, ok := findEntry(entries, "conversation.changed"); !ok {
			entries = append(entries, docEntry{path: "conversation.changed", raw: append(changed, ']')})
		}
	}
	c.next = c.record(entries)
	return entries, news
}

// record is the stored form of an event's attributes: the tracked fields,
// without their "conversation." prefix.
func (c *convState) record(entries []docEntry) []byte {
	var tracked []docEntry
	for _, a := range trackedAttrs {
		for _, f := range a.fields {
			if raw, ok := findEntry(entries, f); ok {
				tracked = append(tracked, docEntry{path: f[len(convPrefix):], raw: raw})
			}
		}
	}
	if len(tracked) == 0 {
		return nil
	}
	return buildDoc(nil, tracked)
}

// save records the attributes after the exchange when they changed.
func (c *convState) save() {
	if c == nil || c.next == nil || bytes.Equal(c.next, c.prev) {
		return
	}
	c.store.Put(c.key, c.next)
}

// sameJSON compares two JSON values, ignoring insignificant whitespace.
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// MemoryState is an in-memory StateStore: least recently used conversations
// are forgotten beyond a maximum count, and any conversation unused for the
// TTL.
type MemoryState struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	order *list.List // of *memEntry, most recently used first
	byKey map[string]*list.Element
}

type memEntry struct {
	key   string
	attrs []byte
	used  time.Time
}

// DefaultStateEntries is the number of conversations a MemoryState keeps
// when it is given no maximum.
const DefaultStateEntries = 10000

// NewMemoryState returns a store of at most maxEntries conversations
// (DefaultStateEntries when maxEntries <= 0), each forgotten after ttl
// without use (never when ttl <= 0).
func NewMemoryState(maxEntries int, ttl time.Duration) *MemoryState {
	if maxEntries <= 0 {
		maxEntries = DefaultStateEntries
	}
	return &MemoryState{max: maxEntries, ttl: ttl, now: time.Now, order: list.New(), byKey: map[string]*list.Element{}}
}

// Get implements StateStore.
func (m *MemoryState) Get(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byKey[key]
	if !ok {
		return nil
	}
	e := el.Value.(*memEntry)
	now := m.now()
	if m.ttl > 0 && now.Sub(e.used) > m.ttl {
		m.order.Remove(el)
		delete(m.byKey, key)
		return nil
	}
	e.used = now
	m.order.MoveToFront(el)
	return e.attrs
}

// Put implements StateStore.
func (m *MemoryState) Put(key string, attrs []byte) {
	attrs = bytes.Clone(attrs)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if el, ok := m.byKey[key]; ok {
		e := el.Value.(*memEntry)
		e.attrs, e.used = attrs, now
		m.order.MoveToFront(el)
		return
	}
	m.byKey[key] = m.order.PushFront(&memEntry{key: key, attrs: attrs, used: now})
	for m.order.Len() > m.max {
		oldest := m.order.Back()
		m.order.Remove(oldest)
		delete(m.byKey, oldest.Value.(*memEntry).key)
	}
}

// Len returns the number of conversations held, expired ones included until
// they are next looked up or pushed out.
func (m *MemoryState) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
