package caddymodule

import (
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
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
	// Journal sets the capture journal of a durable outbox, on by
	// default: exchanges of a Caddy killed before their events were in
	// the outbox are stored when it starts again.
	Journal *JournalConfig `json:"journal,omitempty"`
	// KeepDelivered bounds the delivered messages kept, with their
	// attempts, for the admin API and the dashboard.
	KeepDelivered *KeepDelivered `json:"keep_delivered,omitempty"`

	rt     *pipeline
	key    string
	logger *zap.Logger
	opts   delivery.Options
	// webhooks are the receivers this configuration's handlers declared,
	// by name; Start makes them the engine's whole set.
	webhooks map[string]*webhook
	// routes are the configuration's handlers, for rederive and for the
	// exchanges the capture journal replays.
	routes []*route
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
	out := ConversationState{Entries: convstate.DefaultEntries, TTL: caddy.Duration(24 * time.Hour)}
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

// KeepDelivered bounds the delivered messages kept for lookup, across all
// webhooks: a message is kept for For, among the newest MaxMessages and
// MaxBytes (stored size), the oldest deleted first. Zero fields take the
// defaults: 1h, 1000 messages, 16 MiB. Off keeps none.
type KeepDelivered struct {
	Off         bool           `json:"off,omitempty"`
	For         caddy.Duration `json:"for,omitempty"`
	MaxMessages int            `json:"max_messages,omitempty"`
	MaxBytes    int64          `json:"max_bytes,omitempty"`
}

func (k *KeepDelivered) retention() delivery.Retention {
	switch {
	case k == nil:
		return delivery.Retention{}
	case k.Off:
		return delivery.Retention{Age: -1}
	}
	return delivery.Retention{Age: time.Duration(k.For), Count: k.MaxMessages, Bytes: k.MaxBytes}
}

// Outbox selects the event store.
type Outbox struct {
	// Kind is "bbolt" (default, durable), "memory" (development only:
	// queued events are lost when Caddy stops) or "nats" (several
	// instances share an outbox on NATS JetStream).
	Kind string `json:"kind,omitempty"`
	// Path of the bbolt file; default chat_webhooks/outbox.db under Caddy's
	// data directory, which is created if missing. With nats it is the
	// local spool where messages wait to be published, default
	// chat_webhooks/nats-spool.db.
	Path string `json:"path,omitempty"`
	// NATS configures the nats outbox.
	NATS *NATSOutbox `json:"nats,omitempty"`

	defaultPath bool
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "chat_webhooks",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the options and joins the pipeline of this outbox,
// which is shared across configurations. It opens nothing and starts
// nothing: a configuration that is only validated, or that fails to load,
// leaves the running one exactly as it was.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := a.check(); err != nil {
		return fmt.Errorf("chat_webhooks: %v", err)
	}
	var ob Outbox
	if a.Outbox != nil {
		ob = *a.Outbox
	}
	if ob.Kind == "" {
		ob.Kind = "bbolt"
	}
	if ob.Kind == "memory" {
		ob.Path = ""
	} else if ob.Path == "" {
		file := "outbox.db"
		if ob.Kind == "nats" {
			file = "nats-spool.db"
		}
		ob.Path = filepath.Join(caddy.AppDataDir(), "chat_webhooks", file)
		ob.defaultPath = true
	}
	if a.QueueSize == 0 {
		a.QueueSize = 4096
	}
	if a.Workers == 0 {
		a.Workers = runtime.GOMAXPROCS(0)
	}
	a.opts = delivery.Options{
		Logger:         ctx.Slogger(),
		Observer:       deliveryObserver{},
		MaxQueued:      a.MaxQueued,
		MaxQueuedBytes: a.MaxQueuedBytes,
		MaxDeadLetters: a.MaxDeadLetters,
		Breaker:        a.Breaker.config(),
		KeepDelivered:  a.KeepDelivered.retention(),
	}
	a.webhooks = map[string]*webhook{}
	a.key = "pipeline:" + ob.Kind + ":" + ob.Path
	val, _, err := pool.LoadOrNew(a.key, func() (caddy.Destructor, error) {
		return newPipeline(ob, a.QueueSize, a.Workers, a.logger), nil
	})
	if err != nil {
		return fmt.Errorf("chat_webhooks: outbox %s %s: %v", ob.Kind, ob.Path, err)
	}
	a.rt = val.(*pipeline)
	registerMetrics(ctx.GetMetricsRegistry())
	return nil
}

// declare adds a handler's webhook to this configuration. A name stands for
// one webhook: declaring the same one again (a snippet imported by two
// sites) is fine, two different ones under one name are not.
func (a *App) declare(wh *webhook) error {
	name := wh.endpoint.Name
	if prev := a.webhooks[name]; prev != nil && prev.spec != wh.spec {
		return fmt.Errorf("two different webhooks are named %q (%s and %s): give each its own name", name, prev.where, wh.where)
	}
	a.webhooks[name] = wh
	return nil
}

// endpoints lists the declared webhooks' endpoints.
func (a *App) endpoints() []delivery.Endpoint {
	eps := make([]delivery.Endpoint, 0, len(a.webhooks))
	for _, wh := range a.webhooks {
		eps = append(eps, wh.endpoint)
	}
	return eps
}

// Start is Caddy's commit point, reached once the whole configuration has
// provisioned: it opens the outbox if this is the first configuration using
// it, then makes this configuration's webhooks, limits and conversation
// memory the running ones.
func (a *App) Start() error {
	if err := a.rt.activate(a); err != nil {
		return fmt.Errorf("chat_webhooks: %v", err)
	}
	return nil
}

// Stop undoes Start: when this configuration failed to start beside a
// running one, the running one's webhooks are back as they were.
func (a *App) Stop() error {
	a.rt.deactivate(a)
	return nil
}

// Cleanup releases this configuration's hold on the pipeline, which closes
// when no configuration uses it.
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
