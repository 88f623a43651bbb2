// Package cluster lets several chatwebhooks instances share one outbox and
// one conversation memory on NATS JetStream.
//
// Every instance first stores the messages it shapes in its own local
// outbox file (the spool), from which a forwarder publishes them to a
// work-queue stream and deletes them once JetStream acknowledges. The
// stream's subjects are <prefix>.out.<webhook>.<partition>.<lane hash>, the
// lane being the conversation and the partition its hash modulo the
// partitions. Each (webhook, partition) has a durable pull consumer with a
// pinned priority group, so one instance at a time delivers a partition;
// it feeds what it pulls into an ordinary delivery.Engine through Store, so
// lanes, retries, the breaker and signing are the engine's own. Failed
// attempts keep their schedule in a key-value bucket, so that another
// instance taking over continues it; dead letters go to a second stream
// that every instance reads and replays from.
package cluster

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config is how an instance reaches NATS and names what it shares there.
// Instances that share a Prefix share outbox, dead letters and conversation
// memory.
type Config struct {
	// URLs of the NATS servers, e.g. nats://10.0.0.5:4222.
	URLs []string
	// Prefix names the streams, consumers and buckets; default
	// chat_webhooks.
	Prefix string
	// Partitions per webhook; default 16. It decides which consumer a
	// conversation lands on and must not change while messages are queued.
	Partitions int
	// Replicas of streams and buckets; default 1.
	Replicas int
	// Credentials is a NATS .creds file; or User and Password; or Token.
	Credentials, User, Password, Token string
	// TLS, when set, is used to reach the servers.
	TLS *tls.Config
	// Failover is how long a dead instance's partitions wait before another
	// instance takes them over (the consumers' pinned TTL); default 30s.
	Failover time.Duration
	// MaxDeadLetters bounds the dead-letter stream; default 100000.
	MaxDeadLetters int
	// StateTTL is how long an idle conversation's attributes are kept;
	// default 24h.
	StateTTL time.Duration
	// Logger receives connection changes and failures; default discard.
	Logger *slog.Logger
}

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Check validates what can be known before connecting.
func (c Config) Check() error {
	if len(c.URLs) == 0 {
		return errors.New("outbox nats needs at least one server URL, such as nats://127.0.0.1:4222")
	}
	for _, u := range c.URLs {
		if !strings.Contains(u, "{") && !strings.Contains(u, "://") {
			return fmt.Errorf("NATS server %q: write a URL such as nats://127.0.0.1:4222", u)
		}
	}
	if c.Prefix != "" && !validPrefix.MatchString(c.Prefix) {
		return fmt.Errorf("stream %q: use letters, digits, - and _ only", c.Prefix)
	}
	if c.Partitions < 0 || c.Partitions > 1024 {
		return fmt.Errorf("partitions %d: write a number from 1 to 1024", c.Partitions)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas %d: write a number from 1 to 5", c.Replicas)
	}
	if c.Token != "" && (c.User != "" || c.Credentials != "") || c.User != "" && c.Credentials != "" {
		return errors.New("choose one of credentials, user/password and token")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "chat_webhooks"
	}
	if c.Partitions == 0 {
		c.Partitions = 16
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Failover <= 0 {
		c.Failover = 30 * time.Second
	}
	if c.MaxDeadLetters <= 0 {
		c.MaxDeadLetters = 100_000
	}
	if c.StateTTL <= 0 {
		c.StateTTL = 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ackWait is how long a pulled message may go without acknowledgement or
// progress before JetStream redelivers it. It is half the failover time, so
// that a dead instance's messages are back in the stream before its pin
// moves, and they are delivered again in stream order ahead of new ones.
func (c Config) ackWait() time.Duration { return c.Failover / 2 }

// pullExpiry bounds each pull request; a live instance renews its pin at
// least this often.
func (c Config) pullExpiry() time.Duration { return max(c.Failover/6, time.Second) }

// Cluster is one instance's connection to the shared outbox. It connects
// in the background: an instance starts, spools and serves while NATS is
// unreachable.
type Cluster struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger

	// The streams and buckets are set once, before ready is closed; they
	// are read only after it is.
	ready   chan struct{}
	out     jetstream.Stream
	dlq     jetstream.Stream
	sched   jetstream.KeyValue // retry schedules of failed messages
	state   jetstream.KeyValue // conversation attributes
	stop    chan struct{}
	stopped sync.WaitGroup
}

// Connect starts connecting to NATS and creating the streams and buckets;
// it returns at once unless the configuration is unusable. Close ends it.
func Connect(cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	opts := []nats.Option{
		nats.Name("chat_webhooks"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Publishes fail at once while disconnected instead of waiting
		// in a client buffer: the spool is the buffer, and it survives a
		// crash.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			cfg.Logger.Warn("NATS disconnected: messages wait in the local spool", "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			cfg.Logger.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
	switch {
	case cfg.Credentials != "":
		opts = append(opts, nats.UserCredentials(cfg.Credentials))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c := &Cluster{cfg: cfg, nc: nc, js: js, log: cfg.Logger, ready: make(chan struct{}), stop: make(chan struct{})}
	c.stopped.Add(1)
	go c.setup()
	return c, nil
}

// setup creates the streams and buckets, retrying until NATS answers.
func (c *Cluster) setup() {
	defer c.stopped.Done()
	logged := false
	for {
		err := c.create()
		if err == nil {
			close(c.ready)
			return
		}
		if !logged {
			logged = true
			c.log.Warn("NATS JetStream not ready; retrying (messages wait in the local spool)", "error", err)
		}
		select {
		case <-c.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

func (c *Cluster) create() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, r := c.cfg.Prefix, c.cfg.Replicas
	out, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: p + "_out", Subjects: []string{p + ".out.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: r,
		Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("stream %s_out: %w", p, err)
	}
	dlq, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: p + "_dead", Subjects: []string{p + ".dead.>"},
		Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, Replicas: r,
		// One dead letter per webhook and id: burying it again replaces it.
		MaxMsgsPerSubject: 1, MaxMsgs: int64(c.cfg.MaxDeadLetters), Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("stream %s_dead: %w", p, err)
	}
	sched, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: p + "_schedule", History: 1, Replicas: r, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("bucket %s_schedule: %w", p, err)
	}
	state, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: p + "_conversations", History: 1, Replicas: r, Storage: jetstream.FileStorage,
		TTL: c.cfg.StateTTL,
	})
	if err != nil {
		return fmt.Errorf("bucket %s_conversations: %w", p, err)
	}
	c.out, c.dlq, c.sched, c.state = out, dlq, sched, state
	return nil
}

// Ready is closed once the streams and buckets exist.
func (c *Cluster) Ready() <-chan struct{} { return c.ready }

// isReady reports whether setup is done, without waiting.
func (c *Cluster) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// Connected reports whether the connection to NATS is up.
func (c *Cluster) Connected() bool { return c.nc.IsConnected() }

// Close stops connecting and closes the connection; what is not acknowledged
// is delivered again, by this or another instance.
func (c *Cluster) Close() {
	close(c.stop)
	c.stopped.Wait()
	c.nc.Close()
}

// token encodes a name as one subject token, consumer name part or bucket
// key, reversibly: webhook names and conversation ids may hold any
// character.
func token(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

func untoken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err
}

// outSubject is where a message of endpoint and lane is published. The
// partition is the lane's hash modulo the partitions, so every instance
// computes the same one; the last token is the hash itself, for operators
// reading the stream.
func (c *Cluster) outSubject(endpoint, lane string) string {
	h := fnv.New32a()
	h.Write([]byte(lane))
	sum := h.Sum32()
	return c.outPrefix(endpoint) + strconv.Itoa(int(sum%uint32(c.cfg.Partitions))) + "." + strconv.FormatUint(uint64(sum), 16)
}

// outPrefix begins the subjects of endpoint's messages, which its consumers
// and purges filter on.
func (c *Cluster) outPrefix(endpoint string) string {
	return c.cfg.Prefix + ".out." + token(endpoint) + "."
}

// consumerName names the consumer of endpoint's partition p.
func (c *Cluster) consumerName(endpoint string, p int) string {
	return c.cfg.Prefix + "_" + token(endpoint) + "_" + strconv.Itoa(p)
}

// deadSubject holds the dead letter of endpoint with id.
func (c *Cluster) deadSubject(endpoint, id string) string {
	return c.cfg.Prefix + ".dead." + token(endpoint) + "." + token(id)
}
