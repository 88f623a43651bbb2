package caddymodule

import (
	"encoding/binary"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/cluster"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// stateBacking keeps conversation memory beyond this process's: keep wraps
// the in-memory store and returns the store to use and what to call when it
// is replaced (nil if nothing).
type stateBacking interface {
	keep(mem *convstate.Memory, ttl time.Duration, logger *zap.Logger) (convstate.Store, func())
}

// boltBacking writes the memory behind to the bbolt outbox, from which a
// restart reloads it.
type boltBacking struct{ kv delivery.KV }

func (b boltBacking) keep(mem *convstate.Memory, ttl time.Duration, logger *zap.Logger) (convstate.Store, func()) {
	s := newDurableState(mem, b.kv, ttl, logger)
	return s, s.close
}

// natsBacking shares the memory with every instance through a key-value
// bucket, whose own TTL (set when the outbox opens) expires idle
// conversations.
type natsBacking struct{ c *cluster.Cluster }

func (b natsBacking) keep(mem *convstate.Memory, _ time.Duration, _ *zap.Logger) (convstate.Store, func()) {
	return b.c.State(mem), nil
}

// stateFlushEvery is how often remembered conversations are written to the
// outbox. State is not an event: losing the last second of it in a crash
// costs at most one changed_attributes entry, and writing it behind keeps
// the outbox's fsyncs for events.
const stateFlushEvery = time.Second

// durableState is conversation memory kept in a durable outbox: the memory
// store serves every lookup, and changes are written behind to the outbox's
// key-value space, from which a restart reloads them. On disk each value is
// the time of its last change (unix seconds, 8 bytes) and the attributes.
//
// What expires from memory is deleted from disk too, so that the stored
// state stays as small as the remembered one: written keeps when each
// stored conversation last changed, and writes lists the writes oldest
// first, so that a flush finds what expired without looking at the rest.
type durableState struct {
	*convstate.Memory
	kv     delivery.KV
	ttl    time.Duration
	logger *zap.Logger
	now    func() time.Time // time.Now; tests move it

	mu      sync.Mutex
	dirty   map[string][]byte
	written map[string]int64
	// writes are the flushed writes in the order of their times, from
	// head on; one whose key was written again since is stale and skipped.
	writes []stateWrite
	head   int
	stop   chan struct{}
	done   chan struct{}
}

func newDurableState(mem *convstate.Memory, kv delivery.KV, ttl time.Duration, logger *zap.Logger) *durableState {
	s := openDurableState(mem, kv, ttl, logger, time.Now)
	go s.flushLoop()
	return s
}

// openDurableState loads what a previous run remembered; flushes are the
// caller's.
func openDurableState(mem *convstate.Memory, kv delivery.KV, ttl time.Duration, logger *zap.Logger, now func() time.Time) *durableState {
	s := &durableState{Memory: mem, kv: kv, ttl: ttl, logger: logger, now: now,
		dirty: map[string][]byte{}, written: map[string]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	s.load()
	return s
}

// load restores what a previous run remembered, oldest first so that the
// newest end up most recently used, and forgets what has expired.
func (s *durableState) load() {
	type entry struct {
		key   string
		at    int64
		attrs []byte
	}
	var entries []entry
	var expired []string
	cutoff := s.now().Add(-s.ttl).Unix()
	err := s.kv.Load(func(key string, val []byte) {
		if len(val) < 8 {
			expired = append(expired, key)
			return
		}
		at := int64(binary.BigEndian.Uint64(val))
		if s.ttl > 0 && at < cutoff {
			expired = append(expired, key)
			return
		}
		entries = append(entries, entry{key, at, append([]byte(nil), val[8:]...)})
	})
	if err != nil {
		s.logger.Warn("conversation state not restored from the outbox; it starts empty", zap.Error(err))
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].at < entries[j].at })
	for _, e := range entries {
		s.Memory.Put(e.key, e.attrs)
		s.wrote(e.key, e.at)
	}
	if len(expired) > 0 {
		if err := s.kv.Write(nil, expired); err != nil {
			s.logger.Warn("expired conversation state not removed from the outbox", zap.Error(err))
		}
	}
}

// Put implements convstate.Store.
func (s *durableState) Put(key string, attrs []byte) {
	s.Memory.Put(key, attrs)
	val := make([]byte, 8, 8+len(attrs))
	binary.BigEndian.PutUint64(val, uint64(s.now().Unix()))
	s.mu.Lock()
	s.dirty[key] = append(val, attrs...)
	s.mu.Unlock()
}

func (s *durableState) flushLoop() {
	defer close(s.done)
	tick := time.NewTicker(stateFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.flush()
		case <-s.stop:
			s.flush()
			return
		}
	}
}

// flush writes the changes since the last flush and deletes what has
// expired since.
func (s *durableState) flush() {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = map[string][]byte{}
	var expired []string
	for key, val := range dirty {
		s.wrote(key, int64(binary.BigEndian.Uint64(val)))
	}
	if s.ttl > 0 {
		cutoff := s.now().Add(-s.ttl).Unix()
		for ; s.head < len(s.writes) && s.writes[s.head].at < cutoff; s.head++ {
			w := s.writes[s.head]
			s.writes[s.head] = stateWrite{}
			if s.written[w.key] == w.at {
				expired = append(expired, w.key)
				delete(s.written, w.key)
			}
		}
		s.compact()
	}
	s.mu.Unlock()
	if len(dirty) == 0 && len(expired) == 0 {
		return
	}
	if err := s.kv.Write(dirty, expired); err != nil {
		s.logger.Warn("conversation state not written to the outbox", zap.Int("conversations", len(dirty)), zap.Error(err))
	}
}

// stateWrite is one flushed write of a conversation's state.
type stateWrite struct {
	key string
	at  int64
}

// wrote notes that key was stored as of at; s.mu is held or s not yet
// shared. Writes come nearly in time order (a Put's time is taken before
// its lock), so the place is found from the end.
func (s *durableState) wrote(key string, at int64) {
	s.written[key] = at
	if s.ttl <= 0 {
		return // nothing expires
	}
	i := len(s.writes)
	for i > s.head && s.writes[i-1].at > at {
		i--
	}
	s.writes = slices.Insert(s.writes, i, stateWrite{key, at})
}

// compact drops the expired and the stale writes once they are most of
// the list, so that it stays proportional to the conversations stored.
func (s *durableState) compact() {
	if len(s.writes)-s.head <= 2*len(s.written)+64 && s.head <= len(s.writes)/2 {
		return
	}
	live := make([]stateWrite, 0, len(s.written))
	for _, w := range s.writes[s.head:] {
		if s.written[w.key] == w.at {
			live = append(live, w)
		}
	}
	s.writes, s.head = live, 0
}

// close writes what is left; the outbox must still be open.
func (s *durableState) close() {
	close(s.stop)
	<-s.done
}
