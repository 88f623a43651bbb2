package delivery

import (
	"container/heap"
	"slices"
	"time"
)

// entry is what the engine keeps in memory of a pending record: what
// scheduling, the limits and the next Save need, without the body, which
// is read from the Store when an attempt is due.
type entry struct {
	seq uint64
	id  string
	// identity is the endpoint identity the message is delivered with
	// (Message.Identity), set from the endpoint's when it was empty.
	identity   string
	lane       string
	size       int // len(Body), counted against MaxQueuedBytes
	attempts   int
	lastStatus int
	lastError  string
	next       time.Time
	created    time.Time
	// retire, set while the entry is in flight, says what to do after the
	// attempt instead of retrying: bury it with this reason, or delete it
	// (ReasonPurged).
	retire string
}

func newEntry(r *Record) *entry {
	return &entry{
		seq: r.Seq, id: r.ID, identity: r.Identity, lane: r.Lane, size: len(r.Body),
		attempts: r.Attempts, lastStatus: r.LastStatus, lastError: r.LastError,
		next: r.Next, created: r.Created,
	}
}

// fill sets on rec, loaded from the store, what memory holds: the identity
// it is bound to (chosen when the stored one was empty) and its schedule
// (moved on when the store could not be read).
func (en *entry) fill(rec *Record) {
	rec.Identity, rec.Attempts, rec.Next = en.identity, en.attempts, en.next
	rec.LastStatus, rec.LastError = en.lastStatus, en.lastError
}

// laneKey names a lane within an endpoint. An ordered endpoint keys lanes by
// Message.Lane; an unordered one gives every message a lane of its own (its
// Seq), so the same machinery serves both.
type laneKey struct {
	name string
	seq  uint64
}

// lane is a FIFO of pending records of which only the head may be in
// flight.
type lane struct {
	key   laneKey
	recs  []*entry // Seq order
	busy  bool     // head in flight
	index int      // position in endpointState.ready, -1 if not there
}

func (l *lane) head() *entry { return l.recs[0] }

// laneHeap orders the lanes whose head waits for an attempt by due time,
// then by Seq so that equal times go in enqueue order.
type laneHeap []*lane

func (h laneHeap) Len() int { return len(h) }

func (h laneHeap) Less(i, j int) bool {
	a, b := h[i].head(), h[j].head()
	if !a.next.Equal(b.next) {
		return a.next.Before(b.next)
	}
	return a.seq < b.seq
}

func (h laneHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *laneHeap) Push(x any) {
	l := x.(*lane)
	l.index = len(*h)
	*h = append(*h, l)
}

func (h *laneHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.index = -1
	return l
}

// endpointState is the engine's in-memory view of one endpoint: its current
// configuration and its pending messages. The engine's lock guards it.
//
// Each pending message is bound to the configuration of the identity it was
// shaped for (held), which may be an earlier one than cfg: a reload that
// changes a webhook's headers or secret does not send what was shaped
// before with the new ones.
type endpointState struct {
	name    string
	cfg     *endpointConfig // nil while no endpoint of this name is set: nothing is attempted
	schema  string          // of the last cfg, for metric labels once it is removed
	held    map[string]*heldConfig
	breaker *breaker
	lanes   map[laneKey]*lane
	ready   laneHeap
	// waiting holds, in Seq order, pending messages whose identity has no
	// configuration: loaded from the store before one is set, or left by
	// a webhook that has changed since. Engine.Commit buries them.
	waiting  []*entry
	queued   int
	inflight int
	// logged holds the log keys already written since the last success, so
	// that a failing receiver costs one log line per reason, not one per
	// attempt.
	logged  map[string]bool
	health  health
	limiter limiter
}

// heldConfig is the configuration of one identity and how many pending
// messages are bound to it.
type heldConfig struct {
	cfg *endpointConfig
	n   int
}

func newEndpointState(name string, bc BreakerConfig) *endpointState {
	return &endpointState{name: name, breaker: newBreaker(bc), lanes: map[laneKey]*lane{},
		held: map[string]*heldConfig{}, logged: map[string]bool{}}
}

// configure sets the endpoint's configuration (nil: stop attempting) and
// places the waiting messages that it can deliver. A configuration that
// connects as the previous one did keeps its connections; the previous
// one's idle connections are closed once nothing queued is bound to it.
func (s *endpointState) configure(cfg *endpointConfig) {
	old := s.cfg
	s.cfg = cfg
	if cfg != nil {
		if old != nil && old.connectsAs(cfg) {
			cfg.client = old.client
		}
		s.schema = cfg.Schema
		s.limiter.set(cfg.RateLimit, cfg.RatePeriod)
		if h := s.held[cfg.Identity]; h != nil {
			// Same identity, other settings (retries, timeout...): they
			// apply to what is queued.
			h.cfg = cfg
		}
		for _, r := range s.takeWaiting() {
			s.add(r)
		}
	}
	if old != nil && (cfg == nil || old.client != cfg.client) && !s.holds(old) {
		old.client.CloseIdleConnections()
	}
}

// holds reports whether queued messages are bound to cfg.
func (s *endpointState) holds(cfg *endpointConfig) bool {
	h := s.held[cfg.Identity]
	return h != nil && h.cfg == cfg
}

// configFor returns the configuration a message of identity is delivered
// with, or nil if there is none.
func (s *endpointState) configFor(identity string) *endpointConfig {
	if s.cfg != nil && (identity == "" || identity == s.cfg.Identity) {
		return s.cfg
	}
	if h := s.held[identity]; h != nil {
		return h.cfg
	}
	return nil
}

// add queues a pending record: bound to its identity's configuration and
// placed in its lane, or waiting when there is none.
func (s *endpointState) add(r *entry) {
	s.queued++
	cfg := s.configFor(r.identity)
	if cfg == nil {
		s.waiting = append(s.waiting, r)
		return
	}
	r.identity = cfg.Identity
	h := s.held[r.identity]
	if h == nil {
		h = &heldConfig{cfg: cfg}
		s.held[r.identity] = h
	}
	h.n++
	s.place(r, cfg.Ordered)
}

// hold makes cfg the configuration of its identity's messages, unless one
// is held already.
func (s *endpointState) hold(cfg *endpointConfig) {
	if s.configFor(cfg.Identity) == nil {
		s.held[cfg.Identity] = &heldConfig{cfg: cfg}
	}
}

// unbind ends r's hold on its configuration; the idle connections of an
// earlier configuration are closed with its last message.
func (s *endpointState) unbind(r *entry) {
	if h := s.held[r.identity]; h != nil {
		if h.n--; h.n == 0 {
			delete(s.held, r.identity)
			if h.cfg != s.cfg {
				h.cfg.client.CloseIdleConnections()
			}
		}
	}
}

// place puts r in its lane, in Seq order but never ahead of a head in
// flight. Records mostly arrive in Seq order, so the search from the tail is
// short. The lane mode of a record is fixed when it is placed: a reload that
// toggles ordered applies to later messages.
func (s *endpointState) place(r *entry, ordered bool) {
	k := laneKey{name: r.lane}
	if !ordered {
		k = laneKey{seq: r.seq}
	}
	l := s.lanes[k]
	if l == nil {
		l = &lane{key: k, index: -1}
		s.lanes[k] = l
	}
	lo := 0
	if l.busy {
		lo = 1
	}
	i := len(l.recs)
	for i > lo && l.recs[i-1].seq > r.seq {
		i--
	}
	l.recs = slices.Insert(l.recs, i, r)
	switch {
	case l.busy:
	case l.index >= 0:
		heap.Fix(&s.ready, l.index)
	default:
		heap.Push(&s.ready, l)
	}
}

// takeAll removes every pending message that is not in flight, waiting
// ones included, and returns them; heads in flight are marked with retire
// so that their attempt's end disposes of them.
func (s *endpointState) takeAll(retire string) []*entry {
	out := s.takeWaiting()
	for k, l := range s.lanes {
		rest := l.recs
		if l.busy {
			l.recs[0].retire = retire
			l.recs, rest = l.recs[:1], l.recs[1:]
		} else {
			delete(s.lanes, k)
		}
		for _, r := range rest {
			s.unbind(r)
		}
		out = append(out, rest...)
		s.queued -= len(rest)
	}
	s.ready = s.ready[:0]
	return out
}

// takeWaiting removes the waiting messages and returns them.
func (s *endpointState) takeWaiting() []*entry {
	out := s.waiting
	s.waiting = nil
	s.queued -= len(out)
	return out
}

// due returns the lane whose head is due first, or nil.
func (s *endpointState) due() *lane {
	if len(s.ready) == 0 {
		return nil
	}
	return s.ready[0]
}

// take marks the first due lane's head as in flight and returns the lane.
func (s *endpointState) take() *lane {
	l := heap.Pop(&s.ready).(*lane)
	l.busy = true
	s.inflight++
	return l
}

// release ends the attempt on l's head; done removes the head (delivered
// or dead-lettered), otherwise it waits for its next attempt.
func (s *endpointState) release(l *lane, done bool) {
	s.inflight--
	l.busy = false
	if done {
		s.unbind(l.recs[0])
		l.recs[0] = nil
		l.recs = l.recs[1:]
		s.queued--
	}
	if len(l.recs) == 0 {
		delete(s.lanes, l.key)
		return
	}
	heap.Push(&s.ready, l)
}

// firstTime reports whether key has not been logged since the last success,
// and marks it.
func (s *endpointState) firstTime(key string) bool {
	if s.logged[key] {
		return false
	}
	s.logged[key] = true
	return true
}
