package caddymodule

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/shape"
	"github.com/chatwebhooks/chatwebhooks/signer"
)

// Webhook is one receiver: where events go, in which shape, signed how.
type Webhook struct {
	// Name identifies the webhook in the outbox, metrics, logs and the admin
	// API, and must be unique in a configuration. The default is
	// "<schema> <host> <digest>", where the digest covers everything that
	// shapes or authorises a delivery: a webhook without a name is a new
	// webhook whenever any of that changes. Give a name to keep its queue
	// and dead letters across such changes. URL paths and queries, which
	// may be secrets, never appear in the default.
	Name string `json:"name,omitempty"`
	// URL is fixed configuration; it is never built from traffic.
	URL string `json:"url"`
	// Schema names a built-in or custom schema; default "standard".
	Schema string `json:"schema,omitempty"`
	// Events filters by canonical type or the schema's event names.
	Events []string `json:"events,omitempty"`
	// Sign configures the signature; absent means unsigned.
	Sign *signer.Config `json:"sign,omitempty"`
	// Headers are sent with every delivery (e.g. a static auth header).
	Headers http.Header `json:"headers,omitempty"`
	// Body is a JSON object template merged into every payload.
	Body json.RawMessage `json:"body,omitempty"`
	// Retry are the delays between attempts; default immediately, 5s, 5m,
	// 30m, 2h, 5h, 10h, 10h (with jitter). NoRetry makes one attempt only.
	Retry   []caddy.Duration `json:"retry,omitempty"`
	NoRetry bool             `json:"no_retry,omitempty"`
	// Timeout of one attempt; default 15s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Ordering is "conversation" (default: in order per conversation) or
	// "none" (in parallel).
	Ordering string `json:"ordering,omitempty"`
	// ExpectBody, when set, is a JSON object a 2xx answer must contain to
	// count as accepted, e.g. {"status":"accepted"}.
	ExpectBody json.RawMessage `json:"expect_body,omitempty"`
	// MaxConcurrency bounds attempts in flight to this webhook; default 10.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// DenyPrivate refuses loopback, private, link-local and cloud metadata
	// addresses, checked on the resolved address at connect time.
	DenyPrivate bool `json:"deny_private,omitempty"`
	// TLS adds trusted CAs or a client certificate (mTLS). Verification is
	// always on.
	TLS *WebhookTLS `json:"tls,omitempty"`
	// Redact lists payload paths (gjson/sjson syntax) removed before the
	// payload is stored, e.g. userEmail or payload.from.
	Redact []string `json:"redact,omitempty"`
	// RateLimit spaces deliveries evenly, "<n>/<duration>" such as 10/1s:
	// messages wait their turn in the outbox, none is dropped.
	RateLimit string `json:"rate_limit,omitempty"`
	// DisableAfter disables the webhook once every attempt has failed for
	// this long (Svix uses 5 days): nothing more is attempted and its
	// messages are kept until it is enabled again through the admin API.
	// Default off.
	DisableAfter caddy.Duration `json:"disable_after,omitempty"`
}

// WebhookTLS configures HTTPS to one receiver.
type WebhookTLS struct {
	// CA are PEM files of extra trusted certificate authorities.
	CA []string `json:"ca,omitempty"`
	// ClientCert and ClientKey are PEM files presented for mutual TLS.
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
}

func (t *WebhookTLS) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(t.CA) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, file := range t.CA {
			pem, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("tls ca: %v", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls ca %s: no PEM certificate found", file)
			}
		}
		cfg.RootCAs = pool
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		return nil, fmt.Errorf("tls: give both client_cert and client_key, or neither")
	}
	if t.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// webhook is a compiled Webhook.
type webhook struct {
	endpoint delivery.Endpoint
	shaper   *shape.Shaper
	// spec is the webhook's whole configuration, to tell a webhook declared
	// twice (a snippet imported in two sites) from two that share a name.
	spec string
	// where describes it in errors without its URL's path or query.
	where string
}

// message is one outbox message of a webhook with its platform event name.
type message struct {
	delivery.Message
	Event string
}

// messages shapes ev into this webhook's outbox messages.
func (w *webhook) messages(ev *event.Event, created time.Time) []message {
	return w.appendMessages(nil, ev, conversationID(ev), created)
}

// appendMessages appends ev's outbox messages for this webhook to dst; conv
// is ev's conversation id, looked up once for all webhooks. A message's id
// is the event's, suffixed with the payload's index when the schema makes
// several payloads of one event.
func (w *webhook) appendMessages(dst []message, ev *event.Event, conv string, created time.Time) []message {
	payloads := w.shaper.Shape(ev)
	for k, p := range payloads {
		id := ev.ID
		if len(payloads) > 1 {
			id += "_" + strconv.Itoa(k)
		}
		dst = append(dst, message{Event: p.Event, Message: delivery.Message{
			ID: id, Endpoint: w.endpoint.Name, Identity: w.endpoint.Identity, Settings: &w.endpoint,
			Lane: w.lane(ev, conv), Body: p.Body, Created: created, Conversation: conv,
		}})
	}
	return dst
}

// conversationID is the id of ev's conversation, "" without one.
func conversationID(ev *event.Event) string {
	return ev.Get("conversation.id").String()
}

// lane is the ordering key of an event of conversation conv for this
// webhook: its conversation, or the event alone when it has no
// conversation.
func (w *webhook) lane(ev *event.Event, conv string) string {
	switch {
	case !w.endpoint.Ordered:
		return ""
	case conv != "":
		return conv
	}
	return ev.ID
}

func (wh Webhook) compile(repl *caddy.Replacer, custom []shape.Schema) (*webhook, error) {
	if err := wh.check(); err != nil {
		return nil, err
	}
	u, err := url.Parse(repl.ReplaceKnown(wh.URL, ""))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url must be an absolute http:// or https:// URL")
	}
	schema := wh.Schema
	if schema == "" {
		schema = "standard"
	}
	shaper, err := shape.New(shape.Config{Schema: schema, Custom: custom, Events: wh.Events, Body: wh.Body, Redact: wh.Redact})
	if err != nil {
		return nil, err
	}
	ep := delivery.Endpoint{
		Name:       wh.Name,
		URL:        u.String(),
		Schema:     schema,
		Header:     http.Header{},
		Timeout:    time.Duration(wh.Timeout),
		ExpectBody: string(wh.ExpectBody),

		MaxConcurrency: wh.MaxConcurrency,
		DenyPrivate:    wh.DenyPrivate,
		Ordered:        wh.Ordering != "none",
		DisableAfter:   time.Duration(wh.DisableAfter),
	}
	ep.RateLimit, ep.RatePeriod, _ = wh.rate() // checked above
	if wh.TLS != nil {
		if ep.TLS, err = wh.TLS.config(); err != nil {
			return nil, err
		}
	}
	for k, vs := range wh.Headers {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("header name %q is not a valid HTTP header name", k)
		}
		for _, v := range vs {
			ep.Header.Add(k, repl.ReplaceKnown(v, ""))
		}
	}
	switch {
	case wh.NoRetry:
		ep.Retry = []time.Duration{}
	case len(wh.Retry) > 0:
		for _, d := range wh.Retry {
			ep.Retry = append(ep.Retry, time.Duration(d))
		}
	}
	var sign *signer.Config
	if wh.Sign != nil {
		cfg := *wh.Sign
		cfg.Secrets = make([]string, len(wh.Sign.Secrets))
		for i, s := range wh.Sign.Secrets {
			cfg.Secrets[i] = repl.ReplaceKnown(s, "")
		}
		if ep.Scheme, err = cfg.Scheme(); err != nil {
			return nil, fmt.Errorf("sign: %v", err)
		}
		sign = &cfg
	}
	ep.Identity = identity(wh, ep, sign, custom)
	if ep.Name == "" {
		ep.Name = schema + " " + u.Host + " " + ep.Identity[:8]
	}
	spec, _ := json.Marshal(wh)
	return &webhook{endpoint: ep, shaper: shaper,
		spec: ep.Identity + string(spec), where: schema + " → " + u.Host}, nil
}

// identity digests everything that shapes or authorises a delivery of wh,
// with placeholders resolved: where it goes (URL with its query), what the
// payload is (schema, custom schema definition, events, body extras,
// redactions), and how it is authenticated (headers, signing scheme and
// secrets, TLS). The digest is one-way, so it can name the webhook.
func identity(wh Webhook, ep delivery.Endpoint, sign *signer.Config, custom []shape.Schema) string {
	var schemaDef *shape.Schema
	for i := range custom {
		if custom[i].Name == ep.Schema {
			schemaDef = &custom[i]
		}
	}
	var signSpec any
	if sign != nil {
		signSpec = struct {
			Scheme  string
			Secrets []string
			Options signer.HMACOptions
		}{sign.Name, sign.Secrets, sign.HMACOptions}
	}
	b, _ := json.Marshal(struct {
		URL, Schema string
		SchemaDef   *shape.Schema
		Events      []string
		Body        json.RawMessage
		Redact      []string
		Header      http.Header
		Sign        any
		TLS         *WebhookTLS
	}{ep.URL, ep.Schema, schemaDef, wh.Events, wh.Body, wh.Redact, ep.Header, signSpec, wh.TLS})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
