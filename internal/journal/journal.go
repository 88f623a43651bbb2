// Package journal keeps finished exchanges in an append-only file until
// their events are in the outbox, so that a process killed in between
// loses nothing: each exchange costs one write(2) into the page cache and
// no fsync, which survives the death of the process but not of the
// machine.
//
// The journal is a directory of segment files. Records of exchanges are
// appended to the newest segment; commit records say which of them are
// stored in the outbox. A segment is deleted once every exchange in it is
// committed or released and every older segment is gone, so the journal
// holds little more than what is in flight. Opening the journal reads what
// an earlier run left, and hands back the exchanges that were never
// committed, recorded again in the new run.
package journal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
)

// ErrFull is returned by Append when the journal holds its MaxBytes: the
// exchange goes on without a journal record.
var ErrFull = errors.New("journal: full")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("journal: closed")

// Default sizes.
const (
	DefaultSegmentBytes = 1 << 20
	DefaultMaxBytes     = 64 << 20
)

// Options size a journal; zero fields take the defaults.
type Options struct {
	// SegmentBytes is the size past which a new segment is started.
	SegmentBytes int64
	// MaxBytes bounds the segments kept: an exchange that would pass it is
	// not journalled (ErrFull).
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
	pool  sync.Pool

	mu     sync.Mutex
	closed bool
	segs   []*segment // oldest first; the last one is written
	bytes  int64      // size of segs
	index  int        // of the next segment of this run
	broken bool       // a write failed: the next record starts a segment
}

type segment struct {
	path    string
	f       *os.File
	size    int64
	pending int // exchanges neither committed nor released
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
	j := &Journal{dir: dir, opts: opts, run: binary.BigEndian.Uint64(runID[:]), start: time.Now().UnixNano()}
	if err := j.startSegment(); err != nil {
		return nil, nil, err
	}
	for i := range rec.Records {
		r := &rec.Records[i]
		// Recovered exchanges are kept whatever the bound: they were
		// journalled under it once, and leaving them out loses them.
		if r.Ticket, err = j.append(r.Record, false); err != nil {
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

// segmentName orders segments by run start, then by index in the run.
func segmentName(start int64, run uint64, index int) string {
	return fmt.Sprintf("%016x-%016x-%08x.seg", start, run, index)
}

// segmentRun returns the run of a segment file name.
func segmentRun(name string) (uint64, bool) {
	var start, run uint64
	var index uint32
	if _, err := fmt.Sscanf(name, "%016x-%016x-%08x.seg", &start, &run, &index); err != nil {
		return 0, false
	}
	return run, segmentName(int64(start), run, int(index)) == name
}

// segmentFiles lists dir's segments, oldest first; other files are left
// alone.
func segmentFiles(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []string
	for _, de := range des {
		if _, ok := segmentRun(de.Name()); ok && de.Type().IsRegular() {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
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

// startSegment creates the next segment of this run; j.mu is held or j is
// not shared yet.
func (j *Journal) startSegment() error {
	path := filepath.Join(j.dir, segmentName(j.start, j.run, j.index))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.index++
	j.segs = append(j.segs, &segment{path: path, f: f})
	j.broken = false
	return nil
}

// Append journals a finished exchange of the handler configuration route
// with one write, and returns its ticket. It fails with ErrFull when the
// journal holds MaxBytes, ErrClosed after Close, or the write's error.
func (j *Journal) Append(route uint64, ex *capture.Exchange) (Ticket, error) {
	return j.append(&Record{Route: route, Exchange: *ex}, true)
}

// append journals r, under a new origin unless it has one.
func (j *Journal) append(r *Record, bounded bool) (Ticket, error) {
	id := j.last.Add(1)
	if r.Origin == (Origin{}) {
		r.Origin = Origin{Run: j.run, ID: id}
	}
	bp, _ := j.pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := appendFrame((*bp)[:0], func(b []byte) []byte { return appendExchange(b, id, r) })
	defer j.putBuffer(bp, buf)

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return Ticket{}, ErrClosed
	}
	if bounded && j.bytes+int64(len(buf)) > j.opts.MaxBytes {
		return Ticket{}, ErrFull
	}
	if cur := j.current(); j.broken || cur.size > 0 && cur.size+int64(len(buf)) > j.opts.SegmentBytes {
		if err := j.startSegment(); err != nil {
			return Ticket{}, err
		}
		j.trim()
	}
	seg := j.current()
	if err := j.write(buf); err != nil {
		return Ticket{}, err
	}
	seg.pending++
	return Ticket{seg: seg, id: id, origin: r.Origin}, nil
}

// write appends buf to the current segment; j.mu is held. What a failed
// write leaves is a torn frame that ends the segment for a reader: later
// records go to a new one.
func (j *Journal) write(buf []byte) error {
	seg := j.current()
	n, err := seg.f.Write(buf)
	seg.size += int64(n)
	j.bytes += int64(n)
	if err != nil {
		j.broken = true
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// maxPooled keeps buffers of huge exchanges from staying in the pool.
const maxPooled = 64 << 10

func (j *Journal) putBuffer(bp *[]byte, buf []byte) {
	if cap(buf) <= maxPooled {
		*bp = buf
		j.pool.Put(bp)
	}
}

func (j *Journal) current() *segment { return j.segs[len(j.segs)-1] }

// Commit records with one write that the tickets' exchanges are in the
// outbox, so a later Open does not return them, and releases them. The
// tickets are released even if the write fails; their exchanges may then
// be returned by a later Open again.
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
	buf := appendFrame(nil, func(b []byte) []byte { return appendCommit(b, ids) })
	j.mu.Lock()
	defer j.mu.Unlock()
	var err error
	if j.broken && !j.closed {
		err = j.startSegment()
	}
	if err == nil && !j.closed {
		err = j.write(buf)
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

// release decrements the tickets' segments and deletes the segments no
// longer needed; j.mu is held.
func (j *Journal) release(ts []Ticket) {
	for _, t := range ts {
		if t.Valid() {
			t.seg.pending--
		}
	}
	j.trim()
}

// trim deletes the oldest segments while nothing in them is pending; the
// segment being written stays. Oldest first, so that the commit records of
// a kept segment's exchanges, which are written after them, are kept too.
func (j *Journal) trim() {
	if j.closed {
		return
	}
	for len(j.segs) > 1 && j.segs[0].pending == 0 {
		s := j.segs[0]
		s.f.Close()
		os.Remove(s.path)
		j.bytes -= s.size
		j.segs = j.segs[1:]
	}
}

// Size returns the bytes the journal's segments hold.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bytes
}

// Close closes the segment files, keeping them for the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	var errs []error
	for _, s := range j.segs {
		errs = append(errs, s.f.Close())
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
