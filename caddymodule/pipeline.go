package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/enrich"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/journal"
)

// route is one handler's compiled configuration: how its exchanges become
// events and where those go. Jobs carry their route, so a handler of an old
// configuration that still serves a long stream keeps its own settings.
type route struct {
	deriver *derive.Deriver
	// config built deriver; `try` and rederive build derivers of their
	// own from it, with a conversation memory of their own.
	config   derive.Config
	enricher *enrich.Enricher // nil without user_info
	webhooks []*webhook
	record   *recording // nil unless the handler records
	logger   *zap.Logger
	// key names the handler's configuration in the capture journal.
	key uint64
}

type job struct {
	route *route
	ex    *capture.Exchange
	// ticket is the exchange's capture journal record, if it has one.
	ticket journal.Ticket
	// replayed jobs come from the journal at start: they wait for room
	// in their shard rather than being dropped.
	replayed bool
	span     trace.Span // the request's span in Caddy's tracing; a no-op one without
}

// batch is the events of one exchange that belong to one shard.
type batch struct {
	route  *route
	end    time.Time
	events []event.Event
	res    *resolution // nil for an exchange without a journal record
	trace  traceContext
}

// pipeline is the part of the module that outlives a configuration: the
// pipeline queue, its workers and the delivery engine. It lives in a
// caddy.UsagePool so that a reload neither loses nor duplicates work.
//
// It is built inert when a configuration provisions, and opens its outbox
// and starts its goroutines only when a configuration starts (activate), so
// that `caddy validate` and configurations that fail have no effect.
//
// One sequencer derives events in the order exchanges finished; it hands
// them to shards chosen by conversation, whose workers enrich, shape and
// store them. So the turns of one conversation are stored in order. A
// shard whose worker is slow (a slow user_info lookup) holds back only its
// own conversations: when its buffer is full, its batches are dropped and
// counted instead of stalling the sequencer.
type pipeline struct {
	outbox Outbox
	logger *zap.Logger
	queue  chan job
	shards []chan batch
	// tracing makes spans of derivations and delivery attempts while
	// Caddy's tracing runs.
	tracing tracing

	// mu orders the configurations' Start and Stop.
	mu sync.Mutex
	// engine is nil until the first configuration starts.
	engine *delivery.Engine
	nats   *natsOutbox // with outbox nats
	// live are the started configurations, oldest first; the last one's
	// webhooks are the engine's.
	live    []*App
	running bool

	// state remembers conversations' attributes across exchanges and
	// across reloads, so conversation.updated can say what changed; nil
	// when turned off. Derivers read it through the pipeline (Get, Put),
	// so that a reload changing it reaches handlers already provisioned.
	stateMu  sync.Mutex
	state    atomic.Pointer[stateHolder]
	stateCfg ConversationState
	// backing keeps the state beyond this process's memory; nil with
	// outbox memory.
	backing    stateBacking
	closeState func()
	wg         sync.WaitGroup
	// done stops the sequencer. The queue itself is never closed: a handler
	// of an old configuration may still submit after the pipeline is gone.
	done    chan struct{}
	stopped atomic.Bool
	// dropLogged and overflowLogged make the full-queue warnings appear
	// once per burst, not once per dropped exchange.
	dropLogged     atomic.Bool
	overflowLogged atomic.Bool

	// journal is the capture journal, nil without one; journalOn says
	// whether the first configuration asked for one. recovered is what an
	// earlier process left unstored, until the first start replays it.
	journal          atomic.Pointer[journal.Journal]
	journalOn        bool
	recovered        []journal.Recovered
	journalErrLogged atomic.Bool
	commits          commits
}

type stateHolder struct{ store convstate.Store }

func newPipeline(ob Outbox, queueSize, workers int, logger *zap.Logger) *pipeline {
	rt := &pipeline{outbox: ob, queue: make(chan job, queueSize), logger: logger, done: make(chan struct{})}
	shardSize := max(64, queueSize/workers)
	for range workers {
		rt.shards = append(rt.shards, make(chan batch, shardSize))
	}
	rt.state.Store(&stateHolder{})
	return rt
}

// activate makes a starting configuration the running one: it opens the
// outbox on first use, applies the configuration's webhooks (all or
// nothing), limits and conversation memory, and starts the workers. When no
// other configuration runs, what the webhooks no longer deliver is moved to
// the dead letters at once; otherwise when the previous configuration
// stops (deactivate), since until then a failure to start undoes this.
func (rt *pipeline) activate(a *App) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.engine == nil {
		if err := rt.open(a); err != nil {
			return err
		}
		rt.openJournal(a.Journal)
	}
	if err := rt.engine.Apply(a.endpoints()); err != nil {
		return err
	}
	rt.serve(a)
	rt.tune(a)
	rt.live = append(rt.live, a)
	if len(rt.live) == 1 {
		rt.commit()
	}
	if !rt.running {
		rt.running = true
		for _, shard := range rt.shards {
			rt.wg.Add(1)
			go rt.store(shard)
		}
		rt.wg.Add(1)
		go rt.sequence()
	}
	rt.replay(a)
	return nil
}

// deactivate handles a configuration's Stop. The running configuration
// stopping beside an older one that still runs failed to start: the older
// one's settings come back. An older configuration stopping after a newer
// one started ends the reload: the newer one's webhook set is final.
func (rt *pipeline) deactivate(a *App) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	i := slices.Index(rt.live, a)
	if i < 0 {
		return
	}
	wasRunning := i == len(rt.live)-1
	rt.live = slices.Delete(rt.live, i, i+1)
	switch {
	case len(rt.live) == 0:
	case wasRunning:
		prev := rt.live[len(rt.live)-1]
		if err := rt.engine.Apply(prev.endpoints()); err != nil {
			rt.logger.Error("restoring the running configuration's webhooks", zap.Error(err))
		}
		rt.serve(prev)
		rt.tune(prev)
	default:
		rt.commit()
	}
}

// open opens the outbox and starts its engine; rt.mu is held.
func (rt *pipeline) open(a *App) error {
	if rt.outbox.Kind == "nats" {
		return rt.openNATS(a)
	}
	// Conversation state is kept in a durable outbox's file; with outbox
	// memory there is nothing to outlive the process.
	var store delivery.Store
	if rt.outbox.Kind == "memory" {
		store = delivery.NewMemoryStore()
	} else {
		if err := rt.makeDir(); err != nil {
			return err
		}
		bolt, err := delivery.OpenBolt(rt.outbox.Path)
		if err != nil {
			return err
		}
		store, rt.backing = bolt, boltBacking{bolt.KeyValues("conversations")}
	}
	opts := a.opts
	opts.Tracer = &rt.tracing
	engine, err := delivery.New(store, opts)
	if err != nil {
		store.Close()
		return err
	}
	rt.engine = engine
	return nil
}

// makeDir creates the default outbox file's directory.
func (rt *pipeline) makeDir() error {
	if !rt.outbox.defaultPath {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(rt.outbox.Path), 0o700); err != nil {
		return fmt.Errorf("creating the outbox directory: %v", err)
	}
	return nil
}

// serve tells a shared outbox which webhooks this instance delivers; rt.mu
// is held.
func (rt *pipeline) serve(a *App) {
	if rt.nats != nil {
		rt.nats.shared.Serve(slices.Collect(maps.Keys(a.webhooks)))
	}
}

// tune applies a configuration's limits and conversation memory; rt.mu is
// held.
func (rt *pipeline) tune(a *App) {
	rt.engine.Tune(a.opts)
	if rt.nats != nil {
		rt.nats.forwarder.Tune(spoolLimits(a.opts))
	}
	rt.useState(a.ConversationState)
	if cap(rt.queue) != a.QueueSize || len(rt.shards) != a.Workers {
		rt.logger.Warn("queue_size and workers take effect when Caddy restarts, not on reload",
			zap.Int("queue_size", cap(rt.queue)), zap.Int("workers", len(rt.shards)))
	}
	if rt.wantsJournal(a.Journal) != rt.journalOn {
		rt.logger.Warn("journal takes effect when Caddy restarts, not on reload", zap.Bool("journal", rt.journalOn))
	}
}

// commit moves what the running webhooks no longer deliver to the dead
// letters; rt.mu is held.
func (rt *pipeline) commit() {
	if err := rt.engine.Commit(); err != nil {
		rt.logger.Error("moving removed webhooks' messages to the dead letters", zap.Error(err))
	}
}

// Get implements convstate.Store with the current conversation
// memory.
func (rt *pipeline) Get(key string) []byte {
	if s := rt.state.Load().store; s != nil {
		return s.Get(key)
	}
	return nil
}

// Put implements convstate.Store with the current conversation
// memory.
func (rt *pipeline) Put(key string, attrs []byte) {
	if s := rt.state.Load().store; s != nil {
		s.Put(key, attrs)
	}
}

// useState applies a configuration's conversation_state. The memory is kept
// across reloads unless the setting itself changes.
func (rt *pipeline) useState(cs *ConversationState) {
	cfg := cs.withDefaults()
	rt.stateMu.Lock()
	defer rt.stateMu.Unlock()
	if rt.state.Load().store != nil && cfg == rt.stateCfg {
		return
	}
	rt.stopState()
	rt.stateCfg = cfg
	rt.state.Store(&stateHolder{})
	if cfg.Off {
		return
	}
	mem := convstate.NewMemory(cfg.Entries, time.Duration(cfg.TTL))
	var store convstate.Store = mem
	if rt.backing != nil {
		store, rt.closeState = rt.backing.keep(mem, time.Duration(cfg.TTL), rt.logger)
	}
	rt.state.Store(&stateHolder{store: store})
}

// stopState writes a durable state's last changes; stateMu must be held.
func (rt *pipeline) stopState() {
	if rt.closeState != nil {
		rt.closeState()
		rt.closeState = nil
	}
}

// submit journals an exchange and hands it to the pipeline without ever
// blocking: when the queue is full the exchange is dropped, counted and
// logged.
func (rt *pipeline) submit(r *route, ex *capture.Exchange, span trace.Span) {
	if rt.stopped.Load() {
		metrics.exchangesDropped.WithLabelValues("shutting_down").Inc()
		return
	}
	t := rt.record(r, ex)
	select {
	case rt.queue <- job{route: r, ex: ex, ticket: t, span: span}:
		metrics.queued.Inc()
		rearm(&rt.dropLogged)
	default:
		rt.releaseJournal(t)
		metrics.exchangesDropped.WithLabelValues("pipeline_full").Inc()
		if !rt.dropLogged.Swap(true) {
			rt.logger.Warn("pipeline queue full: dropping exchanges until it drains; raise queue_size or add workers",
				zap.Int("queue_size", cap(rt.queue)))
		}
	}
}

// rearm lets a full-queue warning be logged again once the burst is over.
// It writes only when the flag is set: every request passes here, and a
// store on each would move the flag's cache line between CPUs.
func rearm(logged *atomic.Bool) {
	if logged.Load() {
		logged.Store(false)
	}
}

// sequence derives exchanges in arrival order until done, then drains the
// queue and closes the shards.
func (rt *pipeline) sequence() {
	defer rt.wg.Done()
	defer func() {
		for _, shard := range rt.shards {
			close(shard)
		}
	}()
	for {
		select {
		case j := <-rt.queue:
			rt.derive(j)
		case <-rt.done:
			for {
				select {
				case j := <-rt.queue:
					rt.derive(j)
				default:
					return
				}
			}
		}
	}
}

// derive turns one exchange into events and hands them to their shards.
func (rt *pipeline) derive(j job) {
	metrics.queued.Dec()
	span, tc := rt.tracing.startDerive(requestTrace(j.ex), j.span)
	out := j.route.deriver.Derive(j.ex)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("chat_webhooks.events", len(out.Events)))
	}
	span.End()
	for _, p := range out.Problems {
		metricHandles.trafficProblems.get(seriesKey{p}).Inc()
	}
	if len(out.Problems) > 0 {
		j.route.logger.Debug("traffic problem", zap.Strings("problems", out.Problems),
			zap.String("method", j.ex.Method), zap.String("path", j.ex.Path), zap.Int("events", len(out.Events)))
	}
	if len(out.Events) == 0 {
		rt.releaseJournal(j.ticket)
		return
	}
	var res *resolution
	if j.ticket.Valid() {
		res = &resolution{ticket: j.ticket}
		for k := range out.Events {
			out.Events[k].ID = eventID(j.ticket.Origin(), k)
		}
	}
	var one [1]shardEvents
	groups := rt.byShard(one[:0], out.Events)
	if res != nil {
		res.remaining.Store(int32(len(groups)))
	}
	for _, g := range groups {
		rt.hand(g.shard, batch{route: j.route, end: j.ex.End, events: g.events, res: res, trace: tc}, j.replayed)
	}
}

// shardEvents are the events of one exchange that go to one shard.
type shardEvents struct {
	shard  int
	events []event.Event
}

// byShard appends to groups the events grouped by shard, shards in the
// order their first event came. An exchange has few events, so a scan
// beats a map; most have one, which needs no grouping.
func (rt *pipeline) byShard(groups []shardEvents, evs []event.Event) []shardEvents {
	if len(rt.shards) == 1 || len(evs) == 1 {
		return append(groups, shardEvents{rt.shardOf(&evs[0]), evs})
	}
next:
	for _, ev := range evs {
		i := rt.shardOf(&ev)
		for g := range groups {
			if groups[g].shard == i {
				groups[g].events = append(groups[g].events, ev)
				continue next
			}
		}
		groups = append(groups, shardEvents{i, []event.Event{ev}})
	}
	return groups
}

// hand gives a batch to shard i without waiting: a shard whose buffer is
// full (its worker stuck on a slow lookup) loses the batch, counted and
// logged once per burst, rather than stalling every other shard. A
// replayed batch waits: it is the start's backlog, not a burst.
func (rt *pipeline) hand(i int, b batch, wait bool) {
	if wait {
		rt.shards[i] <- b
		return
	}
	select {
	case rt.shards[i] <- b:
		rearm(&rt.overflowLogged)
	default:
		rt.settle(b.res)
		metrics.exchangesDropped.WithLabelValues("shard_full").Inc()
		if !rt.overflowLogged.Swap(true) {
			rt.logger.Warn("a pipeline worker is behind (a slow user_info lookup?): dropping its conversations' events until it catches up",
				zap.Int("shard", i), zap.Int("buffer", cap(rt.shards[i])))
		}
	}
}

// shardOf keeps every event of a conversation on one shard.
func (rt *pipeline) shardOf(ev *event.Event) int {
	key := ev.Get("conversation.id").Raw
	if key == "" {
		key = ev.ID
	}
	return int(fnv32a(key) % uint32(len(rt.shards)))
}

// fnv32a is the 32-bit FNV-1a hash of s, as hash/fnv's, without its
// allocations.
func fnv32a(s string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * prime
	}
	return h
}

// maxStoreBatch bounds the messages stored in one outbox commit.
const maxStoreBatch = 512

// store turns batches into messages and stores them; batches already
// waiting join the same Enqueue, so under load one fsync serves many.
// Its buffers serve one Enqueue after another: Enqueue keeps copies, not
// the slice.
func (rt *pipeline) store(shard <-chan batch) {
	defer rt.wg.Done()
	var (
		shaped []message
		msgs   []delivery.Message
		// settling are the exchanges of this Enqueue.
		settling []*resolution
	)
	for b := range shard {
		shaped = rt.messages(shaped, b)
		settling = append(settling, b.res)
	more:
		for len(shaped) < maxStoreBatch {
			select {
			case next, ok := <-shard:
				if !ok {
					break more
				}
				shaped = rt.messages(shaped, next)
				settling = append(settling, next.res)
			default:
				break more
			}
		}
		for i := range shaped {
			msgs = append(msgs, shaped[i].Message)
		}
		err := rt.enqueue(msgs)
		if settled(err) {
			rt.settle(settling...)
		}
		// Stored bodies are not kept alive by the buffers.
		clear(shaped)
		clear(msgs)
		clear(settling)
		shaped, msgs, settling = shaped[:0], msgs[:0], settling[:0]
	}
}

// enqueue stores one batch of messages in the outbox.
func (rt *pipeline) enqueue(msgs []delivery.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := rt.sink().Enqueue(ctx, msgs...)
	if err != nil {
		rt.logger.Error("events not stored in the outbox", zap.Int("messages", len(msgs)), zap.Error(err))
	}
	return err
}

// sink takes the shaped messages: the engine, or with outbox nats the
// forwarder, whose messages reach an engine through the stream.
func (rt *pipeline) sink() interface {
	Enqueue(context.Context, ...delivery.Message) error
} {
	if rt.nats != nil {
		return rt.nats.forwarder
	}
	return rt.engine
}

// settled reports whether the outcome of an Enqueue is final. Messages
// stored, or refused for good (a full outbox, a body the scheme cannot
// carry), are done with; ones that failed for a reason that may pass (the
// outbox closing or failing to write) stay in the capture journal, to be
// stored when Caddy starts again.
func settled(err error) bool {
	return err == nil || !errors.Is(err, delivery.ErrClosed) && !errors.Is(err, delivery.ErrStore) && !errors.Is(err, context.DeadlineExceeded)
}

// messages enriches and shapes one batch of events into webhook messages,
// appended to msgs.
func (rt *pipeline) messages(msgs []message, b batch) []message {
	for i := range b.events {
		ev := &b.events[i]
		enriched, err := b.route.enrich(context.Background(), *ev)
		if err != nil {
			metrics.userInfoFailures.Inc()
			b.route.logger.Debug("user_info lookup failed; the event goes out without it", zap.Error(err))
		}
		*ev = enriched
		metricHandles.eventsDerived.get(seriesKey{ev.Type}).Inc()
		conv := conversationID(ev)
		for _, wh := range b.route.webhooks {
			n := len(msgs)
			msgs = wh.appendMessages(msgs, ev, conv, b.end)
			for k := n; k < len(msgs); k++ {
				b.trace.stamp(&msgs[k].Message)
			}
		}
	}
	return msgs
}

// enrich fills ev from the route's user_info lookup, if it has one; when
// the lookup fails, ev goes on as it was, with the error.
func (r *route) enrich(ctx context.Context, ev event.Event) (event.Event, error) {
	if r.enricher == nil {
		return ev, nil
	}
	return r.enricher.Enrich(ctx, ev)
}

// Destruct stops the workers once the queue is drained, then writes the
// conversation state and stops the engine. It runs when the last
// configuration using this pipeline is gone; a pipeline that never started
// has nothing to undo.
func (rt *pipeline) Destruct() error {
	rt.stopped.Store(true)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.running {
		close(rt.done)
		rt.wg.Wait()
	}
	if j := rt.journal.Load(); j != nil {
		rt.flushCommits()
		if err := j.Close(); err != nil {
			rt.logger.Error("closing the capture journal", zap.Error(err))
		}
	}
	rt.stateMu.Lock()
	rt.stopState()
	rt.stateMu.Unlock()
	switch {
	case rt.engine == nil:
		return nil
	case rt.nats != nil:
		return rt.nats.close(rt.engine)
	}
	return rt.engine.Close()
}
