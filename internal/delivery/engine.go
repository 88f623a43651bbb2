// Package delivery is the outbox of chatwebhooks: it stores webhook
// messages durably, delivers them over HTTP with signing per attempt,
// retries with backoff and jitter, keeps per-lane order, pauses dead
// receivers with a circuit breaker, and keeps what cannot be delivered as
// dead letters for replay.
//
// It is a plain library: the Caddy layer adapts its Observer to Prometheus
// and its *slog.Logger to zap.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrQueueFull is returned by Enqueue when accepting the messages would
// exceed Options.MaxQueued or Options.MaxQueuedBytes. The policy is to
// refuse the new messages, all of the call's, and count them as dropped
// (ReasonQueueFull); what is queued already is kept.
var ErrQueueFull = errors.New("delivery: outbox full")

// ErrUnknownEndpoint is returned by Replay, ReplayAll and Purge for a name
// that is not configured (and, for Purge, holds nothing).
var ErrUnknownEndpoint = errors.New("delivery: no such webhook")

// ErrStore is returned by Enqueue when the store failed to write the
// messages: none of them is queued, and trying again later may succeed.
var ErrStore = errors.New("delivery: storing messages")

// Options configure an Engine. Zero fields take the defaults.
type Options struct {
	// Clock drives scheduling, retries and the breaker. Default: the wall
	// clock.
	Clock Clock
	// Observer receives events for metrics. Default: NopObserver.
	Observer Observer
	// Logger receives one line per failure reason and endpoint until the
	// next success, and breaker transitions. Default: discard.
	Logger *slog.Logger
	// Workers bounds the attempts in flight across all endpoints.
	// Default 32.
	Workers int
	// MaxQueued bounds the pending messages. Their schedule is held in
	// memory as well as in the store; their bodies only in the store.
	// Default 100000.
	MaxQueued int
	// MaxQueuedBytes bounds the sum of pending bodies. Default 256 MiB.
	MaxQueuedBytes int64
	// MaxDeadLetters bounds the dead letters kept per endpoint; beyond it
	// the oldest are deleted, counted as dropped (ReasonDeadLetters).
	// Default 10000.
	MaxDeadLetters int
	// Breaker tunes the circuit breaker of every endpoint.
	Breaker BreakerConfig
	// KeepDelivered bounds the delivered messages kept for lookup; zero
	// fields take DefaultRetention's, a negative Age keeps none.
	KeepDelivered Retention
	// Tracer, if set, makes a span of every attempt of a traced message.
	Tracer Tracer
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 100_000
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 256 << 20
	}
	if o.MaxDeadLetters <= 0 {
		o.MaxDeadLetters = 10_000
	}
	o.Breaker = o.Breaker.withDefaults()
	d := DefaultRetention()
	if o.KeepDelivered.Age == 0 {
		o.KeepDelivered.Age = d.Age
	}
	if o.KeepDelivered.Count == 0 {
		o.KeepDelivered.Count = d.Count
	}
	if o.KeepDelivered.Bytes == 0 {
		o.KeepDelivered.Bytes = d.Bytes
	}
	return o
}

// Engine delivers messages from a Store. It is safe for concurrent use.
type Engine struct {
	store  Store
	opts   Options
	clock  Clock
	obs    Observer
	log    *slog.Logger
	jitter func() float64 // in [0,1); tests pin it

	ctx      context.Context // cancelled by Close: aborts attempts in flight
	cancel   context.CancelFunc
	kick     chan struct{}  // wakes the dispatcher
	attempts sync.WaitGroup // dispatcher and attempts
	enqueues sync.WaitGroup // Enqueue calls writing to the store

	// storeFailing is set while store writes fail, so that a broken disk
	// is logged once, not once per write (see wrote).
	storeFailing atomic.Bool

	// mu is never held while waiting for a store write, which would stall
	// every lane behind one fsync.
	mu          sync.Mutex
	closed      bool
	endpoints   map[string]*endpointState
	queued      int
	queuedBytes int64
	busy        int // attempts in flight
	timer       Timer
	timerAt     time.Time
	fullLogged  bool // queue-full logged, until an Enqueue succeeds
}

// New starts an Engine on store, which it owns from then on (Close closes
// it). Pending messages found in the store, left by an earlier run or a
// crash, keep their attempt counts and schedule; they wait until Apply or
// SetEndpoint configures their endpoint, and Commit buries those that no
// endpoint claims.
func New(store Store, opts Options) (*Engine, error) {
	if store == nil {
		return nil, errors.New("delivery: New needs a Store")
	}
	opts = opts.withDefaults()
	pending, err := store.Pending()
	if err != nil {
		return nil, fmt.Errorf("delivery: loading pending messages: %w", err)
	}
	e := &Engine{
		store:     store,
		opts:      opts,
		clock:     opts.Clock,
		obs:       opts.Observer,
		log:       opts.Logger,
		jitter:    randJitter,
		kick:      make(chan struct{}, 1),
		endpoints: map[string]*endpointState{},
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for _, r := range pending {
		e.queue(r)
	}
	e.attempts.Add(1)
	go e.run()
	return e, nil
}

// state returns the endpoint's state, creating it. The caller holds mu.
func (e *Engine) state(name string) *endpointState {
	st := e.endpoints[name]
	if st == nil {
		st = newEndpointState(name, e.opts.Breaker)
		e.endpoints[name] = st
	}
	return st
}

// queue adds a stored pending record to memory, without its body: an
// attempt reads that from the store. The caller holds mu (or is New) and
// has already counted it against the limits if it is new.
func (e *Engine) queue(r *Record) {
	e.state(r.Endpoint).add(newEntry(r))
	e.queued++
	e.queuedBytes += int64(len(r.Body))
}

// SetEndpoint adds an endpoint or replaces the one of the same Name,
// leaving the others as they are. Attempts in flight finish with the
// settings they started with; messages queued for another Identity of the
// same Name keep theirs. The breaker is kept unless the URL changed.
func (e *Engine) SetEndpoint(ep Endpoint) error {
	cfg, err := newEndpointConfig(ep)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.set(cfg)
	e.poke()
	return nil
}

// set installs cfg; the caller holds mu.
func (e *Engine) set(cfg *endpointConfig) {
	st := e.state(cfg.Name)
	if st.cfg != nil && st.cfg.URL != cfg.URL {
		// Another receiver: what the old one did says nothing about it.
		st.breaker = newBreaker(e.opts.Breaker)
		st.health.enable()
	}
	st.configure(cfg)
	e.obs.QueueDepth(st.name, st.schema, st.queued)
}

// Apply makes eps the whole set of endpoints, as a configuration load
// does: new ones are added, changed ones replaced as SetEndpoint does, and
// those not in eps stop being attempted at once. Their messages stay
// stored until Commit, so that Apply with the previous set undoes it; all
// endpoints are checked before anything changes.
func (e *Engine) Apply(eps []Endpoint) error {
	cfgs := make([]*endpointConfig, len(eps))
	names := make(map[string]bool, len(eps))
	for i, ep := range eps {
		cfg, err := newEndpointConfig(ep)
		if err != nil {
			return err
		}
		if names[ep.Name] {
			return fmt.Errorf("delivery: two endpoints named %q", ep.Name)
		}
		names[ep.Name] = true
		cfgs[i] = cfg
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	for name, st := range e.endpoints {
		if !names[name] {
			st.configure(nil)
		}
	}
	for _, cfg := range cfgs {
		e.set(cfg)
	}
	e.poke()
	return nil
}

// Commit moves to the dead letters what the endpoints set now will never
// deliver: every message of a Name that is not configured
// (ReasonRemoved), and messages shaped for an Identity that its Name no
// longer has and that nothing delivers (ReasonChanged). They can be
// replayed to an endpoint of the same Name. Attempts in flight finish; a
// failed one is buried then.
func (e *Engine) Commit() error {
	type burial struct {
		name, schema, reason string
		seqs                 []uint64
	}
	var burials []burial
	e.mu.Lock()
	for name, st := range e.endpoints {
		b := burial{name: name, schema: st.schema, reason: ReasonChanged}
		var out []*entry
		if st.cfg == nil {
			b.reason = ReasonRemoved
			out = st.takeAll(ReasonRemoved)
		} else {
			out = st.takeWaiting()
		}
		for _, en := range out {
			b.seqs = append(b.seqs, en.seq)
			e.queued--
			e.queuedBytes -= int64(en.size)
		}
		if len(out) > 0 {
			burials = append(burials, b)
		}
		if st.cfg == nil {
			e.obs.Removed(name, st.schema)
			if st.queued == 0 {
				delete(e.endpoints, name)
			}
		} else if len(out) > 0 {
			e.obs.QueueDepth(name, st.schema, st.queued)
		}
	}
	keep := e.opts.MaxDeadLetters
	now := e.clock.Now()
	e.mu.Unlock()
	var errs []error
	for _, b := range burials {
		if err := e.buryPending(b.name, b.schema, b.seqs, b.reason, now, keep); err != nil {
			errs = append(errs, fmt.Errorf("delivery: moving %d messages of %q to the dead letters: %w", len(b.seqs), b.name, err))
			continue
		}
		e.log.Warn("queued webhook messages moved to the dead letters: replay them to a webhook of this name, or purge them",
			"endpoint", b.name, "reason", b.reason, "messages", len(b.seqs))
	}
	return errors.Join(errs...)
}

// Tune applies o's Workers, MaxQueued, MaxQueuedBytes, MaxDeadLetters,
// Breaker and KeepDelivered to the running engine, as a configuration
// reload does; zero fields take the defaults, and Clock, Observer, Logger
// and Tracer stay as New set them. Messages already queued are kept even
// above a lowered cap.
func (e *Engine) Tune(o Options) {
	o = o.withDefaults()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opts.Workers, e.opts.MaxQueued, e.opts.MaxQueuedBytes = o.Workers, o.MaxQueued, o.MaxQueuedBytes
	e.opts.MaxDeadLetters, e.opts.Breaker, e.opts.KeepDelivered = o.MaxDeadLetters, o.Breaker, o.KeepDelivered
	for _, st := range e.endpoints {
		st.breaker.retune(o.Breaker)
	}
	e.poke()
}

// Enqueue stores messages for delivery and returns once they are durable in
// the store. Each body goes through its endpoint's Scheme.Prepare first and
// is sent exactly so on every attempt. A message of a replaced Identity is
// sent with its Settings; one for a Name that is not configured, or of an
// Identity nothing can send any more, is stored straight into the dead
// letters (ReasonRemoved, ReasonChanged).
// Either all messages are accepted or none: it fails with ErrQueueFull,
// ErrClosed, a Prepare error, or a store error. The engine may keep the
// bodies until their first attempt: the caller must not change them.
func (e *Engine) Enqueue(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cfgs := make([]*endpointConfig, len(msgs))
	var shaped []int // messages of a replaced identity that bring their settings
	e.mu.Lock()
	for i, m := range msgs {
		if st := e.endpoints[m.Endpoint]; st != nil && st.cfg != nil {
			if cfgs[i] = st.configFor(m.Identity); cfgs[i] == nil && m.Settings != nil && m.Settings.Identity == m.Identity {
				shaped = append(shaped, i)
			}
		}
	}
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return ErrClosed
	}
	for _, i := range shaped {
		cfg, err := newEndpointConfig(*msgs[i].Settings)
		if err != nil {
			return err
		}
		cfgs[i] = cfg
	}

	now := e.clock.Now()
	recs := make([]*Record, len(msgs))
	var size int64
	for i, m := range msgs {
		if m.ID == "" {
			return fmt.Errorf("delivery: message for %q has no ID", m.Endpoint)
		}
		if c := cfgs[i]; c != nil && c.Scheme != nil {
			body, err := c.Scheme.Prepare(m.Body)
			if err != nil {
				e.obs.Dropped(m.Endpoint, c.Schema, ReasonPrepare, 1)
				return fmt.Errorf("delivery: preparing message %s for %q: %w", m.ID, m.Endpoint, err)
			}
			m.Body = body
		}
		if m.Created.IsZero() {
			m.Created = now
		}
		recs[i] = &Record{Message: m}
		size += int64(len(m.Body))
	}

	if err := e.reserve(recs, size); err != nil {
		return err
	}
	defer e.enqueues.Done()
	err := e.store.Add(recs)

	e.mu.Lock()
	e.queued -= len(recs)
	e.queuedBytes -= size
	if err != nil {
		e.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	var orphans []*Record
	for i, r := range recs {
		st := e.endpoints[r.Endpoint]
		if cfgs[i] == nil || st == nil || st.cfg == nil {
			orphans = append(orphans, r)
			continue
		}
		st.hold(cfgs[i])
		e.queue(r)
	}
	byEndpoint(recs, func(name string, n int) {
		if st := e.endpoints[name]; st != nil && st.cfg != nil {
			e.obs.Enqueued(name, st.schema, n)
			e.obs.QueueDepth(name, st.schema, st.queued)
		}
	})
	e.poke()
	keep := e.opts.MaxDeadLetters
	e.mu.Unlock()
	if len(orphans) > 0 {
		return e.buryOrphans(orphans, keep)
	}
	return nil
}

// buryOrphans moves just-stored messages that no endpoint delivers to the
// dead letters.
func (e *Engine) buryOrphans(recs []*Record, keep int) error {
	now := e.clock.Now()
	e.mu.Lock()
	reasons := make([]string, len(recs))
	for i, r := range recs {
		reasons[i] = ReasonRemoved
		if st := e.endpoints[r.Endpoint]; st != nil && st.cfg != nil {
			reasons[i] = ReasonChanged
		}
	}
	e.mu.Unlock()
	var errs []error
	for i, r := range recs {
		if err := e.buryPending(r.Endpoint, "", []uint64{r.Seq}, reasons[i], now, keep); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("delivery: storing messages of removed webhooks as dead letters: %w", errors.Join(errs...))
	}
	return nil
}

// reserve counts recs against the limits before they are stored, so that
// concurrent Enqueue calls cannot overshoot together. On success the caller
// owes e.enqueues.Done and must give the reservation back.
func (e *Engine) reserve(recs []*Record, size int64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.queued+len(recs) > e.opts.MaxQueued || e.queuedBytes+size > e.opts.MaxQueuedBytes {
		byEndpoint(recs, func(name string, n int) {
			schema := ""
			if st := e.endpoints[name]; st != nil {
				schema = st.schema
			}
			e.obs.Dropped(name, schema, ReasonQueueFull, n)
		})
		if !e.fullLogged {
			e.fullLogged = true
			e.log.Warn("webhook outbox full: refusing new messages until it drains",
				"queued", e.queued, "queued_bytes", e.queuedBytes,
				"max_queued", e.opts.MaxQueued, "max_queued_bytes", e.opts.MaxQueuedBytes)
		}
		return fmt.Errorf("%w: %d messages, %d bytes queued (limits %d, %d)",
			ErrQueueFull, e.queued, e.queuedBytes, e.opts.MaxQueued, e.opts.MaxQueuedBytes)
	}
	e.fullLogged = false
	e.queued += len(recs)
	e.queuedBytes += size
	e.enqueues.Add(1)
	return nil
}

// byEndpoint calls fn once per run of records with the same endpoint.
func byEndpoint(recs []*Record, fn func(name string, n int)) {
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Endpoint == recs[i].Endpoint {
			j++
		}
		fn(recs[i].Endpoint, j-i)
		i = j
	}
}

// Close stops delivery: attempts in flight are aborted and do not count,
// and everything undelivered stays in the store for the next New. It then
// closes the store.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	if e.timer != nil {
		e.timer.Stop()
	}
	e.mu.Unlock()
	e.enqueues.Wait()
	e.cancel()
	e.attempts.Wait()
	e.mu.Lock()
	for _, st := range e.endpoints {
		if st.cfg != nil {
			st.cfg.client.CloseIdleConnections()
		}
		for _, h := range st.held {
			h.cfg.client.CloseIdleConnections()
		}
	}
	e.mu.Unlock()
	return e.store.Close()
}

// EndpointStats describes one endpoint's queue.
type EndpointStats struct {
	// Schema is the payload schema's name.
	Schema string `json:"schema,omitempty"`
	// Queued counts pending messages, in flight included.
	Queued int `json:"queued"`
	// InFlight counts attempts under way.
	InFlight int `json:"in_flight"`
	// Lanes counts lanes holding messages.
	Lanes int `json:"lanes"`
	// DeadLetters counts stored dead letters.
	DeadLetters int `json:"dead_letters"`
	// Breaker is BreakerClosed, BreakerOpen or BreakerHalfOpen.
	Breaker string `json:"breaker"`
	// Delivered, Failed and Retried count, since the engine started,
	// delivered messages, failed attempts, and failed messages scheduled
	// for another attempt.
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
	Retried   int64 `json:"retried"`
	// LastSuccess and LastFailure are the ends of the last delivered and
	// failed attempts; LastError describes the last failure.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	// RateLimit is the configured rate, e.g. "10/1s"; RateLimitedUntil,
	// when a message is waiting for its turn, is when that turn comes.
	RateLimit        string     `json:"rate_limit,omitempty"`
	RateLimitedUntil *time.Time `json:"rate_limited_until,omitempty"`
	// FailingSince is the first failed attempt since the last success.
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// DisabledAt is when DisableAfter disabled the endpoint; absent while
	// it is enabled.
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

// Stats is a snapshot of the engine.
type Stats struct {
	// Queued and QueuedBytes are what counts against MaxQueued and
	// MaxQueuedBytes.
	Queued      int   `json:"queued"`
	QueuedBytes int64 `json:"queued_bytes"`
	// InFlight counts attempts under way, against Workers.
	InFlight int `json:"in_flight"`
	// Endpoints has every configured endpoint.
	Endpoints map[string]EndpointStats `json:"endpoints"`
	// OrphanedDeadLetters counts the dead letters of names that are not
	// configured (removed webhooks), which can be replayed once a webhook
	// of that name is back, or purged.
	OrphanedDeadLetters map[string]int `json:"orphaned_dead_letters,omitempty"`
}

// Stats returns the queue depths and breaker states. Dead letter counts come
// from the store; an error reading them is returned along with the rest.
func (e *Engine) Stats() (Stats, error) {
	dead, err := e.store.DeadCounts()
	now := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Queued: e.queued, QueuedBytes: e.queuedBytes, InFlight: e.busy, Endpoints: map[string]EndpointStats{}}
	for name, st := range e.endpoints {
		if st.cfg == nil {
			continue
		}
		h := st.health
		es := EndpointStats{
			Schema:       st.schema,
			Queued:       st.queued,
			InFlight:     st.inflight,
			Lanes:        len(st.lanes),
			DeadLetters:  dead[name],
			Breaker:      st.breaker.state,
			Delivered:    h.delivered,
			Failed:       h.failed,
			Retried:      h.retried,
			LastSuccess:  timeOrNil(h.lastSuccess),
			LastFailure:  timeOrNil(h.lastFailure),
			LastError:    h.lastError,
			RateLimit:    st.limiter.String(),
			FailingSince: timeOrNil(h.failingSince),
			DisabledAt:   timeOrNil(h.disabledAt),
		}
		if st.queued > st.inflight {
			es.RateLimitedUntil = timeOrNil(st.limiter.wait(now))
		}
		s.Endpoints[name] = es
	}
	for name, n := range dead {
		if _, ok := s.Endpoints[name]; !ok && n > 0 {
			if s.OrphanedDeadLetters == nil {
				s.OrphanedDeadLetters = map[string]int{}
			}
			s.OrphanedDeadLetters[name] = n
		}
	}
	return s, err
}

// timeOrNil leaves out a zero time from JSON.
func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
