package caddymodule

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/delivery"
	"github.com/chatwebhooks/chatwebhooks/transform"
)

// route is one handler's compiled configuration: how its exchanges become
// events and where those go. Jobs carry their route, so a handler of an old
// configuration that still serves a long stream keeps its own settings.
type route struct {
	deriver  *transform.Deriver
	enricher *transform.Enricher // nil without user_info
	webhooks []*webhook
	logger   *zap.Logger
}

type job struct {
	route *route
	ex    *transform.Exchange
}

// batch is the events of one exchange that belong to one shard.
type batch struct {
	route  *route
	end    time.Time
	events []transform.Event
}

// pipeline is the part of the module that outlives a configuration: the
// pipeline queue, its workers and the delivery engine. It lives in a
// caddy.UsagePool so that a reload neither loses nor duplicates work.
//
// One sequencer derives events in the order exchanges finished; it hands
// them to shards chosen by conversation, whose workers enrich, shape and
// store them. So the turns of one conversation are stored in order, while a
// slow user_info lookup holds back only its own shard.
type pipeline struct {
	engine *delivery.Engine
	// state remembers conversations' attributes across exchanges and
	// across reloads, so conversation.updated can say what changed; nil
	// when turned off. Handlers read it at provision.
	stateMu  sync.Mutex
	state    transform.StateStore
	stateCfg ConversationState
	// stateKV keeps the state in a durable outbox; nil with outbox memory.
	stateKV    delivery.KV
	closeState func()
	queue      chan job
	shards     []chan batch
	logger     *zap.Logger
	wg         sync.WaitGroup
	// done stops the sequencer. The queue itself is never closed: a handler
	// of an old configuration may still submit after the pipeline is gone.
	done    chan struct{}
	stopped atomic.Bool
	// dropLogged makes the full-queue warning appear once per burst, not
	// once per dropped exchange.
	dropLogged atomic.Bool
}

func newPipeline(engine *delivery.Engine, stateKV delivery.KV, queueSize, workers int, logger *zap.Logger) *pipeline {
	rt := &pipeline{engine: engine, stateKV: stateKV, queue: make(chan job, queueSize), logger: logger, done: make(chan struct{})}
	for i := 0; i < workers; i++ {
		shard := make(chan batch, 64)
		rt.shards = append(rt.shards, shard)
		rt.wg.Add(1)
		go rt.store(shard)
	}
	rt.wg.Add(1)
	go rt.sequence()
	return rt
}

// useState applies a configuration's conversation_state. The memory is kept
// across reloads unless the setting itself changes.
func (rt *pipeline) useState(cs *ConversationState) {
	cfg := cs.withDefaults()
	rt.stateMu.Lock()
	defer rt.stateMu.Unlock()
	if rt.state != nil && cfg == rt.stateCfg {
		return
	}
	rt.stopState()
	rt.stateCfg, rt.state = cfg, nil
	if cfg.Off {
		return
	}
	mem := transform.NewMemoryState(cfg.Entries, time.Duration(cfg.TTL))
	rt.state = mem
	if rt.stateKV != nil {
		durable := newDurableState(mem, rt.stateKV, time.Duration(cfg.TTL), rt.logger)
		rt.state, rt.closeState = durable, durable.close
	}
}

// stopState writes a durable state's last changes; stateMu must be held.
func (rt *pipeline) stopState() {
	if rt.closeState != nil {
		rt.closeState()
		rt.closeState = nil
	}
}

// currentState is the conversation memory handlers provisioned now use.
func (rt *pipeline) currentState() transform.StateStore {
	rt.stateMu.Lock()
	defer rt.stateMu.Unlock()
	return rt.state
}

// submit hands an exchange to the pipeline without ever blocking: when the
// queue is full the exchange is dropped, counted and logged.
func (rt *pipeline) submit(r *route, ex *transform.Exchange) {
	if rt.stopped.Load() {
		metrics.exchangesDropped.WithLabelValues("shutting_down").Inc()
		return
	}
	select {
	case rt.queue <- job{route: r, ex: ex}:
		metrics.queued.Inc()
		rt.dropLogged.Store(false)
	default:
		metrics.exchangesDropped.WithLabelValues("pipeline_full").Inc()
		if !rt.dropLogged.Swap(true) {
			rt.logger.Warn("pipeline queue full: dropping exchanges until it drains; raise queue_size or add workers",
				zap.Int("queue_size", cap(rt.queue)))
		}
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
	out := j.route.deriver.Derive(j.ex)
	for _, p := range out.Problems {
		metrics.trafficProblems.WithLabelValues(p).Inc()
	}
	if len(out.Problems) > 0 {
		j.route.logger.Debug("traffic problem", zap.Strings("problems", out.Problems),
			zap.String("method", j.ex.Method), zap.String("path", j.ex.Path), zap.Int("events", len(out.Events)))
	}
	if len(out.Events) == 0 {
		return
	}
	if len(rt.shards) == 1 || len(out.Events) == 1 {
		rt.shards[rt.shardOf(&out.Events[0])] <- batch{route: j.route, end: j.ex.End, events: out.Events}
		return
	}
	byShard := map[int][]transform.Event{}
	var order []int
	for _, ev := range out.Events {
		i := rt.shardOf(&ev)
		if _, seen := byShard[i]; !seen {
			order = append(order, i)
		}
		byShard[i] = append(byShard[i], ev)
	}
	for _, i := range order {
		rt.shards[i] <- batch{route: j.route, end: j.ex.End, events: byShard[i]}
	}
}

// shardOf keeps every event of a conversation on one shard.
func (rt *pipeline) shardOf(ev *transform.Event) int {
	key := ev.Get("conversation.id").Raw
	if key == "" {
		key = ev.ID
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(rt.shards)))
}

// maxStoreBatch bounds the messages stored in one outbox commit.
const maxStoreBatch = 512

// store turns batches into messages and stores them; batches already
// waiting join the same Enqueue, so under load one fsync serves many.
func (rt *pipeline) store(shard <-chan batch) {
	defer rt.wg.Done()
	for b := range shard {
		msgs := rt.messages(b)
	more:
		for len(msgs) < maxStoreBatch {
			select {
			case next, ok := <-shard:
				if !ok {
					break more
				}
				msgs = append(msgs, rt.messages(next)...)
			default:
				break more
			}
		}
		if len(msgs) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := rt.engine.Enqueue(ctx, msgs...); err != nil {
			rt.logger.Error("events not stored in the outbox", zap.Int("messages", len(msgs)), zap.Error(err))
		}
		cancel()
	}
}

// messages enriches and shapes one batch of events into webhook messages.
func (rt *pipeline) messages(b batch) []delivery.Message {
	var msgs []delivery.Message
	for i := range b.events {
		ev := &b.events[i]
		if b.route.enricher != nil {
			enriched, err := b.route.enricher.Enrich(context.Background(), *ev)
			if err != nil {
				metrics.userInfoFailures.Inc()
				b.route.logger.Debug("user_info lookup failed; the event goes out without it", zap.Error(err))
			}
			*ev = enriched
		}
		metrics.eventsDerived.WithLabelValues(ev.Type).Inc()
		for _, wh := range b.route.webhooks {
			payloads := wh.shape(ev)
			for k, p := range payloads {
				id := ev.ID
				if len(payloads) > 1 {
					id += "_" + strconv.Itoa(k)
				}
				msgs = append(msgs, delivery.Message{
					ID:       id,
					Endpoint: wh.endpoint.Name,
					Lane:     wh.lane(ev),
					Body:     p.Body,
					Created:  b.end,
				})
			}
		}
	}
	return msgs
}

// Destruct stops the workers once the queue is drained, then writes the
// conversation state and stops the engine.
// It runs when the last configuration using this pipeline is gone.
func (rt *pipeline) Destruct() error {
	rt.stopped.Store(true)
	close(rt.done)
	rt.wg.Wait()
	rt.stateMu.Lock()
	rt.stopState()
	rt.stateMu.Unlock()
	return rt.engine.Close()
}
