package delivery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// storeKind opens a store; reopen closes and reopens it where that means
// something (bolt), so that every check also covers persistence.
type storeKind struct {
	name string
	open func(t *testing.T) (s Store, reopen func() Store)
}

var storeKinds = []storeKind{
	{"memory", func(t *testing.T) (Store, func() Store) {
		s := NewMemoryStore()
		return s, func() Store { return s }
	}},
	{"bolt", func(t *testing.T) (Store, func() Store) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		s := mustOpenBolt(t, path)
		return s, func() Store {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpenBolt(t, path)
			return s
		}
	}},
}

func mustOpenBolt(t *testing.T, path string) Store {
	t.Helper()
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rec(endpoint, id string) *Record {
	return &Record{Message: Message{ID: id, Endpoint: endpoint, Lane: "L", Body: []byte(`{"id":"` + id + `"}`),
		Created: time.Unix(1700000000, 0)}}
}

// deleteNow deletes seq and waits for the store to report the result.
func deleteNow(s Store, seq uint64) error {
	ch := make(chan error, 1)
	s.Delete(seq, func(err error) { ch <- err })
	return <-ch
}

func ids(recs []Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func TestStore(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			s, reopen := kind.open(t)
			a, b, c := rec("e1", "a"), rec("e1", "b"), rec("e2", "c")
			if err := s.Add([]*Record{a, b}); err != nil {
				t.Fatal(err)
			}
			if err := s.Add([]*Record{c}); err != nil {
				t.Fatal(err)
			}
			if !(a.Seq < b.Seq && b.Seq < c.Seq) {
				t.Fatalf("seqs %d %d %d not increasing", a.Seq, b.Seq, c.Seq)
			}
			a.Attempts, a.Next, a.LastStatus, a.LastError = 2, time.Unix(1700000300, 0), 503, "HTTP 503"
			if err := s.Save(a); err != nil {
				t.Fatal(err)
			}
			s = reopen()
			pending, err := s.Pending()
			if err != nil {
				t.Fatal(err)
			}
			if len(pending) != 3 || pending[0].Seq != a.Seq || pending[2].Seq != c.Seq {
				t.Fatalf("pending %v, want a b c in Seq order", pending)
			}
			if got := *pending[0]; !reflect.DeepEqual(got.Message, a.Message) || got.Attempts != 2 || !got.Next.Equal(a.Next) || got.LastError != "HTTP 503" {
				t.Errorf("saved record came back as %+v", got)
			}
			if err := deleteNow(s, b.Seq); err != nil {
				t.Fatal(err)
			}

			// Dead letters: bury, trim to keep, replace same id.
			a.DeadAt, a.Reason = time.Unix(1700000400, 0), ReasonExhausted
			if n, err := s.Bury(a, 2); err != nil || n != 0 {
				t.Fatalf("Bury = %d, %v", n, err)
			}
			more := []*Record{rec("e1", "d"), rec("e1", "e")}
			if err := s.Add(more); err != nil {
				t.Fatal(err)
			}
			for _, r := range more {
				r.Reason = ReasonGone
				if _, err := s.Bury(r, 2); err != nil {
					t.Fatal(err)
				}
			}
			s = reopen()
			dead, err := s.DeadLetters("e1", 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(dead); !reflect.DeepEqual(got, []string{"d", "e"}) {
				t.Fatalf("dead letters %v, want [d e]: the oldest trimmed at keep=2", got)
			}
			again := rec("e1", "d")
			if err := s.Add([]*Record{again}); err != nil {
				t.Fatal(err)
			}
			if n, err := s.Bury(again, 2); err != nil || n != 0 {
				t.Fatalf("Bury of an id already dead = %d, %v; want it replaced, nothing trimmed", n, err)
			}
			dead, _ = s.DeadLetters("e1", 0)
			if got := ids(dead); !reflect.DeepEqual(got, []string{"e", "d"}) {
				t.Fatalf("dead letters %v, want [e d]", got)
			}
			if got, _ := s.DeadLetters("e1", 1); len(got) != 1 {
				t.Errorf("limit 1 gave %d", len(got))
			}
			if counts, _ := s.DeadCounts(); !reflect.DeepEqual(counts, map[string]int{"e1": 2}) {
				t.Errorf("counts %v", counts)
			}
			dl, err := s.DeadLetter("e1", "e")
			if err != nil || dl.Reason != ReasonGone {
				t.Fatalf("DeadLetter = %+v, %v", dl, err)
			}
			if _, err := s.DeadLetter("e2", "e"); !errors.Is(err, ErrNotFound) {
				t.Errorf("dead letter of another endpoint found: %v", err)
			}

			// Revive one, forget one, revive all.
			r, err := s.Revive("e1", "e", "v2")
			if err != nil || r.Attempts != 0 || !r.DeadAt.IsZero() || r.Reason != "" || r.Seq <= again.Seq || r.Identity != "v2" {
				t.Fatalf("Revive = %+v, %v", r, err)
			}
			if err := s.Forget("e1", "d"); err != nil {
				t.Fatal(err)
			}
			for _, f := range []func() error{
				func() error { return s.Forget("e1", "d") },
				func() error { _, err := s.Revive("e1", "d", ""); return err },
			} {
				if err := f(); !errors.Is(err, ErrNotFound) {
					t.Errorf("on a missing dead letter: %v, want ErrNotFound", err)
				}
			}
			c.Reason = ReasonExhausted
			if _, err := s.Bury(c, 10); err != nil {
				t.Fatal(err)
			}
			s = reopen()
			all, err := s.ReviveAll(c.Endpoint, "v3")
			if err != nil || len(all) != 1 || all[0].ID != "c" || all[0].Identity != "v3" {
				t.Fatalf("ReviveAll = %v, %v", all, err)
			}
			if counts, _ := s.DeadCounts(); len(counts) != 0 {
				t.Errorf("counts after revival %v", counts)
			}
			pending, _ = s.Pending()
			var got []string
			for _, p := range pending {
				got = append(got, p.ID)
			}
			if !reflect.DeepEqual(got, []string{"e", "c"}) {
				t.Errorf("pending %v, want [e c]", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Add([]*Record{rec("e1", "z")}); err == nil {
				t.Error("Add after Close succeeded")
			}
			if err := deleteNow(s, all[0].Seq); !errors.Is(err, ErrClosed) {
				t.Errorf("Delete after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, r := range []*Record{
		{},
		{Message: Message{ID: "id", Endpoint: "ep", Lane: "lane", Body: []byte("body\x00\xff"), Created: time.Unix(1, 2)},
			Seq: 1 << 60, Attempts: 7, Next: time.Unix(3, 4), LastStatus: 503, LastError: "HTTP 503",
			DeadAt: time.Unix(5, 6), Reason: ReasonGone},
	} {
		got, err := decodeRecord(encodeRecord(r))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(*got) != fmt.Sprint(*r) {
			t.Errorf("round trip\n got %+v\nwant %+v", *got, *r)
		}
	}
	for _, bad := range [][]byte{nil, {9}, encodeRecord(rec("e", "x"))[:10]} {
		if _, err := decodeRecord(bad); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
}

func TestOpenBoltSaysWhatWentWrong(t *testing.T) {
	dir := t.TempDir()
	held, err := OpenBolt(filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	tests := []struct{ name, path, want string }{
		{"missing directory", filepath.Join(dir, "nope", "outbox.db"), "its directory does not exist"},
		{"locked by another", filepath.Join(dir, "outbox.db"), "locked by another process"},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		tests = append(tests, struct{ name, path, want string }{"read-only directory", filepath.Join(ro, "outbox.db"), "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.name == "locked by another" {
				t.Skip("waits for bbolt's 5s lock timeout; skipped with -short")
			}
			_, err := OpenBolt(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenBolt = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
