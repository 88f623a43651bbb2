package convstate

import (
	"bytes"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/lru"
)

// Memory is an in-memory Store: least recently used conversations
// are forgotten beyond a maximum count, and any conversation unused for the
// TTL.
type Memory struct {
	ttl   time.Duration
	now   func() time.Time
	cache *lru.Cache[[]byte]
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
	return &Memory{ttl: ttl, now: time.Now, cache: lru.New[[]byte](maxEntries)}
}

// Get implements Store.
func (m *Memory) Get(key string) []byte {
	attrs, _ := m.cache.Get(key, m.now(), m.ttl)
	return attrs
}

// Put implements Store.
func (m *Memory) Put(key string, attrs []byte) {
	var expires time.Time
	if m.ttl > 0 {
		expires = m.now().Add(m.ttl)
	}
	m.cache.Put(key, bytes.Clone(attrs), expires)
}

// Len returns the number of conversations held, expired ones included until
// they are next looked up or pushed out.
func (m *Memory) Len() int { return m.cache.Len() }
