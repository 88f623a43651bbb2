// Package journal keeps finished exchanges in files until their events are
// in the outbox, so that a process killed in between loses nothing.
//
// The journal is a directory of segment files, each made whole, zeroed and
// mapped shared into memory before it is needed, by a goroutine of the
// journal's own. Journalling an exchange encodes it straight into the
// mapping of the newest segment, under a short lock: no system call. A
// page of a shared mapping that the process has written is in the page
// cache, the same as a write(2) would leave it, and reaches the file when
// the kernel writes it back whether or not the process is still alive;
// there is no fsync, so what the journal holds survives the death of the
// process, not of the machine.
//
// Commit records say which exchanges are stored in the outbox. A segment
// is deleted, or zeroed to become a later one, by the journal's goroutine,
// once every exchange in it is committed or released and every older
// segment is gone, so the journal holds little more than what is in
// flight. Opening the journal reads what an earlier run left, and hands
// back the exchanges that were never committed, recorded again in the new
// run.
package journal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
)

// ErrFull is returned by Append when the journal holds its MaxBytes: the
// exchange goes on without a journal record.
var ErrFull = errors.New("journal: full")

// ErrBehind is returned by Append when the segment it needs is not ready
// yet: the exchange goes on without a journal record rather than wait.
var ErrBehind = errors.New("journal: next segment not ready")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("journal: closed")

// Default sizes.
const (
	DefaultSegmentBytes = 1 << 20
	DefaultMaxBytes     = 64 << 20
)

// Options size a journal; zero fields take the defaults.
type Options struct {
	// SegmentBytes is the size of a mapped segment file. A larger frame
	// gets a segment file of its own.
	SegmentBytes int64
	// MaxBytes bounds the segments in use (the one made ready next is
	// not counted): an exchange that would pass it is not journalled
	// (ErrFull).
	MaxBytes int64
}

// Journal is an open journal directory. Its methods are safe for
// concurrent use.
type Journal struct {
	dir   string
	opts  Options
	run   uint64
	start int64 // when the run began, orders segment names across runs
	last  atomic.Uint64

	mu      sync.Mutex
	ready   sync.Cond // a spare was made, or could not be
	closed  bool
	segs    []*segment // in use, oldest first; the last one is written
	bytes   int64      // size of segs
	index   int        // of the next mapped segment of this run
	spare   *segment   // the next mapped segment, once ready
	making  bool       // the keeper is making the spare
	makeErr error      // why the keeper could not make the spare
	retired []*segment // for the keeper to delete
	kick    chan struct{}
	kept    chan struct{} // closed when the keeper is done
}

// Ticket stands for one journalled exchange until it is committed or
// released. The zero Ticket stands for none.
type Ticket struct {
	seg    *segment
	id     uint64
	origin Origin
}

// Valid reports whether the ticket stands for a journalled exchange.
func (t Ticket) Valid() bool { return t.seg != nil }

// Origin is the exchange's lasting name.
func (t Ticket) Origin() Origin { return t.origin }

// Recovered is an exchange an earlier run left uncommitted, journalled
// again in this run.
type Recovered struct {
	Ticket Ticket
	Record *Record
}

// Recovery is what Open found of earlier runs.
type Recovery struct {
	// Records are the uncommitted exchanges, in the order they were
	// recorded, each once.
	Records []Recovered
	// Committed counts the exchanges found committed (not replayed).
	Committed int
	// TornTails counts segments whose end was torn or corrupt, and
	// TailBytes the bytes skipped so.
	TornTails int
	TailBytes int64
}

// Open opens the journal in dir, creating it if needed, reads what earlier
// runs left there, records the uncommitted exchanges again in a new run
// and deletes the earlier segments. If it fails, they are left as they
// were.
func Open(dir string, opts Options) (*Journal, *Recovery, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	old, err := segmentFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	rec, err := readRuns(old)
	if err != nil {
		return nil, nil, err
	}
	var runID [8]byte
	rand.Read(runID[:])
	j := &Journal{dir: dir, opts: opts, run: binary.BigEndian.Uint64(runID[:]), start: time.Now().UnixNano(),
		kick: make(chan struct{}, 1), kept: make(chan struct{})}
	j.ready.L = &j.mu
	first, err := createMapped(j.mappedPath(0), 0, int(opts.SegmentBytes))
	if err != nil {
		return nil, nil, err
	}
	j.index = 1
	j.segs = []*segment{first}
	j.bytes = int64(first.size)
	go j.keep()
	j.kickKeeper()
	for i := range rec.Records {
		r := rec.Records[i].Record
		// Recovered exchanges are kept whatever the bound: they were
		// journalled under it once, and leaving them out loses them.
		if rec.Records[i].Ticket, err = j.append(r.Origin, r.Route, &r.Exchange, false); err != nil {
			j.discard()
			return nil, nil, err
		}
	}
	for _, path := range old {
		if err := os.Remove(path); err != nil {
			// The new run holds copies now: a later Open returns each
			// exchange once, whichever copies are left.
			j.Close()
			return nil, nil, fmt.Errorf("journal: %w", err)
		}
	}
	return j, rec, nil
}

func (j *Journal) mappedPath(index int) string {
	return filepath.Join(j.dir, segmentName(j.start, j.run, index, 0))
}

// readRuns reads the segments of earlier runs. An exchange is committed
// when a commit record of its run names it, or names a copy of it (an
// earlier recovery recorded it again under another id); each uncommitted
// one is returned once, where it was first recorded.
func readRuns(paths []string) (*Recovery, error) {
	type key struct{ run, id uint64 }
	type found struct {
		at  key
		rec *Record
	}
	rec := &Recovery{}
	committed := map[key]bool{}
	var exchanges []found
	for _, path := range paths {
		run, _ := segmentRun(filepath.Base(path))
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		entries, tail := readSegment(data)
		if tail > 0 {
			rec.TornTails++
			rec.TailBytes += int64(tail)
		}
		for _, e := range entries {
			if e.rec != nil {
				exchanges = append(exchanges, found{key{run, e.id}, e.rec})
			}
			for _, id := range e.commits {
				committed[key{run, id}] = true
			}
		}
	}
	done := map[Origin]bool{}
	for _, x := range exchanges {
		if committed[x.at] {
			done[x.rec.Origin] = true
		}
	}
	for _, x := range exchanges {
		if done[x.rec.Origin] {
			if committed[x.at] {
				rec.Committed++
			}
			continue
		}
		done[x.rec.Origin] = true
		rec.Records = append(rec.Records, Recovered{Record: x.rec})
	}
	return rec, nil
}

// keep makes the next mapped segment ahead of need and deletes the
// segments no longer needed, off the paths that journal and commit, until
// Close. One segment it would delete is zeroed and kept instead, to be
// renamed into the next one: that costs a fraction of making a file.
func (j *Journal) keep() {
	defer close(j.kept)
	var free *segment
	defer func() {
		if free != nil {
			free.remove()
		}
	}()
	for range j.kick {
		j.mu.Lock()
		retired := j.retired
		j.retired = nil
		index, want := j.index, j.spare == nil && !j.making && !j.closed
		if want {
			j.index++
			j.making = true
		}
		j.mu.Unlock()
		for _, s := range retired {
			if free == nil && s.data != nil {
				// Zeroed under its own name: a process killed meanwhile
				// leaves a segment without records, or with a torn start.
				clear(s.data)
				free = s
				continue
			}
			s.remove()
		}
		if !want {
			continue
		}
		path := j.mappedPath(index)
		var s *segment
		var err error
		if free != nil {
			s, err = free.renamed(path, index)
			free = nil
		} else {
			s, err = createMapped(path, index, int(j.opts.SegmentBytes))
		}
		j.mu.Lock()
		j.making = false
		if j.closed && s != nil {
			s.remove()
		} else {
			j.spare, j.makeErr = s, err
		}
		j.ready.Broadcast()
		j.mu.Unlock()
	}
}

// kickKeeper has the keeper look for work; j.mu is held.
func (j *Journal) kickKeeper() {
	if j.closed {
		return
	}
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// Append journals a finished exchange of the handler configuration route
// and returns its ticket. It fails with ErrFull when the journal holds
// MaxBytes, ErrBehind when the next segment is not ready, ErrClosed after
// Close, or the error of writing a segment of its own.
func (j *Journal) Append(route uint64, ex *capture.Exchange) (Ticket, error) {
	return j.append(Origin{}, route, ex, true)
}

// append journals ex, under a new origin unless it has one. Unbounded
// appends (of recovered exchanges) ignore MaxBytes and wait for the next
// segment rather than fail.
func (j *Journal) append(o Origin, route uint64, ex *capture.Exchange, bounded bool) (Ticket, error) {
	id := j.last.Add(1)
	if o == (Origin{}) {
		o = Origin{Run: j.run, ID: id}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return Ticket{}, ErrClosed
	}
	room := j.room()
	seg, err := j.put(room, appendExchangeFrame(room, id, o, route, ex), bounded)
	if err != nil {
		return Ticket{}, err
	}
	seg.pending++
	return Ticket{seg: seg, id: id, origin: o}, nil
}

// room is where the next frame is encoded: the rest of the mapped segment
// in use, as an empty slice. j.mu is held.
func (j *Journal) room() []byte {
	cur := j.current()
	if cur.full {
		return nil
	}
	return cur.data[cur.used:cur.used:cur.size]
}

// put seals frame, encoded by appending to room, and returns its segment.
// A frame that did not fit was moved by append: what it left in the
// segment is cleared, and the frame goes to the next segment, or one of
// its own if it is larger than a segment. j.mu is held.
func (j *Journal) put(room, frame []byte, bounded bool) (*segment, error) {
	cur := j.current()
	if len(frame) <= cap(room) {
		seal(frame)
		cur.used += len(frame)
		return cur, nil
	}
	clear(room[:cap(room)])
	if int64(len(frame)) > j.opts.SegmentBytes {
		return j.putWhole(frame, bounded)
	}
	if bounded && j.bytes+j.opts.SegmentBytes > j.opts.MaxBytes {
		return nil, ErrFull
	}
	for j.spare == nil {
		switch {
		case j.closed:
			return nil, ErrClosed
		case j.makeErr != nil:
			err := j.makeErr
			j.makeErr = nil
			j.kickKeeper()
			return nil, err
		case bounded:
			return nil, ErrBehind
		}
		j.ready.Wait()
	}
	cur.full = true
	next := j.spare
	j.spare = nil
	j.segs = append(j.segs, next)
	j.bytes += int64(next.size)
	j.kickKeeper()
	next.used = copy(next.data, frame)
	seal(next.data[:next.used])
	return next, nil
}

// putWhole writes a frame larger than a mapped segment as a segment of
// its own, right after the segment in use, which takes no more frames so
// that later ones come after it. j.mu is held.
func (j *Journal) putWhole(frame []byte, bounded bool) (*segment, error) {
	if bounded && j.bytes+int64(len(frame)) > j.opts.MaxBytes {
		return nil, ErrFull
	}
	cur := j.current()
	cur.full = true
	seg := &segment{path: filepath.Join(j.dir, segmentName(j.start, j.run, cur.index, cur.sub+1)), index: cur.index, sub: cur.sub + 1, full: true}
	seal(frame)
	if err := seg.writeWhole(frame); err != nil {
		return nil, err
	}
	j.segs = append(j.segs, seg)
	j.bytes += int64(seg.size)
	return seg, nil
}

func (j *Journal) current() *segment { return j.segs[len(j.segs)-1] }

// Commit records that the tickets' exchanges are in the outbox, so a later
// Open does not return them, and releases them. The tickets are released
// even if the record cannot be written; their exchanges may then be
// returned by a later Open again.
func (j *Journal) Commit(ts []Ticket) error {
	var ids []uint64
	for _, t := range ts {
		if t.Valid() {
			ids = append(ids, t.id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var err error
	if !j.closed {
		room := j.room()
		_, err = j.put(room, appendCommitFrame(room, ids), false)
	}
	j.release(ts)
	return err
}

// Release lets go of tickets without a commit record: their segments may
// be deleted, but until then a later Open returns their exchanges.
func (j *Journal) Release(ts ...Ticket) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.release(ts)
}

// release decrements the tickets' segments and retires the segments no
// longer needed; j.mu is held.
func (j *Journal) release(ts []Ticket) {
	for _, t := range ts {
		if t.Valid() {
			t.seg.pending--
		}
	}
	j.trim()
}

// trim hands the oldest segments to the keeper to delete while nothing in
// them is pending; the segment being written stays. Oldest first, so that
// the commit records of a kept segment's exchanges, which are written
// after them, are kept too.
func (j *Journal) trim() {
	if j.closed {
		return
	}
	n := 0
	for n < len(j.segs)-1 && j.segs[n].pending == 0 {
		j.bytes -= int64(j.segs[n].size)
		j.retired = append(j.retired, j.segs[n])
		n++
	}
	if n > 0 {
		j.segs = j.segs[n:]
		j.kickKeeper()
	}
}

// Size returns the bytes the journal's segments in use hold.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bytes
}

// Close stops the keeper, deletes the segments it was to delete and the
// spare, and unmaps the others, keeping them for the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	close(j.kick)
	j.ready.Broadcast()
	j.mu.Unlock()
	<-j.kept
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range j.retired {
		s.remove()
	}
	if j.spare != nil {
		j.spare.remove()
	}
	var errs []error
	for _, s := range j.segs {
		if err := s.close(); err != nil {
			errs = append(errs, fmt.Errorf("journal: %w", err))
		}
	}
	return errors.Join(errs...)
}

// discard closes and deletes this run's segments: Open failed.
func (j *Journal) discard() {
	j.Close()
	for _, s := range j.segs {
		os.Remove(s.path)
	}
}
