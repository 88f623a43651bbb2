package delivery

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"time"
)

// memoryStore keeps everything in memory: nothing survives the process.
type memoryStore struct {
	mu      sync.Mutex
	seq     uint64
	pending map[uint64]*Record
	dead    map[string][]*Record // per endpoint, in Seq order
	// delivered are the delivered messages kept, in delivery order, and
	// the sum of their sizes.
	delivered      []*Record
	deliveredBytes int64
	closed         bool
}

// NewMemoryStore returns a Store that keeps messages in memory only: they
// are lost when the process ends. For tests and for users who prefer
// losing events to writing them to disk.
func NewMemoryStore() Store {
	return &memoryStore{pending: map[uint64]*Record{}, dead: map[string][]*Record{}}
}

func (s *memoryStore) lock() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

func (s *memoryStore) Add(recs []*Record) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, r := range recs {
		s.seq++
		r.Seq = s.seq
		c := *r
		s.pending[r.Seq] = &c
	}
	return nil
}

func (s *memoryStore) Save(rec *Record) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.pending[rec.Seq]; ok {
		c := *rec
		s.pending[rec.Seq] = &c
	}
	return nil
}

// Delete deletes at once and calls done before it returns.
func (s *memoryStore) Delete(seq uint64, done func(error)) {
	err := s.lock()
	if err == nil {
		delete(s.pending, seq)
		s.mu.Unlock()
	}
	done(err)
}

func (s *memoryStore) Bury(rec *Record, keep int) (int, error) {
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	delete(s.pending, rec.Seq)
	return s.putDead(rec, keep), nil
}

func (s *memoryStore) BuryPending(seqs []uint64, reason string, at time.Time, keep int) (int, error) {
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	trimmed := 0
	for _, seq := range seqs {
		if rec, ok := s.pending[seq]; ok {
			delete(s.pending, seq)
			rec.DeadAt, rec.Reason = at, reason
			trimmed += s.putDead(rec, keep)
		}
	}
	return trimmed, nil
}

// putDead adds a copy of rec to its endpoint's dead letters, replacing one
// with the same id, and deletes the oldest beyond keep; the caller holds
// the lock.
func (s *memoryStore) putDead(rec *Record, keep int) int {
	list := s.dead[rec.Endpoint]
	if i := deadIndex(list, rec.ID); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	c := *rec
	i, _ := slices.BinarySearchFunc(list, c.Seq, func(r *Record, seq uint64) int { return cmp.Compare(r.Seq, seq) })
	list = slices.Insert(list, i, &c)
	trimmed := max(0, len(list)-keep)
	s.dead[rec.Endpoint] = slices.Delete(list, 0, trimmed)
	return trimmed
}

// Deliver keeps rec at once and calls done before it returns.
func (s *memoryStore) Deliver(rec *Record, keep Retention, done func(error)) {
	err := s.lock()
	if err != nil {
		done(err)
		return
	}
	delete(s.pending, rec.Seq)
	if !keep.off() {
		c := *rec
		s.delivered = append(s.delivered, &c)
		s.deliveredBytes += recordSize(&c)
	}
	n := 0
	for ; n < len(s.delivered); n++ {
		r := s.delivered[n]
		if len(s.delivered)-n <= keep.Count && s.deliveredBytes <= keep.Bytes && !keep.expired(r.DeliveredAt, rec.DeliveredAt) {
			break
		}
		s.deliveredBytes -= recordSize(r)
	}
	s.delivered = slices.Delete(s.delivered, 0, n)
	s.mu.Unlock()
	done(nil)
}

// recordSize is what a kept record counts against Retention.Bytes: its
// encoded size, as the bolt store counts it.
func recordSize(r *Record) int64 { return int64(len(encodeRecord(r))) }

func (s *memoryStore) Load(seq uint64) (*Record, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	r, ok := s.pending[seq]
	if !ok {
		return nil, ErrNoPending
	}
	c := *r
	c.History = slices.Clone(r.History)
	return &c, nil
}

func (s *memoryStore) Scan(state, endpoint string, fn func(*Record) bool) error {
	if err := s.lock(); err != nil {
		return err
	}
	var list []*Record
	switch state {
	case StateQueued:
		list = slices.Collect(maps.Values(s.pending))
	case StateDelivered:
		list = s.delivered
	case StateDead:
		for _, name := range s.endpoints(endpoint) {
			list = append(list, s.dead[name]...)
		}
	}
	var out []*Record
	for _, r := range list {
		if endpoint == "" || r.Endpoint == endpoint {
			c := *r
			out = append(out, &c)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *Record) int { return cmp.Compare(b.Seq, a.Seq) })
	for _, r := range out {
		if !fn(r) {
			break
		}
	}
	return nil
}

func (s *memoryStore) Pending() ([]*Record, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([]*Record, 0, len(s.pending))
	for _, r := range s.pending {
		c := *r
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// endpoints returns the endpoints a dead-letter call covers: one, or all in
// name order when endpoint is empty.
func (s *memoryStore) endpoints(endpoint string) []string {
	if endpoint != "" {
		return []string{endpoint}
	}
	return slices.Sorted(maps.Keys(s.dead))
}

func (s *memoryStore) DeadLetters(endpoint string, limit int) ([]Record, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []Record
	for _, name := range s.endpoints(endpoint) {
		for _, r := range s.dead[name] {
			if limit > 0 && len(out) == limit {
				return out, nil
			}
			out = append(out, *r)
		}
	}
	return out, nil
}

func deadIndex(list []*Record, id string) int {
	return slices.IndexFunc(list, func(r *Record) bool { return r.ID == id })
}

func (s *memoryStore) DeadLetter(endpoint, id string) (Record, error) {
	if err := s.lock(); err != nil {
		return Record{}, err
	}
	defer s.mu.Unlock()
	list := s.dead[endpoint]
	if i := deadIndex(list, id); i >= 0 {
		return *list[i], nil
	}
	return Record{}, ErrNotFound
}

// take removes and returns the dead letter, or nil.
func (s *memoryStore) take(endpoint, id string) *Record {
	list := s.dead[endpoint]
	i := deadIndex(list, id)
	if i < 0 {
		return nil
	}
	r := list[i]
	s.dead[endpoint] = slices.Delete(list, i, i+1)
	return r
}

// requeue makes a dead letter pending again for identity; the caller holds
// the lock.
func (s *memoryStore) requeue(r *Record, identity string) *Record {
	revive(r, identity)
	s.seq++
	r.Seq = s.seq
	s.pending[r.Seq] = r
	c := *r
	return &c
}

func (s *memoryStore) Revive(endpoint, id, identity string) (*Record, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	r := s.take(endpoint, id)
	if r == nil {
		return nil, ErrNotFound
	}
	return s.requeue(r, identity), nil
}

func (s *memoryStore) ReviveAll(endpoint, identity string) ([]*Record, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []*Record
	for _, name := range s.endpoints(endpoint) {
		for _, r := range s.dead[name] {
			out = append(out, s.requeue(r, identity))
		}
		delete(s.dead, name)
	}
	return out, nil
}

func (s *memoryStore) Forget(endpoint, id string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.take(endpoint, id) == nil {
		return ErrNotFound
	}
	return nil
}

func (s *memoryStore) ForgetAll(endpoint string) (int, error) {
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := len(s.dead[endpoint])
	delete(s.dead, endpoint)
	return n, nil
}

func (s *memoryStore) DeadCounts() (map[string]int, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.dead))
	for name, list := range s.dead {
		if len(list) > 0 {
			out[name] = len(list)
		}
	}
	return out, nil
}

func (s *memoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
