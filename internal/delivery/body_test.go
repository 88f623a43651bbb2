package delivery

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestStoreLoad checks that a store loads a pending record only, with its
// body as stored, across a reopen and a Save.
func TestStoreLoad(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s, reopen := kind.open(t)
			a, b := rec("e", "a"), rec("e", "b")
			b.Body = nil
			if err := s.Add([]*Record{a, b}); err != nil {
				t.Fatal(err)
			}
			a.Attempts, a.LastError = 1, "HTTP 500"
			if err := s.Save(a); err != nil {
				t.Fatal(err)
			}
			s = reopen()
			if got, err := s.Load(a.Seq); err != nil || !bytes.Equal(got.Body, []byte(`{"id":"a"}`)) || got.LastError != "HTTP 500" {
				t.Errorf("Load(a) = %+v, %v", got, err)
			}
			if got, err := s.Load(b.Seq); err != nil || len(got.Body) != 0 {
				t.Errorf("Load(b) = %+v, %v, want an empty body", got, err)
			}
			if err := deleteNow(s, a.Seq); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Load(a.Seq); !errors.Is(err, ErrNoPending) {
				t.Errorf("Load of a deleted record: %v, want ErrNoPending", err)
			}
		})
	}
}

// flakyBodies fails Load while fail is set.
type flakyBodies struct {
	Store
	fail atomic.Bool
}

func (s *flakyBodies) Load(seq uint64) (*Record, error) {
	if s.fail.Load() {
		return nil, errBadRecord
	}
	return s.Store.Load(seq)
}

// TestUnreadableBodyStaysQueued checks that a message whose body cannot be
// read is neither sent, dropped nor dead-lettered, nor rewritten in the
// store, and holds its lane until the body can be read again.
func TestUnreadableBodyStaysQueued(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 200}))
	store := &flakyBodies{Store: mustOpenBolt(t, filepath.Join(t.TempDir(), "outbox.db"))}
	store.fail.Store(true)
	h := newHarness(t, store, Options{})
	h.set(endpoint(rx.URL))
	h.enqueue(msg("A", 1), msg("A", 2))
	before, err := store.Pending()
	if err != nil {
		t.Fatal(err)
	}

	if d := h.clock.waitTimer(t); d != bodyRetry {
		t.Fatalf("retry after an unreadable body in %s, want %s", d, bodyRetry)
	}
	if n := rx.count(); n != 0 {
		t.Fatalf("%d requests without a body", n)
	}
	if s, _ := h.eng.Stats(); s.Queued != 2 || s.Endpoints["rx"].DeadLetters != 0 {
		t.Fatalf("stats %+v, want 2 queued, no dead letters", s)
	}
	h.clock.advanceToTimer(t) // still failing: read again, not sent
	if d := h.clock.waitTimer(t); d != bodyRetry {
		t.Fatalf("second retry in %s, want %s", d, bodyRetry)
	}
	if after, _ := store.Pending(); !reflect.DeepEqual(after, before) {
		t.Fatalf("stored records changed:\n%+v\nwant\n%+v", after, before)
	}

	store.fail.Store(false)
	h.clock.advanceToTimer(t)
	h.waitCount("delivered:rx", 2)
	if got := delivered(rx.got())["A"]; !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("delivered %v, want [1 2]", got)
	}
}

// TestCorruptRecordStaysQueued corrupts a stored record behind the engine's
// back: its message stays pending and its bytes untouched.
func TestCorruptRecordStaysQueued(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 200}))
	store := mustOpenBolt(t, filepath.Join(t.TempDir(), "outbox.db"))
	h := newHarness(t, store, Options{})
	down := func(e *Endpoint) { e.URL, e.Retry = "http://127.0.0.1:1/", []time.Duration{time.Hour} }
	h.set(endpoint(rx.URL, down))
	h.enqueue(msg("A", 1))
	if d := h.clock.waitTimer(t); d != time.Hour { // refused, retry in an hour
		t.Fatalf("retry in %s, want 1h", d)
	}
	db := store.(*BoltStore).db
	bad := []byte{recordVersion, 0xff}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketPending).Put(seqKey(1), bad) }); err != nil {
		t.Fatal(err)
	}
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Retry = []time.Duration{time.Hour} }))
	h.clock.advanceToTimer(t)
	if d := h.clock.waitTimer(t); d != bodyRetry {
		t.Fatalf("retry in %s, want %s", d, bodyRetry)
	}
	if s, _ := h.eng.Stats(); s.Queued != 1 || rx.count() != 0 {
		t.Fatalf("queued %d, sent %d; want 1 queued, none sent", s.Queued, rx.count())
	}
	var got []byte
	db.View(func(tx *bolt.Tx) error { got = bytes.Clone(tx.Bucket(bucketPending).Get(seqKey(1))); return nil })
	if !bytes.Equal(got, bad) {
		t.Fatalf("stored record rewritten: %x", got)
	}
}
