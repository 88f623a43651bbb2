package caddymodule

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/cluster"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// NATSOutbox shares the outbox and conversation memory of several Caddy
// instances through NATS JetStream. Each instance spools what it shapes in a
// local bbolt file (Outbox.Path) and publishes it from there; every
// instance delivers the partitions it is pinned on. Strings may hold
// {env.*} placeholders.
type NATSOutbox struct {
	// URLs of the NATS servers.
	URLs []string `json:"urls"`
	// Stream prefixes the names of the streams, consumers and buckets;
	// default chat_webhooks. Instances with the same prefix share.
	Stream string `json:"stream,omitempty"`
	// Partitions per webhook, default 16: conversations are hashed onto
	// them and one instance at a time delivers each. Fixed once messages
	// are queued.
	Partitions int `json:"partitions,omitempty"`
	// Replicas of the streams and buckets, default 1; 3 on a cluster.
	Replicas int `json:"replicas,omitempty"`
	// Failover is how long a dead instance's partitions wait before
	// another instance takes them over; default 30s.
	Failover caddy.Duration `json:"failover,omitempty"`
	// Credentials is a NATS .creds file; or User and Password; or Token.
	Credentials string `json:"credentials,omitempty"`
	User        string `json:"user,omitempty"`
	Password    string `json:"password,omitempty"`
	Token       string `json:"token,omitempty"`
	// TLS to the servers.
	TLS *NATSTLS `json:"tls,omitempty"`
}

// NATSTLS are the files of a TLS connection to NATS.
type NATSTLS struct {
	// CA is a PEM file of the certificate authorities to trust; default
	// the system's.
	CA string `json:"ca,omitempty"`
	// ClientCert and ClientKey are PEM files of a client certificate.
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"server_name,omitempty"`
}

const maxFailover = time.Hour

// readyWait bounds how long the first Start waits for NATS.
const readyWait = 2 * time.Second

func (n *NATSOutbox) check() error {
	if err := n.config(caddy.NewEmptyReplacer()).Check(); err != nil {
		return err
	}
	if t := n.TLS; t != nil && (t.ClientCert == "") != (t.ClientKey == "") {
		return errors.New("outbox nats tls: client_cert needs its key: client_cert <cert.pem> <key.pem>")
	}
	if n.Failover != 0 && time.Duration(n.Failover) < 3*time.Second {
		return fmt.Errorf("outbox nats failover %s: at least 3s", time.Duration(n.Failover))
	}
	return durationIn("outbox nats failover", n.Failover, maxFailover, "30s")
}

// config resolves placeholders into the cluster's configuration, without
// reading files.
func (n *NATSOutbox) config(repl *caddy.Replacer) cluster.Config {
	urls := make([]string, len(n.URLs))
	for i, u := range n.URLs {
		urls[i] = repl.ReplaceKnown(u, "")
	}
	return cluster.Config{
		URLs: urls, Prefix: n.Stream, Partitions: n.Partitions, Replicas: n.Replicas,
		Failover:    time.Duration(n.Failover),
		Credentials: repl.ReplaceKnown(n.Credentials, ""), User: repl.ReplaceKnown(n.User, ""),
		Password: repl.ReplaceKnown(n.Password, ""), Token: repl.ReplaceKnown(n.Token, ""),
	}
}

// tlsConfig reads the TLS files.
func (t *NATSTLS) tlsConfig(repl *caddy.Replacer) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: repl.ReplaceKnown(t.ServerName, "")}
	if t.CA != "" {
		pem, err := os.ReadFile(repl.ReplaceKnown(t.CA, ""))
		if err != nil {
			return nil, fmt.Errorf("outbox nats tls ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("outbox nats tls ca %s: no PEM certificate in it", t.CA)
		}
	}
	if t.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(repl.ReplaceKnown(t.ClientCert, ""), repl.ReplaceKnown(t.ClientKey, ""))
		if err != nil {
			return nil, fmt.Errorf("outbox nats tls client_cert: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// parseNATS reads the rest of "outbox nats <url...> { ... }":
//
//	outbox nats <url...> {
//		stream <prefix>
//		partitions <n>
//		replicas <n>
//		failover <duration>
//		spool <path>
//		credentials <file> | user <name> <password> | token <token>
//		tls {
//			ca <file>
//			client_cert <cert file> <key file>
//			server_name <name>
//		}
//	}
func parseNATS(d *caddyfile.Dispenser, urls []string) (*Outbox, error) {
	if len(urls) == 0 {
		return nil, d.Errf("outbox nats <url...>, e.g. outbox nats nats://127.0.0.1:4222")
	}
	n := &NATSOutbox{URLs: urls}
	ob := &Outbox{Kind: "nats", NATS: n}
	strs := map[string]*string{"stream": &n.Stream, "spool": &ob.Path, "credentials": &n.Credentials, "token": &n.Token}
	ints := map[string]*int{"partitions": &n.Partitions, "replicas": &n.Replicas}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch {
		case strs[opt] != nil:
			if !d.AllArgs(strs[opt]) {
				return nil, d.Errf("outbox nats %s takes one value", opt)
			}
		case ints[opt] != nil:
			var v string
			if !d.AllArgs(&v) {
				return nil, d.Errf("outbox nats %s takes one number", opt)
			}
			i, err := strconv.Atoi(v)
			if err != nil || i <= 0 {
				return nil, d.Errf("outbox nats %s %q: write a positive number", opt, v)
			}
			*ints[opt] = i
		case opt == "failover":
			var v string
			if !d.AllArgs(&v) {
				return nil, d.ArgErr()
			}
			dur, err := positiveDuration(d, "outbox nats failover", v, "30s")
			if err != nil {
				return nil, err
			}
			n.Failover = dur
		case opt == "user":
			if !d.AllArgs(&n.User, &n.Password) {
				return nil, d.Errf("outbox nats user <name> <password>")
			}
		case opt == "tls":
			t, err := parseNATSTLS(d)
			if err != nil {
				return nil, err
			}
			n.TLS = t
		default:
			return nil, d.Errf("unknown outbox nats option %q; known: stream, partitions, replicas, failover, spool, credentials, user, token, tls", opt)
		}
	}
	return ob, nil
}

func parseNATSTLS(d *caddyfile.Dispenser) (*NATSTLS, error) {
	t := &NATSTLS{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "ca":
			if !d.AllArgs(&t.CA) {
				return nil, d.ArgErr()
			}
		case "server_name":
			if !d.AllArgs(&t.ServerName) {
				return nil, d.ArgErr()
			}
		case "client_cert":
			if !d.AllArgs(&t.ClientCert, &t.ClientKey) {
				return nil, d.Errf("client_cert <cert.pem> <key.pem>")
			}
		default:
			return nil, d.Errf("unknown outbox nats tls option %q; known: ca, client_cert, server_name", d.Val())
		}
	}
	return t, nil
}

// natsOutbox is what a pipeline runs for outbox nats: the connection, the
// forwarder from the local spool and the store its engine delivers from.
type natsOutbox struct {
	cluster   *cluster.Cluster
	forwarder *cluster.Forwarder
	shared    *cluster.Store
}

// openNATS connects (in the background), opens the spool and builds the
// engine over the shared store; rt.mu is held.
func (rt *pipeline) openNATS(a *App) error {
	opts := a.opts
	repl := caddy.NewReplacer()
	n := rt.outbox.NATS
	cfg := n.config(repl)
	if n.TLS != nil {
		t, err := n.TLS.tlsConfig(repl)
		if err != nil {
			return err
		}
		cfg.TLS = t
	}
	cfg.MaxDeadLetters = opts.MaxDeadLetters
	cfg.Logger = opts.Logger
	cfg.StateTTL = time.Duration(a.ConversationState.withDefaults().TTL)
	if err := rt.makeDir(); err != nil {
		return err
	}
	spool, err := delivery.OpenBolt(rt.outbox.Path)
	if err != nil {
		return err
	}
	c, err := cluster.Connect(cfg)
	if err != nil {
		spool.Close()
		return err
	}
	maxMsgs, maxBytes := spoolLimits(opts)
	fw, err := c.NewForwarder(spool, maxMsgs, maxBytes, forwardObserver{})
	if err != nil {
		c.Close()
		spool.Close()
		return err
	}
	shared := c.NewStore()
	engine, err := delivery.New(shared, opts)
	if err != nil {
		fw.Close()
		c.Close()
		return err
	}
	shared.Attach(engine)
	// Give NATS a moment, so that the first events after a start see the
	// shared conversation state; without it they are spooled and use this
	// instance's memory until it answers.
	select {
	case <-c.Ready():
	case <-time.After(readyWait):
		rt.logger.Warn("NATS JetStream not reachable yet: spooling locally until it is", zap.Strings("urls", cfg.URLs))
	}
	rt.engine = engine
	rt.nats = &natsOutbox{cluster: c, forwarder: fw, shared: shared}
	rt.backing = natsBacking{c}
	return nil
}

// spoolLimits are the engine's queue limits, defaults included, applied to
// the spool.
func spoolLimits(o delivery.Options) (int, int64) {
	if o.MaxQueued <= 0 {
		o.MaxQueued = 100_000
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 256 << 20
	}
	return o.MaxQueued, o.MaxQueuedBytes
}

// close stops forwarding and delivering, then the connection. The engine
// closes first, which stops its consumers, so nothing is pulled that
// could not be delivered.
func (n *natsOutbox) close(engine *delivery.Engine) error {
	err := errors.Join(n.forwarder.Close(), engine.Close())
	n.cluster.Close()
	return err
}

// statsView is the admin API's stats: the engine's, and with outbox nats
// the local spool's.
type statsView struct {
	delivery.Stats
	Spool *cluster.ForwarderStats `json:"nats_spool,omitempty"`
	// Shared counts, per configured webhook, the messages in the stream
	// not yet acknowledged by any instance.
	Shared map[string]int `json:"nats_queued,omitempty"`
	// NATSError says why Shared is missing.
	NATSError string `json:"nats_error,omitempty"`
}

// stats adds the spool's and the stream's numbers to the engine's. With
// outbox nats the engine's queue is what this instance holds; dead letters
// are every instance's.
func (rt *pipeline) stats(s delivery.Stats) statsView {
	v := statsView{Stats: s}
	if rt.nats == nil {
		return v
	}
	fs := rt.nats.forwarder.Stats()
	v.Spool = &fs
	var err error
	if v.Shared, err = rt.nats.shared.Queued(slices.Collect(maps.Keys(s.Endpoints))); err != nil {
		v.NATSError = err.Error()
	}
	return v
}

// purge deletes a webhook's queued messages and dead letters; with outbox
// nats, those in the shared stream as well, whichever instance holds their
// partition (messages another instance holds are delivered or dropped by
// it; their acknowledgement then finds nothing).
func (rt *pipeline) purge(engine *delivery.Engine, webhook string) (delivery.Purged, error) {
	p, err := engine.Purge(webhook)
	if rt.nats == nil {
		return p, err
	}
	n, serr := rt.nats.shared.PurgeQueued(webhook)
	p.Queued += n
	if n > 0 && errors.Is(err, delivery.ErrUnknownEndpoint) {
		err = nil // not configured here, but queued for other instances
	}
	return p, errors.Join(err, serr)
}

// forwardObserver turns the forwarder's events into metrics.
type forwardObserver struct{}

func (forwardObserver) Forwarded(lag time.Duration) {
	metrics.forwarded.Inc()
	metrics.forwardLag.Observe(lag.Seconds())
}

func (forwardObserver) Spooled(n int) { metrics.spooled.Set(float64(n)) }

func (forwardObserver) Refused(endpoint string) {
	metrics.dropped.WithLabelValues(endpoint, "", delivery.ReasonQueueFull).Inc()
}
