package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/journal"
)

// JournalConfig sets the capture journal of a durable outbox: every
// finished exchange is written to a file beside the outbox before the
// handler returns, and what Caddy was killed before storing in the outbox
// is derived and stored when it starts again. Off turns it off; an outbox
// in memory has none.
type JournalConfig struct {
	Off bool `json:"off,omitempty"`
}

// journalDir is where the journal of an outbox file lives.
func journalDir(outboxPath string) string { return outboxPath + "-journal" }

// openJournal opens the journal beside the outbox and keeps what an
// earlier process left for replay; rt.mu is held. A journal that cannot be
// opened is logged and done without: the proxy runs as it would without
// one, and the files stay for the next start.
func (rt *pipeline) openJournal(cfg *JournalConfig) {
	if !rt.wantsJournal(cfg) {
		return
	}
	rt.journalOn = true
	dir := journalDir(rt.outbox.Path)
	j, rec, err := journal.Open(dir, journal.Options{})
	if err != nil {
		rt.logger.Error("capture journal not opened: exchanges of a killed process may be lost", zap.String("dir", dir), zap.Error(err))
		return
	}
	metrics.journalTornTails.Add(float64(rec.TornTails))
	if rec.TornTails > 0 {
		rt.logger.Warn("capture journal: skipped a torn or corrupt end", zap.Int("segments", rec.TornTails), zap.Int64("bytes", rec.TailBytes))
	}
	if len(rec.Records) > 0 {
		rt.logger.Info("capture journal: storing exchanges an earlier process left unstored",
			zap.Int("exchanges", len(rec.Records)), zap.Int("already_stored", rec.Committed))
	}
	rt.recovered = rec.Records
	rt.journal.Store(j)
}

// wantsJournal reports whether a configuration asks this pipeline for a
// capture journal.
func (rt *pipeline) wantsJournal(cfg *JournalConfig) bool {
	return rt.outbox.Kind != "memory" && (cfg == nil || !cfg.Off)
}

// record journals a finished exchange on the request path. When the
// journal is full, behind or fails, the exchange goes on without it,
// counted.
func (rt *pipeline) record(r *route, ex *capture.Exchange) journal.Ticket {
	j := rt.journal.Load()
	if j == nil {
		return journal.Ticket{}
	}
	t, err := j.Append(r.key, ex)
	switch {
	case err == nil:
	case errors.Is(err, journal.ErrFull):
		metrics.journalSkipped.WithLabelValues("full").Inc()
	case errors.Is(err, journal.ErrBehind):
		metrics.journalSkipped.WithLabelValues("behind").Inc()
	case errors.Is(err, journal.ErrClosed):
	default:
		metrics.journalSkipped.WithLabelValues("write_error").Inc()
		if !rt.journalErrLogged.Swap(true) {
			rt.logger.Error("capture journal write failed: exchanges go on without it", zap.Error(err))
		}
	}
	return t
}

// replay hands what an earlier process left unstored to the sequencer, in
// the order it was recorded, with the running configuration's handlers;
// rt.mu is held and the workers run. The queue is waited for: nothing of
// it is dropped for being many.
func (rt *pipeline) replay(a *App) {
	if len(rt.recovered) == 0 {
		return
	}
	routes := map[uint64]*route{}
	for _, r := range a.routes {
		routes[r.key] = r
	}
	var orphans []journal.Ticket
	for _, r := range rt.recovered {
		route := routes[r.Record.Route]
		if route == nil {
			orphans = append(orphans, r.Ticket)
			continue
		}
		metrics.queued.Inc()
		metrics.journalReplayed.Inc()
		// Its request's span is long gone: a no-op one.
		rt.queue <- job{route: route, ex: &r.Record.Exchange, ticket: r.Ticket, replayed: true, span: trace.SpanFromContext(context.Background())}
	}
	rt.recovered = nil
	if len(orphans) > 0 {
		metrics.exchangesDropped.WithLabelValues("handler_changed").Add(float64(len(orphans)))
		rt.logger.Warn("capture journal: exchanges of a handler configuration that no longer exists are not replayed",
			zap.Int("exchanges", len(orphans)))
		rt.commitJournal(orphans)
	}
}

// Commit marks are grouped: written once commitBatch tickets have gathered,
// or commitEvery after the first, so that one write serves many exchanges
// even when each store batch holds one. A crash in between stores those
// exchanges again, under the same event ids, which receivers de-duplicate.
const (
	commitBatch = 256
	commitEvery = 10 * time.Millisecond
)

// commits gathers the journal's commit marks until they are written.
type commits struct {
	mu      sync.Mutex
	pending []journal.Ticket
	timer   *time.Timer // set while marks wait
}

// commitJournal records that the tickets' exchanges are done with.
func (rt *pipeline) commitJournal(ts []journal.Ticket) {
	if len(ts) == 0 {
		return
	}
	c := &rt.commits
	c.mu.Lock()
	c.pending = append(c.pending, ts...)
	var now []journal.Ticket
	switch {
	case len(c.pending) >= commitBatch:
		now, c.pending = c.pending, nil
		if c.timer != nil {
			c.timer.Stop()
			c.timer = nil
		}
	case c.timer == nil:
		c.timer = time.AfterFunc(commitEvery, rt.flushCommits)
	}
	c.mu.Unlock()
	rt.writeCommits(now)
}

// flushCommits writes the marks that wait.
func (rt *pipeline) flushCommits() {
	c := &rt.commits
	c.mu.Lock()
	now := c.pending
	c.pending = nil
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	rt.writeCommits(now)
}

func (rt *pipeline) writeCommits(ts []journal.Ticket) {
	if len(ts) == 0 {
		return
	}
	if err := rt.journal.Load().Commit(ts); err != nil && !rt.journalErrLogged.Swap(true) {
		rt.logger.Error("capture journal commit failed", zap.Error(err))
	}
}

// releaseJournal lets go of a ticket whose exchange is not stored (it
// yields no event, or is dropped).
func (rt *pipeline) releaseJournal(t journal.Ticket) {
	if t.Valid() {
		rt.journal.Load().Release(t)
	}
}

// eventID names event k of a journalled exchange after the exchange's
// origin, so that an exchange derived again after a crash yields the same
// event ids, hence the same webhook-id, and receivers de-duplicate what
// was stored but not yet marked committed. The form is event.NewID's.
func eventID(o journal.Origin, k int) string {
	var b [20]byte
	binary.BigEndian.PutUint64(b[0:], o.Run)
	binary.BigEndian.PutUint64(b[8:], o.ID)
	binary.BigEndian.PutUint32(b[16:], uint32(k))
	sum := sha256.Sum256(b[:])
	return "evt_" + hex.EncodeToString(sum[:12])
}

// resolution follows a journalled exchange, whose events may go to
// several shards: it is committed when the last of its batches is stored
// or dropped.
type resolution struct {
	ticket    journal.Ticket
	remaining atomic.Int32
}

// settle counts one batch done and reports whether it was the last.
func (r *resolution) settle() bool {
	return r != nil && r.remaining.Add(-1) == 0
}

// settle counts one batch of each exchange done (nil for one without a
// journal record) and commits the exchanges whose last batch it was.
func (rt *pipeline) settle(rs ...*resolution) {
	var done []journal.Ticket
	for _, r := range rs {
		if r.settle() {
			done = append(done, r.ticket)
		}
	}
	rt.commitJournal(done)
}

// routeKey identifies a handler's configuration across restarts: the
// digest of its JSON, taken before defaults are filled in. The journal
// stores it with each exchange, so that a replay uses the handler that
// captured it, or none if that configuration is gone.
func routeKey(h *Handler) (uint64, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(b)
	return binary.BigEndian.Uint64(sum[:8]), nil
}
