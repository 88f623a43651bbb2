package journal

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
)

// chatExchange is turn i of an OpenAI-style chat, as the handler captures
// it; every fourth turn is an aborted stream with truncated bodies.
func chatExchange(i int) capture.Exchange {
	start := time.Unix(1_730_000_000, int64(i)*1_000_000)
	ex := capture.Exchange{
		Method: "POST", Host: "chat.example.com", Path: "/v1/chat/completions", RawQuery: fmt.Sprintf("turn=%d", i),
		RequestHeader: http.Header{"Content-Type": {"application/json"}, "X-Conversation-Id": {fmt.Sprintf("conv-%d", i%3)}},
		RequestBody:   []byte(fmt.Sprintf(`{"model":"gpt-test","messages":[{"role":"user","content":"turn %d"}]}`, i)),
		Status:        200,
		ResponseHeader: http.Header{"Content-Type": {"application/json"},
			"Set-Cookie": {"a=1", "b=2"}},
		ResponseBody: []byte(fmt.Sprintf(`{"id":"chatcmpl-%d","choices":[{"message":{"role":"assistant","content":"re: turn %d"}}]}`, i, i)),
		RemoteAddr:   "192.0.2.7:50123",
		Start:        start,
		End:          start.Add(40 * time.Millisecond),
	}
	if i%4 == 3 {
		ex.Aborted, ex.RequestTruncated, ex.ResponseTruncated = true, true, true
		ex.Status = 0
		ex.ResponseBody = nil
	}
	return ex
}

func openJournal(t *testing.T, dir string, opts Options) (*Journal, *Recovery) {
	t.Helper()
	j, rec, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, rec
}

// appendTurn journals turn i.
func appendTurn(j *Journal, i int) (Ticket, error) {
	ex := chatExchange(i)
	return appendWaiting(j, &ex)
}

// appendWaiting journals ex. The tests' segments are small enough for
// appends to outrun the journal's goroutine that makes the next one: an
// append it is behind for waits for it and tries again.
func appendWaiting(j *Journal, ex *capture.Exchange) (Ticket, error) {
	for {
		tk, err := j.Append(7, ex)
		if !errors.Is(err, ErrBehind) {
			return tk, err
		}
		waitSpare(j)
	}
}

// waitSpare waits until the journal's goroutine has made the next segment
// or failed to.
func waitSpare(j *Journal) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.spare == nil && j.makeErr == nil && !j.closed {
		j.ready.Wait()
	}
}

func appendTurns(t *testing.T, j *Journal, from, to int) []Ticket {
	t.Helper()
	var out []Ticket
	for i := from; i < to; i++ {
		tk, err := appendTurn(j, i)
		if err != nil {
			t.Fatalf("append turn %d: %v", i, err)
		}
		out = append(out, tk)
	}
	return out
}

// turnsOf returns which chat turns the recovered records are.
func turnsOf(t *testing.T, rec *Recovery) []int {
	t.Helper()
	var out []int
	for _, r := range rec.Records {
		var i int
		if _, err := fmt.Sscanf(r.Record.Exchange.RawQuery, "turn=%d", &i); err != nil {
			t.Fatalf("recovered record with query %q", r.Record.Exchange.RawQuery)
		}
		if want := chatExchange(i); !reflect.DeepEqual(r.Record.Exchange, want) {
			t.Errorf("turn %d came back as\n%+v\nwant\n%+v", i, r.Record.Exchange, want)
		}
		if r.Record.Route != 7 || !r.Ticket.Valid() {
			t.Errorf("turn %d: route %d, valid ticket %t", i, r.Record.Route, r.Ticket.Valid())
		}
		out = append(out, i)
	}
	return out
}

// A process that dies leaves its segments as they are: reopening returns
// what was never committed, in the order it was recorded, and nothing that
// was. Released exchanges were not committed, so they come back too.
func TestReopenReturnsWhatWasNotCommitted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		commit    []int
		release   []int
		want      []int
		committed int
	}{
		{"nothing committed", nil, nil, []int{0, 1, 2, 3, 4, 5}, 0},
		{"all committed", []int{0, 1, 2, 3, 4, 5}, nil, nil, 6},
		{"committed out of order", []int{4, 1, 5}, nil, []int{0, 2, 3}, 3},
		{"released but not committed", []int{0}, []int{1, 2}, []int{1, 2, 3, 4, 5}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j, rec := openJournal(t, dir, Options{})
			if len(rec.Records) != 0 {
				t.Fatalf("a new journal recovered %d records", len(rec.Records))
			}
			tks := appendTurns(t, j, 0, 6)
			var commit, release []Ticket
			for _, i := range tc.commit {
				commit = append(commit, tks[i])
			}
			for _, i := range tc.release {
				release = append(release, tks[i])
			}
			if err := j.Commit(commit); err != nil {
				t.Fatal(err)
			}
			j.Release(release...)
			j.Close()

			_, rec = openJournal(t, dir, Options{})
			if got := turnsOf(t, rec); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("recovered turns %v, want %v", got, tc.want)
			}
			if rec.Committed != tc.committed || rec.TornTails != 0 {
				t.Errorf("committed %d, torn tails %d; want %d, 0", rec.Committed, rec.TornTails, tc.committed)
			}
		})
	}
}

// A recovered exchange is recorded again in the new run under its first
// origin, so that what is derived from it is named the same way however
// often it is replayed; once committed in a later run it is done.
func TestRecoveredExchangesKeepTheirOrigin(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{})
	tks := appendTurns(t, j, 0, 3)
	j.Close()

	j2, rec := openJournal(t, dir, Options{})
	for i, r := range rec.Records {
		if r.Ticket.Origin() != tks[i].Origin() || r.Record.Origin != tks[i].Origin() {
			t.Errorf("turn %d: origin %v after one reopening, was %v", i, r.Ticket.Origin(), tks[i].Origin())
		}
	}
	if err := j2.Commit([]Ticket{rec.Records[1].Ticket}); err != nil {
		t.Fatal(err)
	}
	j2.Close()

	_, rec = openJournal(t, dir, Options{})
	if got := turnsOf(t, rec); fmt.Sprint(got) != "[0 2]" {
		t.Errorf("after a second reopening: turns %v, want [0 2]", got)
	}
	for _, r := range rec.Records {
		if o := r.Ticket.Origin(); o.Run != tks[0].Origin().Run {
			t.Errorf("origin run %x, want the first run's %x", o.Run, tks[0].Origin().Run)
		}
	}
}

// A process killed while it recovers leaves the earlier run's segments
// beside its own copies: each exchange comes back once, and one committed
// under either name is done.
func TestKilledDuringRecoveryReturnsEachExchangeOnce(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{})
	appendTurns(t, j, 0, 4)
	j.Close()
	first := readDir(t, dir)

	j2, rec := openJournal(t, dir, Options{})
	if err := j2.Commit([]Ticket{rec.Records[2].Ticket}); err != nil {
		t.Fatal(err)
	}
	j2.Close()
	for name, data := range first {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	j3, rec := openJournal(t, dir, Options{})
	if got := turnsOf(t, rec); fmt.Sprint(got) != "[0 1 3]" {
		t.Errorf("turns %v, want [0 1 3]", got)
	}
	j3.Close()
	if left := readDir(t, dir); len(left) != 1 {
		t.Errorf("after recovery the directory holds %d segments, want the new run's one", len(left))
	}
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[de.Name()] = b
	}
	return out
}

// Segments go as commits advance, oldest first: one whose exchanges are
// all committed stays while an older one still has a pending exchange,
// because its commit records may be the older one's.
func TestSegmentsAreDeletedOnceEverythingBeforeIsCommitted(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{SegmentBytes: 1024})
	tks := appendTurns(t, j, 0, 40)
	if n := j.Size() / 1024; n < 5 {
		t.Fatalf("40 turns in 1 KiB segments used %d segments", n)
	}
	if err := j.Commit(tks[1:]); err != nil {
		t.Fatal(err)
	}
	if n := j.Size() / 1024; n < 5 {
		t.Errorf("with the first turn pending, %d segments are kept; the later ones must wait", n)
	}
	if err := j.Commit(tks[:1]); err != nil {
		t.Fatal(err)
	}
	if j.Size() != 1024 {
		t.Errorf("everything committed, yet the journal holds %d bytes, want the one segment in use", j.Size())
	}
	j.Close()
	if left := readDir(t, dir); len(left) != 1 {
		t.Errorf("everything committed and closed, yet %d segment files are left, want the one in use", len(left))
	}
	if _, rec := openJournal(t, dir, Options{}); len(rec.Records) != 0 {
		t.Errorf("%d records recovered after everything was committed", len(rec.Records))
	}
}

// A full journal refuses exchanges (they go on without one) instead of
// growing or waiting, and takes them again once commits free space.
func TestFullJournalRefusesUntilCommitsFreeSpace(t *testing.T) {
	j, _ := openJournal(t, t.TempDir(), Options{SegmentBytes: 1024, MaxBytes: 4096})
	var tks []Ticket
	var err error
	for i := 0; err == nil; i++ {
		if i > 100 {
			t.Fatal("a 4 KiB journal took 100 exchanges")
		}
		var tk Ticket
		if tk, err = appendTurn(j, i); err == nil {
			tks = append(tks, tk)
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append to a full journal: %v, want ErrFull", err)
	}
	if j.Size() > 4096 {
		t.Errorf("journal holds %d bytes, bound 4096", j.Size())
	}
	if err := j.Commit(tks); err != nil {
		t.Fatal(err)
	}
	if _, err := appendTurn(j, 0); err != nil {
		t.Errorf("append after everything was committed: %v", err)
	}
}

// What a killed process leaves half written, or a damaged file, ends the
// segment for the reader: the records before are recovered, the tail is
// counted, nothing after it is trusted. The zeros a segment is made with
// end it cleanly.
func TestDamagedTailIsSkippedAndCounted(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage gets the segment file and where its three frames end.
		damage func(b []byte, ends []int) []byte
		want   string
		torn   int
	}{
		{"zeros after the last record", func(b []byte, _ []int) []byte { return b }, "[0 1 2]", 0},
		{"file ends with the last record", func(b []byte, ends []int) []byte { return b[:ends[2]] }, "[0 1 2]", 0},
		{"killed before the last record was sealed", func(b []byte, ends []int) []byte {
			clear(b[ends[1] : ends[1]+frameHeader])
			return b
		}, "[0 1]", 1},
		{"killed while the last record was copied", func(b []byte, ends []int) []byte {
			clear(b[ends[1] : ends[1]+frameHeader])
			clear(b[ends[1]+(ends[2]-ends[1])/2 : ends[2]])
			return b
		}, "[0 1]", 1},
		{"file cut in the last record", func(b []byte, ends []int) []byte { return b[:ends[2]-5] }, "[0 1]", 1},
		{"file cut in the last record's length", func(b []byte, ends []int) []byte { return b[:ends[1]+3] }, "[0 1]", 1},
		{"bad checksum in the middle", func(b []byte, ends []int) []byte { b[ends[1]-20] ^= 0x40; return b }, "[0]", 1},
		{"garbage after the last record", func(b []byte, ends []int) []byte {
			copy(b[ends[2]:], strings.Repeat("\x7f", 40))
			return b
		}, "[0 1 2]", 1},
		{"garbage far after the last record", func(b []byte, ends []int) []byte { b[len(b)-1] = 1; return b }, "[0 1 2]", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := openJournal(t, dir, Options{})
			appendTurns(t, j, 0, 3)
			j.Close()
			files := readDir(t, dir)
			if len(files) != 1 {
				t.Fatalf("three turns left %d segment files, want 1", len(files))
			}
			for name, data := range files {
				os.WriteFile(filepath.Join(dir, name), tc.damage(data, frameEnds(data)), 0o600)
			}
			_, rec := openJournal(t, dir, Options{})
			if got := turnsOf(t, rec); fmt.Sprint(got) != tc.want {
				t.Errorf("recovered turns %v, want %s", got, tc.want)
			}
			if rec.TornTails != tc.torn || (rec.TailBytes == 0) != (tc.torn == 0) {
				t.Errorf("torn tails %d (%d bytes), want %d", rec.TornTails, rec.TailBytes, tc.torn)
			}
		})
	}
}

// frameEnds returns where the frames of a clean segment end.
func frameEnds(b []byte) []int {
	entries, _ := readSegment(b)
	var ends []int
	n := 0
	for _, e := range entries {
		n += len(encodeEntry(e))
		ends = append(ends, n)
	}
	return ends
}

// encodeEntry is the frame an entry was read from.
func encodeEntry(e entry) []byte {
	var frame []byte
	if e.rec != nil {
		frame = appendExchangeFrame(nil, e.id, e.rec.Origin, e.rec.Route, &e.rec.Exchange)
	} else {
		frame = appendCommitFrame(nil, e.commits)
	}
	seal(frame)
	return frame
}

// After Close, appends fail and leave the files alone.
func TestAppendAfterCloseFails(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{})
	appendTurns(t, j, 0, 1)
	j.Close()
	before := readDir(t, dir)
	ex := chatExchange(1)
	if _, err := j.Append(7, &ex); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v, want ErrClosed", err)
	}
	if after := readDir(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("an append after close changed the files")
	}
}

// Handlers append and workers commit at the same time, across segment
// rotations: reopening returns exactly the exchanges never committed.
func TestConcurrentAppendsAndCommitsLoseNothing(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{SegmentBytes: 4096})
	const writers, each = 8, 100
	var mu sync.Mutex
	uncommitted := map[int]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []Ticket
			for i := w * each; i < (w+1)*each; i++ {
				tk, err := appendTurn(j, i)
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					mu.Lock()
					uncommitted[i] = true
					mu.Unlock()
					continue
				}
				if batch = append(batch, tk); len(batch) == 5 {
					j.Commit(batch)
					batch = nil
				}
			}
			j.Commit(batch)
		}()
	}
	wg.Wait()
	j.Close()
	_, rec := openJournal(t, dir, Options{})
	got := map[int]bool{}
	for _, i := range turnsOf(t, rec) {
		if got[i] {
			t.Errorf("turn %d recovered twice", i)
		}
		got[i] = true
	}
	if !reflect.DeepEqual(got, uncommitted) {
		t.Errorf("recovered %d turns, want the %d never committed", len(got), len(uncommitted))
	}
}

// An exchange larger than a segment, such as a chat turn carrying an
// image, gets a segment of its own, and comes back in the order it was
// recorded among the others.
func TestExchangeLargerThanASegmentKeepsItsPlace(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{SegmentBytes: 1024})
	large := map[int]bool{1: true, 3: true, 4: true}
	turn := func(i int) capture.Exchange {
		ex := chatExchange(i)
		if large[i] {
			ex.RequestBody = []byte(fmt.Sprintf(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}]}]}`, strings.Repeat("iVBORw0KGgo", 300)))
		}
		return ex
	}
	for i := range 6 {
		ex := turn(i)
		if _, err := appendWaiting(j, &ex); err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
	}
	j.Close()
	if n := len(readDir(t, dir)); n != 6 {
		t.Errorf("%d segment files, want 6: a large turn's own, and a new one after each", n)
	}
	_, rec := openJournal(t, dir, Options{SegmentBytes: 1024})
	if len(rec.Records) != 6 || rec.TornTails != 0 {
		t.Fatalf("recovered %d records, %d torn tails; want 6, 0", len(rec.Records), rec.TornTails)
	}
	for i, r := range rec.Records {
		if want := turn(i); !reflect.DeepEqual(r.Record.Exchange, want) {
			t.Errorf("record %d is %s (%d request bytes), want turn %d (%d)", i, r.Record.Exchange.RawQuery, len(r.Record.Exchange.RequestBody), i, len(want.RequestBody))
		}
	}
}

// When the journal's goroutine cannot make the next segment, appends fail
// (the exchange goes on without a record) rather than wait, and succeed
// again once a segment can be made.
func TestSegmentThatCannotBeMadeFailsAppendsUntilOneCan(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{SegmentBytes: 1024})
	// A directory where the third segment's file is to be made.
	if err := os.Mkdir(j.mappedPath(2), 0o700); err != nil {
		t.Fatal(err)
	}
	var recorded []int
	failed := -1
	for i := 0; i < 40 && (failed < 0 || i < failed+5); i++ {
		_, err := appendTurn(j, i)
		switch {
		case err == nil:
			recorded = append(recorded, i)
		case failed < 0 && errors.Is(err, fs.ErrExist):
			failed = i
		default:
			t.Fatalf("turn %d: %v", i, err)
		}
	}
	if failed < 0 {
		t.Fatal("no append failed though the third segment could not be made")
	}
	j.Close()
	_, rec := openJournal(t, dir, Options{})
	if got := turnsOf(t, rec); fmt.Sprint(got) != fmt.Sprint(recorded) {
		t.Errorf("recovered turns %v, want the ones recorded %v", got, recorded)
	}
}

// A segment whose exchanges are all committed is zeroed and renamed into a
// later one: nothing it held comes back, and it reads as a clean segment.
func TestReusedSegmentsHoldNoEarlierRecords(t *testing.T) {
	dir := t.TempDir()
	j, _ := openJournal(t, dir, Options{SegmentBytes: 1024})
	for i := 0; i < 60; i += 3 {
		if err := j.Commit(appendTurns(t, j, i, i+3)); err != nil {
			t.Fatal(err)
		}
	}
	appendTurns(t, j, 60, 62)
	j.Close()
	_, rec := openJournal(t, dir, Options{SegmentBytes: 1024})
	if got := turnsOf(t, rec); fmt.Sprint(got) != "[60 61]" || rec.TornTails != 0 {
		t.Errorf("recovered turns %v with %d torn tails, want [60 61] and none", got, rec.TornTails)
	}
}

// Segments the previous build wrote (named without a sub, written by
// write(2), so without zeroed room) are read at start: what they hold
// uncommitted comes back, and they are deleted like any earlier segment.
func TestSegmentsOfThePreviousBuildAreRecovered(t *testing.T) {
	dir := t.TempDir()
	const run = 0x1234
	var data []byte
	for i := range 3 {
		ex := chatExchange(i)
		frame := appendExchangeFrame(nil, uint64(i+1), Origin{Run: run, ID: uint64(i + 1)}, 7, &ex)
		seal(frame)
		data = append(data, frame...)
	}
	commit := appendCommitFrame(nil, []uint64{2})
	seal(commit)
	data = append(data, commit...)
	old := filepath.Join(dir, fmt.Sprintf("%016x-%016x-%08x.seg", int64(1), uint64(run), 0))
	if err := os.WriteFile(old, data, 0o600); err != nil {
		t.Fatal(err)
	}

	_, rec := openJournal(t, dir, Options{})
	if got := turnsOf(t, rec); fmt.Sprint(got) != "[0 2]" {
		t.Errorf("recovered turns %v, want [0 2]", got)
	}
	if rec.Committed != 1 || rec.TornTails != 0 {
		t.Errorf("committed %d, torn tails %d; want 1, 0", rec.Committed, rec.TornTails)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the previous build's segment is still there: %v", err)
	}
}
