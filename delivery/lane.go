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
	seq        uint64
	id         string
	lane       string
	size       int // len(Body), counted against MaxQueuedBytes
	attempts   int
	lastStatus int
	lastError  string
	next       time.Time
	created    time.Time
}

func newEntry(r *Record) *entry {
	return &entry{
		seq: r.Seq, id: r.ID, lane: r.Lane, size: len(r.Body),
		attempts: r.Attempts, lastStatus: r.LastStatus, lastError: r.LastError,
		next: r.Next, created: r.Created,
	}
}

// record rebuilds the pending Record of endpoint with body.
func (en *entry) record(endpoint string, body []byte) *Record {
	return &Record{
		Message: Message{ID: en.id, Endpoint: endpoint, Lane: en.lane, Body: body, Created: en.created},
		Seq:     en.seq, Attempts: en.attempts, Next: en.next,
		LastStatus: en.lastStatus, LastError: en.lastError,
	}
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
type endpointState struct {
	name     string
	cfg      *endpointConfig // nil while no endpoint of this name is set: messages wait
	breaker  *breaker
	lanes    map[laneKey]*lane
	ready    laneHeap
	waiting  []*entry // pending while cfg is nil, in Seq order
	queued   int
	inflight int
	// logged holds the log keys already written since the last success, so
	// that a failing receiver costs one log line per reason, not one per
	// attempt.
	logged map[string]bool
}

func newEndpointState(name string, bc BreakerConfig) *endpointState {
	return &endpointState{name: name, breaker: newBreaker(bc), lanes: map[laneKey]*lane{}, logged: map[string]bool{}}
}

// configure sets the endpoint's configuration and moves waiting messages
// into lanes, which needs to know whether the endpoint is ordered.
func (s *endpointState) configure(cfg *endpointConfig) {
	s.cfg = cfg
	if cfg == nil {
		return
	}
	waiting := s.waiting
	s.waiting = nil
	for _, r := range waiting {
		s.place(r)
	}
}

// add queues a pending record.
func (s *endpointState) add(r *entry) {
	s.queued++
	if s.cfg == nil {
		s.waiting = append(s.waiting, r)
		return
	}
	s.place(r)
}

// place puts r in its lane, in Seq order but never ahead of a head in
// flight. Records mostly arrive in Seq order, so the search from the tail is
// short. The lane mode of a record is fixed when it is placed: a reload that
// toggles Ordered applies to later messages.
func (s *endpointState) place(r *entry) {
	k := laneKey{name: r.lane}
	if !s.cfg.Ordered {
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
