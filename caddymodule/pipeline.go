package caddymodule

import (
	"context"
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

// pipeline is the part of the module that outlives a configuration: the
// pipeline queue, its workers and the delivery engine. It lives in a
// caddy.UsagePool so that a reload neither loses nor duplicates work.
type pipeline struct {
	engine *delivery.Engine
	// state remembers conversations' attributes across exchanges and
	// across reloads, so conversation.updated can say what changed; nil
	// when turned off. Handlers read it at provision.
	stateMu  sync.Mutex
	state    transform.StateStore
	stateCfg ConversationState
	queue    chan job
	logger   *zap.Logger
	wg       sync.WaitGroup
	// done stops the workers. The queue itself is never closed: a handler of
	// an old configuration may still submit after the pipeline is gone.
	done    chan struct{}
	stopped atomic.Bool
	// dropLogged makes the full-queue warning appear once per burst, not
	// once per dropped exchange.
	dropLogged atomic.Bool
}

func newPipeline(engine *delivery.Engine, queueSize, workers int, logger *zap.Logger) *pipeline {
	rt := &pipeline{engine: engine, queue: make(chan job, queueSize), logger: logger, done: make(chan struct{})}
	for i := 0; i < workers; i++ {
		rt.wg.Add(1)
		go rt.work()
	}
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
	rt.stateCfg, rt.state = cfg, nil
	if !cfg.Off {
		rt.state = transform.NewMemoryState(cfg.Entries, time.Duration(cfg.TTL))
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

func (rt *pipeline) work() {
	defer rt.wg.Done()
	for {
		select {
		case j := <-rt.queue:
			rt.take(j)
		case <-rt.done:
			for {
				select {
				case j := <-rt.queue:
					rt.take(j)
				default:
					return
				}
			}
		}
	}
}

func (rt *pipeline) take(j job) {
	metrics.queued.Dec()
	rt.process(j)
}

// process derives, shapes and stores one exchange's events. Messages are
// enqueued together so the outbox commits them in one batch.
func (rt *pipeline) process(j job) {
	out := j.route.deriver.Derive(j.ex)
	for _, p := range out.Problems {
		metrics.trafficProblems.WithLabelValues(p).Inc()
	}
	if len(out.Problems) > 0 {
		j.route.logger.Debug("traffic problem", zap.Strings("problems", out.Problems),
			zap.String("method", j.ex.Method), zap.String("path", j.ex.Path), zap.Int("events", len(out.Events)))
	}
	var msgs []delivery.Message
	for i := range out.Events {
		ev := &out.Events[i]
		if j.route.enricher != nil {
			enriched, err := j.route.enricher.Enrich(context.Background(), *ev)
			if err != nil {
				metrics.userInfoFailures.Inc()
				j.route.logger.Debug("user_info lookup failed; the event goes out without it", zap.Error(err))
			}
			*ev = enriched
		}
		metrics.eventsDerived.WithLabelValues(ev.Type).Inc()
		for _, wh := range j.route.webhooks {
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
					Created:  j.ex.End,
				})
			}
		}
	}
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.engine.Enqueue(ctx, msgs...); err != nil {
		j.route.logger.Error("events not stored in the outbox", zap.Int("messages", len(msgs)), zap.Error(err))
	}
}

// Destruct stops the workers once the queue is drained, then the engine.
// It runs when the last configuration using this pipeline is gone.
func (rt *pipeline) Destruct() error {
	rt.stopped.Store(true)
	close(rt.done)
	rt.wg.Wait()
	return rt.engine.Close()
}
