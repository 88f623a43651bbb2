package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/enrich"
	"github.com/chatwebhooks/chatwebhooks/internal/shape"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxCapture is how much of each body is captured by default.
const DefaultMaxCapture = 1 << 20

// Handler watches the traffic to a chat backend and turns it into webhooks.
// It never changes, delays or fails the proxied exchange.
type Handler struct {
	// Sources are built-in presets, e.g. "openai".
	Sources []string `json:"sources,omitempty"`
	// Rules are custom derivation rules.
	Rules []derive.Rule `json:"rules,omitempty"`
	// ConversationID lists where the conversation id is taken from, tried
	// before a source's own places (e.g. "request.header.X-Conversation-Id").
	ConversationID []string `json:"conversation_id,omitempty"`
	// AgentID and AgentName are given to every event whose source left
	// them absent; they may be {env.*} placeholders.
	AgentID   string `json:"agent_id,omitempty"`
	AgentName string `json:"agent_name,omitempty"`
	// MaxCapture caps the captured bytes of each body; default 1 MiB.
	MaxCapture int `json:"max_capture,omitempty"`
	// Schemas are custom payload schemas, usable by name in webhooks.
	Schemas []shape.Schema `json:"schemas,omitempty"`
	// Webhooks are the receivers.
	Webhooks []Webhook `json:"webhooks,omitempty"`
	// UserInfo, when set, fetches contact details from an external service
	// (ChatVolt's "Fetch External User Information"), in the pipeline.
	UserInfo *UserInfo `json:"user_info,omitempty"`
	// Record appends every exchange through this handler to a HAR file.
	Record *Record `json:"record,omitempty"`

	route *route
	rt    *pipeline
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.chat_webhooks",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision compiles sources, schemas and webhooks and declares the
// webhooks to this configuration's chat_webhooks app, which makes them the
// running ones when the configuration starts.
func (h *Handler) Provision(ctx caddy.Context) error {
	if err := h.check(); err != nil {
		return fmt.Errorf("chat_webhooks: %v", err)
	}
	key, err := routeKey(h)
	if err != nil {
		return fmt.Errorf("chat_webhooks: %v", err)
	}
	appIface, err := ctx.App("chat_webhooks")
	if err != nil {
		return err
	}
	app := appIface.(*App)
	h.rt = app.rt
	if h.MaxCapture == 0 {
		h.MaxCapture = DefaultMaxCapture
	}
	repl := caddy.NewReplacer()
	cfg := derive.Config{
		Presets:        h.Sources,
		Rules:          expandRules(h.Rules, repl),
		ConversationID: expandSources(h.ConversationID, repl),
		Defaults:       h.defaults(repl),
		DecodeLimit:    derive.DefaultDecodeLimit,
		State:          h.rt,
	}
	deriver, err := derive.New(cfg)
	if err != nil {
		return fmt.Errorf("chat_webhooks: %v", err)
	}
	r := &route{deriver: deriver, config: cfg, logger: ctx.Logger(), key: key}
	if h.UserInfo != nil {
		if r.enricher, err = h.UserInfo.enricher(repl); err != nil {
			return fmt.Errorf("chat_webhooks: user_info: %v", err)
		}
	}
	for i := range h.Webhooks {
		wh, err := h.Webhooks[i].compile(repl, h.Schemas)
		if err == nil {
			err = wh.endpoint.Check()
		}
		if err == nil {
			err = app.declare(wh)
		}
		if err != nil {
			return fmt.Errorf("chat_webhooks: webhook %d of this handler: %v", i+1, err)
		}
		r.webhooks = append(r.webhooks, wh)
	}
	if len(r.webhooks) == 0 && h.Record == nil {
		ctx.Logger().Warn("chat_webhooks has no webhook: events are derived but delivered nowhere")
	}
	if h.Record != nil {
		if r.record, err = h.Record.compile(ctx, h.Webhooks); err != nil {
			return fmt.Errorf("chat_webhooks: record: %v", err)
		}
	}
	warnUnreachable(ctx.Logger(), r)
	app.routes = append(app.routes, r)
	h.route = r
	return nil
}

// Cleanup lets go of the record file's writer, if any.
func (h *Handler) Cleanup() error {
	if h.route != nil && h.route.record != nil {
		return h.route.record.release()
	}
	return nil
}

// UserInfo configures the external user lookup.
type UserInfo struct {
	// URL may hold {contact.id}-style placeholders after its host; they are
	// filled URL-escaped from the event. The host is fixed configuration.
	URL string `json:"url"`
	// Headers are sent with every lookup (e.g. Authorization); values may
	// be {env.*} placeholders.
	Headers http.Header `json:"headers,omitempty"`
	// Timeout of one lookup; default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Cache is how long an answer is reused; default 10m.
	Cache caddy.Duration `json:"cache,omitempty"`
	// Root is the gjson path of the user object in the answer, if nested.
	Root string `json:"root,omitempty"`
}

func (u *UserInfo) enricher(repl *caddy.Replacer) (*enrich.Enricher, error) {
	header := http.Header{}
	for k, vs := range u.Headers {
		for _, v := range vs {
			header.Add(k, repl.ReplaceKnown(v, ""))
		}
	}
	return enrich.New(enrich.Config{
		URL:      repl.ReplaceKnown(u.URL, ""),
		Header:   header,
		Timeout:  time.Duration(u.Timeout),
		CacheTTL: time.Duration(u.Cache),
		Root:     u.Root,
	})
}

// defaults are the fields every event gets when its source left them absent.
func (h *Handler) defaults(repl *caddy.Replacer) []derive.Field {
	var out []derive.Field
	for _, f := range []struct{ to, value string }{{"agent.id", h.AgentID}, {"agent.name", h.AgentName}} {
		if f.value != "" {
			out = append(out, derive.Field{To: f.to, From: []string{"=" + repl.ReplaceKnown(f.value, "")}})
		}
	}
	return out
}

// expandSources resolves {env.*} placeholders in sources once, at provision:
// a placeholder source becomes a constant.
func expandSources(srcs []string, repl *caddy.Replacer) []string {
	out := make([]string, len(srcs))
	for i, s := range srcs {
		if strings.HasPrefix(s, "{") {
			s = "=" + repl.ReplaceKnown(s, "")
		} else if strings.HasPrefix(s, "=") {
			s = "=" + repl.ReplaceKnown(s[1:], "")
		}
		out[i] = s
	}
	return out
}

func expandRules(rules []derive.Rule, repl *caddy.Replacer) []derive.Rule {
	out := make([]derive.Rule, len(rules))
	for i, r := range rules {
		fields := make([]derive.Field, len(r.Fields))
		for j, f := range r.Fields {
			fields[j] = derive.Field{To: f.To, From: expandSources(f.From, repl)}
		}
		r.Fields = fields
		out[i] = r
	}
	return out
}

// ServeHTTP captures the exchange on its way through and hands it to the
// pipeline when it is finished. The response is never held back. A handler
// that records captures every exchange, to show what its rules miss.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	wanted := h.route.deriver.Wants(r.Method, r.URL.Path, r.Header)
	if !wanted && h.route.record == nil {
		return next.ServeHTTP(w, r)
	}
	start := time.Now()
	caps := &captures{resp: responseCapture{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, max: h.MaxCapture}}
	var reqCap *requestCapture
	if r.Body != nil && r.Body != http.NoBody {
		reqCap = &caps.req
		reqCap.body, reqCap.max, reqCap.buf = r.Body, h.MaxCapture, presized(r.ContentLength, h.MaxCapture)
		r.Body = reqCap
	}
	respCap := &caps.resp
	finished := false
	// Deferred so that an aborted stream (panic with http.ErrAbortHandler)
	// still yields its exchange; the panic continues unchanged.
	defer func() {
		reqHeader, respHeader := cloneHeaders(r.Header, w.Header())
		ex := &capture.Exchange{
			Method:         r.Method,
			Host:           r.Host,
			Path:           r.URL.Path,
			RawQuery:       r.URL.RawQuery,
			RequestHeader:  reqHeader,
			Status:         respCap.status,
			ResponseHeader: respHeader,
			ResponseBody:   respCap.buf,
			RemoteAddr:     r.RemoteAddr,
			Start:          start,
			End:            time.Now(),
			Aborted:        !finished,

			ResponseTruncated: respCap.truncated,
		}
		if reqCap != nil {
			// An aborted exchange's client is gone: take what came.
			ex.RequestBody, ex.RequestTruncated = reqCap.seal(finished)
		}
		if h.route.record != nil {
			h.route.record.add(ex)
		}
		if wanted {
			h.rt.submit(h.route, ex, trace.SpanFromContext(r.Context()))
		}
	}()
	err := next.ServeHTTP(respCap, r)
	finished = true
	return err
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
