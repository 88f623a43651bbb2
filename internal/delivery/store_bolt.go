package delivery

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket layout. Keys embed the endpoint as a length-prefixed string so that
// a prefix scan finds exactly one endpoint's dead letters, oldest first.
var (
	bucketPending = []byte("pending")    // seq → record
	bucketDead    = []byte("dead")       // endpoint, seq → record
	bucketDeadID  = []byte("dead_id")    // endpoint, id → seq
	bucketDeadN   = []byte("dead_count") // endpoint → count
	// Delivered messages kept for lookup, and their count and size.
	bucketDelivered     = []byte("delivered")      // seq → record
	bucketDeliveredSize = []byte("delivered_size") // "count", "bytes" → n
)

const keyCount, keyBytes = "count", "bytes"

// maxBatch bounds one group commit so that a flood of writers does not make
// a single transaction unboundedly large.
const maxBatch = 1000

// BoltStore is a Store in a bbolt file; it also holds key-value spaces
// (KeyValues) for state that should live as long as the messages do. All
// writes go through one committer goroutine that folds whatever writes are
// waiting into one transaction: one fsync serves many concurrent Enqueue
// calls, with no added delay when idle.
type BoltStore struct {
	db     *bolt.DB
	fresh  freshCache
	mu     sync.RWMutex // guards closed against sends on ops
	closed bool
	ops    chan *boltOp
	done   chan struct{}
}

type boltOp struct {
	fn   func(*bolt.Tx) error
	done func(error) // called by the committer with the commit's result
	// waited says the submitter waits for the commit; a batch in which
	// nobody waits (deletes and deliveries) may linger to carry more.
	waited bool
}

// linger is how long a commit in which nobody waits holds on for more
// writes: under load, deletes and deliveries then share fewer fsyncs;
// what waits is never held back.
const linger = 5 * time.Millisecond

// OpenBolt opens or creates the bbolt outbox at path. Pending messages in it
// are delivered by the Engine given it. The file is locked: a second
// process opening it fails after 5 seconds instead of waiting forever.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 5 * time.Second,
		// Every commit would otherwise rewrite the whole freelist; it is
		// rebuilt by scanning the file when the outbox is opened (as etcd
		// does), which is quick at an outbox's size.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("delivery: outbox %s is locked by another process (another Caddy using the same outbox?): stop it or give this one its own path", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("delivery: outbox %s: its directory does not exist: create it or choose another path", path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("delivery: outbox %s: permission denied: let the user Caddy runs as write it, or choose another path", path)
	case err != nil:
		return nil, fmt.Errorf("delivery: opening outbox %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPending, bucketDead, bucketDeadID, bucketDeadN, bucketDelivered, bucketDeliveredSize} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("delivery: preparing outbox %s: %w", path, err)
	}
	s := &BoltStore{db: db, ops: make(chan *boltOp, maxBatch), done: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// update runs fn in a (shared) write transaction and returns once it is
// committed. fn may run more than once, so it must only write to the
// transaction and to variables it resets itself.
func (s *BoltStore) update(fn func(*bolt.Tx) error) error {
	ch := make(chan error, 1)
	if err := s.send(&boltOp{fn: fn, done: func(err error) { ch <- err }, waited: true}); err != nil {
		return err
	}
	return <-ch
}

// submit hands fn to the committer and returns without waiting for the
// commit; the committer calls done with its result. It fails only with
// ErrClosed, and then fn never runs. Close commits whatever was submitted
// before it.
func (s *BoltStore) submit(fn func(*bolt.Tx) error, done func(error)) error {
	return s.send(&boltOp{fn: fn, done: done})
}

func (s *BoltStore) send(op *boltOp) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.ops <- op
	return nil
}

func (s *BoltStore) commitLoop() {
	defer close(s.done)
	for op := range s.ops {
		batch := s.gather(op)
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, o := range batch {
				if err := o.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		for _, o := range batch {
			if err != nil && len(batch) > 1 {
				// One op failed the shared transaction: rerun each alone so
				// that only the faulty one reports an error.
				o.done(s.db.Update(o.fn))
			} else {
				o.done(err)
			}
		}
	}
}

// gather returns a batch of first and the writes waiting, and if nobody
// waits for any of them, those that come within linger, until one that is
// waited for comes.
func (s *BoltStore) gather(first *boltOp) []*boltOp {
	batch, waited := []*boltOp{first}, first.waited
	var timeout <-chan time.Time
	for len(batch) < maxBatch {
		var more *boltOp
		var ok bool
		if waited {
			select {
			case more, ok = <-s.ops:
			default:
				return batch
			}
		} else {
			if timeout == nil {
				t := time.NewTimer(linger)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case more, ok = <-s.ops:
			case <-timeout:
				return batch
			}
		}
		if !ok {
			return batch // closing: commit what is here
		}
		batch = append(batch, more)
		waited = waited || more.waited
	}
	return batch
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func endpointPrefix(endpoint string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(endpoint))), endpoint...)
}

func putCount(b *bolt.Bucket, key string, n int) error {
	if n <= 0 {
		return b.Delete([]byte(key))
	}
	return b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func getCount(b *bolt.Bucket, key string) int {
	if v := b.Get([]byte(key)); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

// Add keeps recs, bodies included, for their first Load: the caller must
// not change them afterwards.
func (s *BoltStore) Add(recs []*Record) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		for _, r := range recs {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			r.Seq = seq
			if err := b.Put(seqKey(seq), encodeRecord(r)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.fresh.put(recs)
	}
	return err
}

func (s *BoltStore) Save(rec *Record) error {
	v := encodeRecord(rec)
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPending)
		if b.Get(seqKey(rec.Seq)) == nil {
			return nil // delivered or buried meanwhile
		}
		return b.Put(seqKey(rec.Seq), v)
	})
}

// Delete queues the delete for the next group commit, without waiting for
// it (see Store.Delete).
func (s *BoltStore) Delete(seq uint64, done func(error)) {
	s.fresh.drop(seq)
	err := s.submit(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).Delete(seqKey(seq))
	}, done)
	if err != nil {
		done(err)
	}
}

func (s *BoltStore) Bury(rec *Record, keep int) (int, error) {
	s.fresh.drop(rec.Seq)
	v := encodeRecord(rec)
	var trimmed int
	err := s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketPending).Delete(seqKey(rec.Seq)); err != nil {
			return err
		}
		var err error
		trimmed, err = putDead(tx, rec, v, keep)
		return err
	})
	return trimmed, err
}

func (s *BoltStore) BuryPending(seqs []uint64, reason string, at time.Time, keep int) (int, error) {
	s.fresh.drop(seqs...)
	var trimmed int
	err := s.update(func(tx *bolt.Tx) error {
		trimmed = 0
		pending := tx.Bucket(bucketPending)
		for _, seq := range seqs {
			v := pending.Get(seqKey(seq))
			if v == nil {
				continue
			}
			rec, err := decodeRecord(v)
			if err != nil {
				return err
			}
			rec.DeadAt, rec.Reason = at, reason
			if err := pending.Delete(seqKey(seq)); err != nil {
				return err
			}
			n, err := putDead(tx, rec, encodeRecord(rec), keep)
			if err != nil {
				return err
			}
			trimmed += n
		}
		return nil
	})
	return trimmed, err
}

// putDead stores rec (encoded as v) among its endpoint's dead letters,
// replacing one with the same id, and deletes the oldest beyond keep.
func putDead(tx *bolt.Tx, rec *Record, v []byte, keep int) (int, error) {
	dead, ids, counts := tx.Bucket(bucketDead), tx.Bucket(bucketDeadID), tx.Bucket(bucketDeadN)
	prefix := endpointPrefix(rec.Endpoint)
	n := getCount(counts, rec.Endpoint)
	idKey := append(bytes.Clone(prefix), rec.ID...)
	if old := ids.Get(idKey); old != nil {
		if err := dead.Delete(append(bytes.Clone(prefix), old...)); err != nil {
			return 0, err
		}
		n--
	}
	if err := dead.Put(append(bytes.Clone(prefix), seqKey(rec.Seq)...), v); err != nil {
		return 0, err
	}
	if err := ids.Put(idKey, seqKey(rec.Seq)); err != nil {
		return 0, err
	}
	n++
	trimmed := 0
	c := dead.Cursor()
	for ; n > keep; n-- {
		k, v := c.Seek(prefix)
		if k == nil || !bytes.HasPrefix(k, prefix) {
			break
		}
		old, err := decodeRecord(v)
		if err != nil {
			return 0, err
		}
		if err := ids.Delete(append(bytes.Clone(prefix), old.ID...)); err != nil {
			return 0, err
		}
		if err := c.Delete(); err != nil {
			return 0, err
		}
		trimmed++
	}
	return trimmed, putCount(counts, rec.Endpoint, n)
}

// Deliver queues the move for the next group commit, without waiting for
// it (see Store.Delete).
func (s *BoltStore) Deliver(rec *Record, keep Retention, done func(error)) {
	s.fresh.drop(rec.Seq)
	var v []byte
	if !keep.off() {
		v = encodeRecord(rec)
	}
	err := s.submit(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketPending).Delete(seqKey(rec.Seq)); err != nil {
			return err
		}
		return keepDelivered(tx, rec.Seq, v, keep, rec.DeliveredAt)
	}, done)
	if err != nil {
		done(err)
	}
}

// keepDelivered stores v, a delivered record (none if nil), then deletes
// the oldest delivered records beyond keep as of now.
func keepDelivered(tx *bolt.Tx, seq uint64, v []byte, keep Retention, now time.Time) error {
	b, meta := tx.Bucket(bucketDelivered), tx.Bucket(bucketDeliveredSize)
	n, sum := getCount(meta, keyCount), int64(getCount(meta, keyBytes))
	if v != nil {
		if err := b.Put(seqKey(seq), v); err != nil {
			return err
		}
		n, sum = n+1, sum+int64(len(v))
	}
	c := b.Cursor()
	for k, old := c.First(); k != nil; k, old = c.First() {
		if n <= keep.Count && sum <= keep.Bytes {
			at, err := deliveredAt(old)
			if err != nil {
				return err
			}
			if !keep.expired(at, now) {
				break
			}
		}
		n, sum = n-1, sum-int64(len(old))
		if err := c.Delete(); err != nil {
			return err
		}
	}
	if err := putCount(meta, keyCount, n); err != nil {
		return err
	}
	return putCount(meta, keyBytes, int(sum))
}

// Load takes a record from those just added, or reads it from a read
// transaction, which does not wait for the committer.
func (s *BoltStore) Load(seq uint64) (*Record, error) {
	if r := s.fresh.take(seq); r != nil {
		return r, nil
	}
	var r *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPending).Get(seqKey(seq))
		if v == nil {
			return ErrNoPending
		}
		var err error
		r, err = decodeRecord(v)
		return err
	})
	return r, err
}

// Scan reads from one read transaction, newest first except for the dead
// letters of all endpoints, which go endpoint by endpoint.
func (s *BoltStore) Scan(state, endpoint string, fn func(*Record) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		switch state {
		case StateQueued:
			b = tx.Bucket(bucketPending)
		case StateDelivered:
			b = tx.Bucket(bucketDelivered)
		case StateDead:
			return eachDead(tx, endpoint, func(_ []byte, r *Record) bool { return fn(r) })
		default:
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			r, err := decodeRecord(v)
			if err != nil {
				return err
			}
			if (endpoint == "" || r.Endpoint == endpoint) && !fn(r) {
				return nil
			}
		}
		return nil
	})
}

func (s *BoltStore) Pending() ([]*Record, error) {
	var out []*Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(_, v []byte) error {
			r, err := decodeRecord(v)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// eachDead calls fn for the dead letters of endpoint (all if empty) in key
// order until fn returns false.
func eachDead(tx *bolt.Tx, endpoint string, fn func(k []byte, r *Record) bool) error {
	var prefix []byte
	if endpoint != "" {
		prefix = endpointPrefix(endpoint)
	}
	c := tx.Bucket(bucketDead).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		r, err := decodeRecord(v)
		if err != nil {
			return err
		}
		if !fn(k, r) {
			return nil
		}
	}
	return nil
}

func (s *BoltStore) DeadLetters(endpoint string, limit int) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return eachDead(tx, endpoint, func(_ []byte, r *Record) bool {
			out = append(out, *r)
			return limit <= 0 || len(out) < limit
		})
	})
	return out, err
}

// findDead returns the key and record of a dead letter, or ErrNotFound.
func findDead(tx *bolt.Tx, endpoint, id string) ([]byte, *Record, error) {
	prefix := endpointPrefix(endpoint)
	seq := tx.Bucket(bucketDeadID).Get(append(bytes.Clone(prefix), id...))
	if seq == nil {
		return nil, nil, ErrNotFound
	}
	k := append(prefix, seq...)
	v := tx.Bucket(bucketDead).Get(k)
	if v == nil {
		return nil, nil, ErrNotFound
	}
	r, err := decodeRecord(v)
	return k, r, err
}

func (s *BoltStore) DeadLetter(endpoint, id string) (Record, error) {
	var out Record
	err := s.db.View(func(tx *bolt.Tx) error {
		_, r, err := findDead(tx, endpoint, id)
		if err == nil {
			out = *r
		}
		return err
	})
	return out, err
}

// unbury deletes one dead letter and its index entry and count.
func unbury(tx *bolt.Tx, k []byte, r *Record) error {
	if err := tx.Bucket(bucketDead).Delete(k); err != nil {
		return err
	}
	if err := tx.Bucket(bucketDeadID).Delete(append(endpointPrefix(r.Endpoint), r.ID...)); err != nil {
		return err
	}
	counts := tx.Bucket(bucketDeadN)
	return putCount(counts, r.Endpoint, getCount(counts, r.Endpoint)-1)
}

// requeue stores a dead letter as pending again under a fresh Seq, for
// identity.
func requeue(tx *bolt.Tx, r *Record, identity string) error {
	revive(r, identity)
	b := tx.Bucket(bucketPending)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	r.Seq = seq
	return b.Put(seqKey(seq), encodeRecord(r))
}

func (s *BoltStore) Revive(endpoint, id, identity string) (*Record, error) {
	var out *Record
	err := s.update(func(tx *bolt.Tx) error {
		k, r, err := findDead(tx, endpoint, id)
		if err != nil {
			return err
		}
		if err := unbury(tx, k, r); err != nil {
			return err
		}
		out = r
		return requeue(tx, r, identity)
	})
	return out, err
}

func (s *BoltStore) ReviveAll(endpoint, identity string) ([]*Record, error) {
	var out []*Record
	err := s.update(func(tx *bolt.Tx) error {
		keys, recs, err := collectDead(tx, endpoint)
		if err != nil {
			return err
		}
		out = recs
		for i, r := range out {
			if err := unbury(tx, keys[i], r); err != nil {
				return err
			}
			if err := requeue(tx, r, identity); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// collectDead returns the dead letters of endpoint and their keys, collected
// before any is changed: deleting under a moving bolt cursor skips keys.
func collectDead(tx *bolt.Tx, endpoint string) (keys [][]byte, recs []*Record, err error) {
	err = eachDead(tx, endpoint, func(k []byte, r *Record) bool {
		keys = append(keys, bytes.Clone(k))
		recs = append(recs, r)
		return true
	})
	return keys, recs, err
}

func (s *BoltStore) Forget(endpoint, id string) error {
	return s.update(func(tx *bolt.Tx) error {
		k, r, err := findDead(tx, endpoint, id)
		if err != nil {
			return err
		}
		return unbury(tx, k, r)
	})
}

func (s *BoltStore) ForgetAll(endpoint string) (int, error) {
	var n int
	err := s.update(func(tx *bolt.Tx) error {
		keys, recs, err := collectDead(tx, endpoint)
		if err != nil {
			return err
		}
		n = 0
		for i, r := range recs {
			if err := unbury(tx, keys[i], r); err != nil {
				return err
			}
		}
		n = len(recs)
		return nil
	})
	return n, err
}

func (s *BoltStore) DeadCounts() (map[string]int, error) {
	out := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeadN).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = int(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	})
	return out, err
}

func (s *BoltStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}
