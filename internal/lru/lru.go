// Package lru is a bounded map that forgets its least recently used keys
// beyond a maximum count, and keys past their expiry.
package lru

import (
	"sync"
	"time"
)

// Cache maps strings to values of type V. It is safe for concurrent use.
type Cache[V any] struct {
	mu  sync.Mutex
	max int
	// root links the entries in a ring, most recently used first
	// (root.next) and least recently used last (root.prev): each entry is
	// one allocation, its own list element.
	root  entry[V]
	byKey map[string]*entry[V]
}

type entry[V any] struct {
	key        string
	val        V
	expires    time.Time // zero: never
	prev, next *entry[V]
}

// New returns an empty cache of at most max keys (max must be positive).
func New[V any](max int) *Cache[V] {
	c := &Cache[V]{max: max, byKey: map[string]*entry[V]{}}
	c.root.prev, c.root.next = &c.root, &c.root
	return c
}

// Get returns key's value, unless key is missing or expired at now (then it
// is forgotten). A positive renew moves the key's expiry to now+renew, for
// entries that live as long as they are used.
func (c *Cache[V]) Get(key string, now time.Time, renew time.Duration) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		var zero V
		return zero, false
	}
	if !e.expires.IsZero() && now.After(e.expires) {
		c.remove(e)
		var zero V
		return zero, false
	}
	if renew > 0 {
		e.expires = now.Add(renew)
	}
	c.toFront(e)
	return e.val, true
}

// Put stores val under key until expires (never when zero), as the most
// recently used key, and forgets the least recently used beyond the maximum.
func (c *Cache[V]) Put(key string, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		e.val, e.expires = val, expires
		c.toFront(e)
		return
	}
	e := &entry[V]{key: key, val: val, expires: expires}
	c.byKey[key] = e
	c.link(e)
	for len(c.byKey) > c.max {
		c.remove(c.root.prev)
	}
}

// Len returns the number of keys held, expired ones included until they are
// next looked up or pushed out.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// link puts e first in the ring.
func (c *Cache[V]) link(e *entry[V]) {
	e.prev, e.next = &c.root, c.root.next
	e.next.prev = e
	c.root.next = e
}

// unlink takes e out of the ring.
func (c *Cache[V]) unlink(e *entry[V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *Cache[V]) toFront(e *entry[V]) {
	if c.root.next != e {
		c.unlink(e)
		c.link(e)
	}
}

// remove forgets e.
func (c *Cache[V]) remove(e *entry[V]) {
	c.unlink(e)
	delete(c.byKey, e.key)
}
