// Package lru is a bounded map that forgets its least recently used keys
// beyond a maximum count, and keys past their expiry.
package lru

import (
	"container/list"
	"sync"
	"time"
)

// Cache maps strings to values of type V. It is safe for concurrent use.
type Cache[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *entry[V], most recently used first
	byKey map[string]*list.Element
}

type entry[V any] struct {
	key     string
	val     V
	expires time.Time // zero: never
}

// New returns an empty cache of at most max keys (max must be positive).
func New[V any](max int) *Cache[V] {
	return &Cache[V]{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// Get returns key's value, unless key is missing or expired at now (then it
// is forgotten). A positive renew moves the key's expiry to now+renew, for
// entries that live as long as they are used.
func (c *Cache[V]) Get(key string, now time.Time, renew time.Duration) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*entry[V])
	if !e.expires.IsZero() && now.After(e.expires) {
		c.order.Remove(el)
		delete(c.byKey, key)
		var zero V
		return zero, false
	}
	if renew > 0 {
		e.expires = now.Add(renew)
	}
	c.order.MoveToFront(el)
	return e.val, true
}

// Put stores val under key until expires (never when zero), as the most
// recently used key, and forgets the least recently used beyond the maximum.
func (c *Cache[V]) Put(key string, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*entry[V])
		e.val, e.expires = val, expires
		c.order.MoveToFront(el)
		return
	}
	c.byKey[key] = c.order.PushFront(&entry[V]{key: key, val: val, expires: expires})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*entry[V]).key)
	}
}

// Len returns the number of keys held, expired ones included until they are
// next looked up or pushed out.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
