package delivery

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestBoltLoadsJustAddedRecordsAsStored: a record loaded from the ones just
// added is the record the file holds, the kept bodies stay within
// freshBytes, and records that no longer fit or were taken are read from
// the file.
func TestBoltLoadsJustAddedRecordsAsStored(t *testing.T) {
	s := mustOpenBolt(t, filepath.Join(t.TempDir(), "outbox.db")).(*BoltStore)
	const n, size = 100, 64 << 10 // 6.4 MiB of bodies: about a third fit
	var recs []*Record
	for i := range n {
		r := rec("e", fmt.Sprintf("m%d", i))
		r.Body = bytes.Repeat([]byte{byte('a' + i%26)}, size)
		recs = append(recs, r)
	}
	if err := s.Add(recs); err != nil {
		t.Fatal(err)
	}
	if kept := len(s.fresh.recs); s.fresh.bytes > freshBytes || kept == 0 || kept == n {
		t.Fatalf("kept %d records, %d bytes: want some, within %d bytes", kept, s.fresh.bytes, freshBytes)
	}
	if s.fresh.take(recs[0].Seq) != nil {
		t.Error("the oldest record is still kept past the bound")
	}
	for _, r := range recs {
		got, err := s.Load(r.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if want := stored(t, s, r.Seq); !reflect.DeepEqual(got, want) {
			t.Fatalf("Load(%d) = %+v\nthe file holds %+v", r.Seq, got.Message.ID, want.Message.ID)
		}
	}
	if len(s.fresh.recs) != 0 || s.fresh.bytes != 0 {
		t.Errorf("after every first Load: %d records, %d bytes kept; want none", len(s.fresh.recs), s.fresh.bytes)
	}
	if got, err := s.Load(recs[n-1].Seq); err != nil || got.ID != recs[n-1].ID {
		t.Errorf("second Load: %v, %v; want it read from the file", got, err)
	}

	more := []*Record{rec("e", "gone")}
	if err := s.Add(more); err != nil {
		t.Fatal(err)
	}
	if err := deleteNow(s, more[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(more[0].Seq); err != ErrNoPending {
		t.Errorf("Load of a deleted record: %v, want ErrNoPending", err)
	}
}

// stored reads seq from the file.
func stored(t *testing.T, s *BoltStore, seq uint64) *Record {
	t.Helper()
	var r *Record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = decodeRecord(tx.Bucket(bucketPending).Get(seqKey(seq)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBoltCloseCommitsWritesNobodyWaitsFor: deletes and deliveries wait
// for more writes to share their commit; closing the store commits them
// at once, and they are in the file when it is opened again.
func TestBoltCloseCommitsWritesNobodyWaitsFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	recs := []*Record{rec("e", "deleted"), rec("e", "delivered"), rec("e", "pending")}
	if err := s.Add(recs); err != nil {
		t.Fatal(err)
	}
	s.Delete(recs[0].Seq, func(error) {})
	recs[1].DeliveredAt = time.Now()
	s.Deliver(recs[1], Retention{Age: time.Hour, Count: 10, Bytes: 1 << 20}, func(error) {})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := mustOpenBolt(t, path)
	pending, err := s2.Pending()
	if err != nil || len(pending) != 1 || pending[0].ID != "pending" {
		t.Errorf("pending after reopening: %v, %v; want only the pending one", pending, err)
	}
	var delivered []string
	if err := s2.Scan(StateDelivered, "", func(r *Record) bool { delivered = append(delivered, r.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(delivered, []string{"delivered"}) {
		t.Errorf("delivered after reopening: %v", delivered)
	}
}
