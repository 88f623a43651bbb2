package convstate

import (
	"bytes"
	"container/list"
	"sync"
	"time"
)

// Memory is an in-memory Store: least recently used conversations
// are forgotten beyond a maximum count, and any conversation unused for the
// TTL.
type Memory struct {
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

// DefaultEntries is the number of conversations a Memory keeps
// when it is given no maximum.
const DefaultEntries = 10000

// NewMemory returns a store of at most maxEntries conversations
// (DefaultEntries when maxEntries <= 0), each forgotten after ttl
// without use (never when ttl <= 0).
func NewMemory(maxEntries int, ttl time.Duration) *Memory {
	if maxEntries <= 0 {
		maxEntries = DefaultEntries
	}
	return &Memory{max: maxEntries, ttl: ttl, now: time.Now, order: list.New(), byKey: map[string]*list.Element{}}
}

// Get implements Store.
func (m *Memory) Get(key string) []byte {
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

// Put implements Store.
func (m *Memory) Put(key string, attrs []byte) {
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
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
