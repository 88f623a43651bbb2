package caddymodule

import (
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/delivery"
	"github.com/chatwebhooks/chatwebhooks/transform"
)

func init() {
	caddy.RegisterModule(App{})
}

// pool keeps pipelines across configuration reloads, keyed by outbox.
var pool = caddy.NewUsagePool()

// App is the chat_webhooks app: it owns the pipeline and the delivery engine
// that every chat_webhooks handler of a configuration shares.
type App struct {
	// Outbox is where events wait for delivery.
	Outbox *Outbox `json:"outbox,omitempty"`
	// QueueSize bounds the exchanges waiting to be turned into events;
	// default 4096. When full, exchanges are dropped and counted.
	QueueSize int `json:"queue_size,omitempty"`
	// Workers enrich, shape and store the derived events, each for its
	// share of the conversations; default the number of CPUs.
	Workers int `json:"workers,omitempty"`
	// MaxQueued and MaxQueuedBytes cap the outbox (default 100000 messages,
	// 256 MiB). When full, new messages are refused and counted (dropped,
	// reason queue_full); queued ones are kept.
	MaxQueued      int   `json:"max_queued,omitempty"`
	MaxQueuedBytes int64 `json:"max_queued_bytes,omitempty"`
	// MaxDeadLetters bounds the dead letters kept per webhook (default
	// 10000); beyond it the oldest are deleted and counted.
	MaxDeadLetters int `json:"max_dead_letters,omitempty"`
	// ConversationState sizes the memory of conversations' attributes
	// (status, priority, assignee...) from which conversation.updated
	// reports what changed; default 10000 conversations for 24h each.
	ConversationState *ConversationState `json:"conversation_state,omitempty"`
	// Breaker tunes the circuit breaker kept per webhook.
	Breaker *Breaker `json:"breaker,omitempty"`

	rt     *pipeline
	key    string
	logger *zap.Logger
}

// ConversationState sizes the conversation memory; Off disables it, so that
// events carry only what their own exchange shows.
type ConversationState struct {
	Off bool `json:"off,omitempty"`
	// Entries is how many conversations are remembered, the least recently
	// used forgotten first.
	Entries int `json:"entries,omitempty"`
	// TTL is how long an unused conversation is remembered.
	TTL caddy.Duration `json:"ttl,omitempty"`
}

// withDefaults fills in the default size and lifetime.
func (s *ConversationState) withDefaults() ConversationState {
	out := ConversationState{Entries: transform.DefaultStateEntries, TTL: caddy.Duration(24 * time.Hour)}
	if s != nil {
		out.Off = s.Off
		if s.Entries > 0 {
			out.Entries = s.Entries
		}
		if s.TTL > 0 {
			out.TTL = s.TTL
		}
	}
	return out
}

// Breaker tunes the circuit breaker of every webhook: when FailureRatio of
// at least MinRequests attempts within Window fail, the webhook's events
// wait (they are not attempted, not counted as attempts, not dropped) for
// Cooldown, then one probe is let through; every failed probe doubles the
// wait, up to MaxCooldown. Zero fields take the defaults: 30s window, 10
// requests, 0.7, 30s cooldown, 10m maximum.
type Breaker struct {
	Window       caddy.Duration `json:"window,omitempty"`
	MinRequests  int            `json:"min_requests,omitempty"`
	FailureRatio float64        `json:"failure_ratio,omitempty"`
	Cooldown     caddy.Duration `json:"cooldown,omitempty"`
	MaxCooldown  caddy.Duration `json:"max_cooldown,omitempty"`
}

func (b *Breaker) config() delivery.BreakerConfig {
	if b == nil {
		return delivery.BreakerConfig{}
	}
	return delivery.BreakerConfig{
		Window: time.Duration(b.Window), MinRequests: b.MinRequests, FailureRatio: b.FailureRatio,
		Cooldown: time.Duration(b.Cooldown), MaxCooldown: time.Duration(b.MaxCooldown),
	}
}

// Outbox selects the event store.
type Outbox struct {
	// Kind is "bbolt" (default, durable) or "memory" (development only:
	// queued events are lost when Caddy stops).
	Kind string `json:"kind,omitempty"`
	// Path of the bbolt file; default chat_webhooks/outbox.db under Caddy's
	// data directory.
	Path string `json:"path,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "chat_webhooks",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision joins (or starts) the pipeline for this outbox.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	var ob Outbox
	if a.Outbox != nil {
		ob = *a.Outbox
	}
	if ob.Kind == "" {
		ob.Kind = "bbolt"
	}
	switch ob.Kind {
	case "memory":
		ob.Path = ""
	case "bbolt":
		if ob.Path == "" {
			ob.Path = filepath.Join(caddy.AppDataDir(), "chat_webhooks", "outbox.db")
		}
	default:
		return fmt.Errorf("chat_webhooks: outbox %q: write bbolt [path] or memory", ob.Kind)
	}
	if a.QueueSize <= 0 {
		a.QueueSize = 4096
	}
	if a.Workers <= 0 {
		a.Workers = runtime.GOMAXPROCS(0)
	}
	if b := a.Breaker; b != nil && (b.FailureRatio < 0 || b.FailureRatio > 1) {
		return fmt.Errorf("chat_webhooks: breaker failure_ratio %g: write a share between 0 and 1, such as 0.7", b.FailureRatio)
	}
	opts := delivery.Options{
		Logger:         ctx.Slogger(),
		Observer:       deliveryObserver{},
		MaxQueued:      a.MaxQueued,
		MaxQueuedBytes: a.MaxQueuedBytes,
		MaxDeadLetters: a.MaxDeadLetters,
		Breaker:        a.Breaker.config(),
	}
	a.key = "pipeline:" + ob.Kind + ":" + ob.Path
	val, loaded, err := pool.LoadOrNew(a.key, func() (caddy.Destructor, error) {
		store, err := openStore(ob)
		if err != nil {
			return nil, err
		}
		engine, err := delivery.New(store, opts)
		if err != nil {
			return nil, err
		}
		return newPipeline(engine, delivery.KeyValues(store, "conversations"), a.QueueSize, a.Workers, a.logger), nil
	})
	if err != nil {
		return fmt.Errorf("chat_webhooks: outbox %s %s: %v", ob.Kind, ob.Path, err)
	}
	a.rt = val.(*pipeline)
	if loaded {
		// A reload keeps the running pipeline, so that nothing queued is
		// lost; the limits and the breaker apply at once, the pipeline's
		// own sizes only when it starts again.
		a.rt.engine.Tune(opts)
		if cap(a.rt.queue) != a.QueueSize || len(a.rt.shards) != a.Workers {
			a.logger.Warn("queue_size and workers take effect when Caddy restarts, not on reload",
				zap.Int("queue_size", cap(a.rt.queue)), zap.Int("workers", len(a.rt.shards)))
		}
	}
	a.rt.useState(a.ConversationState)
	registerMetrics(ctx.GetMetricsRegistry())
	return nil
}

func openStore(ob Outbox) (delivery.Store, error) {
	if ob.Kind == "memory" {
		return delivery.NewMemoryStore(), nil
	}
	return delivery.OpenBolt(ob.Path)
}

// Start implements caddy.App; the pipeline is already running.
func (a *App) Start() error { return nil }

// Stop implements caddy.App; the pipeline stops when no configuration uses it.
func (a *App) Stop() error { return nil }

// Cleanup releases this configuration's hold on the pipeline.
func (a *App) Cleanup() error {
	_, err := pool.Delete(a.key)
	return err
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
