package caddymodule

import (
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"golang.org/x/net/http/httpguts"

	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/shape"
	"github.com/chatwebhooks/chatwebhooks/signer"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("chat_webhooks", parseHandler)
	// After encode, so the captured response is what the backend sent, and
	// before handle/route/reverse_proxy, so users need no order line.
	httpcaddyfile.RegisterDirectiveOrder("chat_webhooks", httpcaddyfile.After, "encode")
	httpcaddyfile.RegisterGlobalOption("chat_webhooks", parseGlobal)
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var m Handler
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return &m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	chat_webhooks {
//		source <preset...>
//		rule <name> { ... }
//		conversation_id <source...>
//		agent_id <id>
//		agent_name <name>
//		max_capture <size>
//		schema <name> { ... }
//		user_info <url> { ... }
//		record <file> { ... }
//		webhook <url> { ... }
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "source":
			names := d.RemainingArgs()
			if len(names) == 0 {
				return d.Errf("source needs a preset name: %s", strings.Join(derive.PresetNames(), ", "))
			}
			for _, n := range names {
				if !slices.Contains(derive.PresetNames(), n) {
					return d.Errf("unknown source %q; built-in sources: %s", n, strings.Join(derive.PresetNames(), ", "))
				}
			}
			h.Sources = append(h.Sources, names...)
		case "rule":
			r, err := parseRule(d)
			if err != nil {
				return err
			}
			h.Rules = append(h.Rules, r)
		case "conversation_id":
			h.ConversationID = d.RemainingArgs()
			if len(h.ConversationID) == 0 {
				return d.ArgErr()
			}
		case "agent_id":
			if !d.AllArgs(&h.AgentID) {
				return d.ArgErr()
			}
		case "agent_name":
			if !d.AllArgs(&h.AgentName) {
				return d.ArgErr()
			}
		case "max_capture":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, ok := positiveSize(s)
			if !ok {
				return d.Errf("max_capture %q: write a size such as 1MiB", s)
			}
			h.MaxCapture = int(n)
		case "webhook":
			wh, err := parseWebhook(d)
			if err != nil {
				return err
			}
			h.Webhooks = append(h.Webhooks, wh)
		case "schema":
			s, err := parseSchema(d)
			if err != nil {
				return err
			}
			h.Schemas = append(h.Schemas, s)
		case "user_info":
			u, err := parseUserInfo(d)
			if err != nil {
				return err
			}
			h.UserInfo = u
		case "record":
			r, err := parseRecord(d)
			if err != nil {
				return err
			}
			h.Record = r
		default:
			return d.Errf("unknown chat_webhooks option %q", d.Val())
		}
	}
	names := map[string]bool{}
	for _, wh := range h.Webhooks {
		if wh.Name != "" && names[wh.Name] {
			return d.Errf("two webhooks are named %q: give each its own name", wh.Name)
		}
		names[wh.Name] = true
	}
	if err := h.check(); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// parseRule reads:
//
//	rule <name> {
//		match method|path|status|content_type <value...>
//		stream <decoder>
//		field <event field> <source...>
//		match when [not] <source> [in <value...>]
//		each <source of a list> [<path into its elements>...]
//		event <type> [if|unless <event field>]
//		event <type> when [not] <field or source> [in <value...>]
//	}
func parseRule(d *caddyfile.Dispenser) (derive.Rule, error) {
	var r derive.Rule
	if !d.AllArgs(&r.Name) {
		return r, d.Errf("rule needs a name: rule <name> { ... }")
	}
	line := d.Line()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "match":
			if !d.NextArg() {
				return r, d.ArgErr()
			}
			kind, values := d.Val(), d.RemainingArgs()
			if len(values) == 0 {
				return r, d.ArgErr()
			}
			switch kind {
			case "method":
				r.Match.Methods = append(r.Match.Methods, values...)
			case "path":
				r.Match.Paths = append(r.Match.Paths, values...)
			case "status":
				r.Match.Status = append(r.Match.Status, values...)
			case "content_type":
				r.Match.ContentTypes = append(r.Match.ContentTypes, values...)
			case "when":
				c, err := parseCond(d, values)
				if err != nil {
					return r, err
				}
				r.Match.When = append(r.Match.When, c)
			default:
				return r, d.Errf("unknown match %q: write method, path, status, content_type or when", kind)
			}
		case "each":
			r.Each = d.RemainingArgs()
			if len(r.Each) == 0 {
				return r, d.Errf("each <source of a list> [<path into its elements>...]")
			}
		case "stream":
			if !d.AllArgs(&r.Stream) {
				return r, d.ArgErr()
			}
		case "field":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return r, d.Errf("field needs an event field and at least one source: field <event field> <source...>")
			}
			r.Fields = append(r.Fields, derive.Field{To: args[0], From: args[1:]})
		case "event":
			args := d.RemainingArgs()
			e := derive.Emit{}
			switch {
			case len(args) == 1:
			case len(args) == 3 && args[1] == "if":
				e.If = args[2]
			case len(args) == 3 && args[1] == "unless":
				e.Unless = args[2]
			case len(args) >= 3 && args[1] == "when":
				c, err := parseCond(d, args[2:])
				if err != nil {
					return r, err
				}
				e.When = append(e.When, c)
			default:
				return r, d.Errf("event <type> [if|unless <event field>] or event <type> when [not] <field or source> [in <value...>]")
			}
			e.Event = args[0]
			r.Emit = append(r.Emit, e)
		default:
			return r, d.Errf("unknown rule option %q", d.Val())
		}
	}
	if err := derive.CheckRule(r); err != nil {
		return r, d.Errf("line %d: %v", line, err)
	}
	return r, nil
}

// parseCond reads the arguments of a condition: [not] <value> [in <v...>].
func parseCond(d *caddyfile.Dispenser, args []string) (derive.Cond, error) {
	var c derive.Cond
	if len(args) > 0 && args[0] == "not" {
		c.Not, args = true, args[1:]
	}
	switch {
	case len(args) == 1:
	case len(args) > 2 && args[1] == "in":
		c.In = args[2:]
	default:
		return c, d.Errf("a condition is [not] <source> [in <value...>], e.g. when request.body.object in whatsapp_business_account")
	}
	c.Value = args[0]
	return c, nil
}

// parseWebhook reads:
//
//	webhook <url> {
//		name <name>
//		schema <schema>
//		events <event...>
//		sign <scheme> <secret...> [{ algorithm|encoding|header|prefix|timestamp_header|id_header <value>; signed_timestamp }]
//		header <name> <value>
//		body <key> <value>          (value: JSON, else text)
//		retry <duration...> | retry off
//		timeout <duration>
//		ordering conversation|none
//		expect_body <json object>
//		redact <payload path...>
//		deny_private
//		max_concurrency <n>
//		tls { ca <file...>; client_cert <cert> <key> }
//		rate_limit <n>/<duration>
//		disable_after <duration>
//	}
func parseWebhook(d *caddyfile.Dispenser) (Webhook, error) {
	var wh Webhook
	if !d.NextArg() {
		return wh, d.Errf("webhook needs a URL: webhook <url> { ... }")
	}
	wh.URL = d.Val()
	if d.NextArg() {
		return wh, d.ArgErr()
	}
	var body []byte
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "name":
			if !d.AllArgs(&wh.Name) {
				return wh, d.ArgErr()
			}
		case "schema":
			if !d.AllArgs(&wh.Schema) {
				return wh, d.ArgErr()
			}
		case "ordering":
			if !d.AllArgs(&wh.Ordering) {
				return wh, d.ArgErr()
			}
		case "events":
			wh.Events = append(wh.Events, d.RemainingArgs()...)
		case "redact":
			wh.Redact = append(wh.Redact, d.RemainingArgs()...)
		case "deny_private":
			if d.NextArg() {
				return wh, d.ArgErr()
			}
			wh.DenyPrivate = true
		case "max_concurrency":
			n, err := positiveInt(d)
			if err != nil {
				return wh, err
			}
			wh.MaxConcurrency = n
		case "tls":
			if wh.TLS == nil {
				wh.TLS = &WebhookTLS{}
			}
			for tlsNesting := d.Nesting(); d.NextBlock(tlsNesting); {
				switch d.Val() {
				case "ca":
					wh.TLS.CA = append(wh.TLS.CA, d.RemainingArgs()...)
				case "client_cert":
					if !d.AllArgs(&wh.TLS.ClientCert, &wh.TLS.ClientKey) {
						return wh, d.Errf("client_cert <cert.pem> <key.pem>")
					}
				default:
					return wh, d.Errf("unknown tls option %q: write ca <file...> or client_cert <cert.pem> <key.pem>", d.Val())
				}
			}
		case "sign":
			sc, err := parseSign(d)
			if err != nil {
				return wh, err
			}
			wh.Sign = sc
		case "header":
			if err := parseHeader(d, &wh.Headers); err != nil {
				return wh, err
			}
		case "body":
			var k, v string
			if !d.AllArgs(&k, &v) {
				return wh, d.Errf("body <key> <value>")
			}
			if body == nil {
				body = []byte{'{'}
			} else {
				body = append(body, ',')
			}
			kb, _ := json.Marshal(k)
			body = append(append(append(body, kb...), ':'), bodyValue(v)...)
		case "retry":
			args := d.RemainingArgs()
			if len(args) == 1 && args[0] == "off" {
				wh.NoRetry = true
				continue
			}
			if len(args) == 0 {
				return wh, d.Errf("retry <duration...> or retry off")
			}
			for _, a := range args {
				dur, err := caddy.ParseDuration(a)
				if err != nil || dur < 0 {
					return wh, d.Errf("retry %q: write durations such as 5s 5m 2h, or off", a)
				}
				wh.Retry = append(wh.Retry, caddy.Duration(dur))
			}
		case "timeout", "disable_after":
			target, example := &wh.Timeout, "15s"
			if opt == "disable_after" {
				target, example = &wh.DisableAfter, "120h"
			}
			var s string
			if !d.AllArgs(&s) {
				return wh, d.ArgErr()
			}
			dur, err := positiveDuration(d, opt, s, example)
			if err != nil {
				return wh, err
			}
			*target = dur
		case "rate_limit":
			if !d.AllArgs(&wh.RateLimit) {
				return wh, d.Errf("rate_limit <n>/<duration>, such as rate_limit 10/1s")
			}
		case "expect_body":
			var s string
			if !d.AllArgs(&s) {
				return wh, d.ArgErr()
			}
			if !json.Valid([]byte(s)) || !strings.HasPrefix(strings.TrimSpace(s), "{") {
				return wh, d.Errf("expect_body must be a JSON object, e.g. {\"status\":\"accepted\"} (quote it with backticks)")
			}
			wh.ExpectBody = json.RawMessage(s)
		default:
			return wh, d.Errf("unknown webhook option %q", opt)
		}
	}
	if body != nil {
		wh.Body = append(body, '}')
	}
	if err := wh.check(); err != nil {
		return wh, d.Errf("%v", err)
	}
	// Certificate files are read here too, where the line is known; files
	// named by placeholders wait for provision.
	if t := wh.TLS; t != nil && !slices.ContainsFunc(append([]string{t.ClientCert, t.ClientKey}, t.CA...), hasPlaceholder) {
		if _, err := t.config(); err != nil {
			return wh, d.Errf("webhook: %v", err)
		}
	}
	if wh.Schema != "" {
		if _, err := shape.New(shape.Config{Schema: wh.Schema, Events: wh.Events}); err != nil && slices.Contains(shape.SchemaNames(), wh.Schema) {
			return wh, d.Errf("webhook: %v", err)
		}
	}
	return wh, nil
}

// bodyValue is the JSON of a `body <key> <value>` value: a value that
// parses as JSON is that JSON (1, true, null, {"a":[1]}, "\"13010\""), as
// the extra parameters of a campaign chatbot's webhook are written; any
// other text is a string, which may hold placeholders ("{account.id}").
func bodyValue(v string) []byte {
	if json.Valid([]byte(v)) {
		return []byte(v)
	}
	b, _ := json.Marshal(v)
	return b
}

// parseSchema reads a custom schema:
//
//	schema <name> {
//		event <canonical type> <platform event name>
//		field <payload path> <value or {placeholder}>
//	}
func parseSchema(d *caddyfile.Dispenser) (shape.Schema, error) {
	s := shape.Schema{Events: map[string][]shape.SchemaEvent{}}
	if !d.AllArgs(&s.Name) {
		return s, d.Errf("schema needs a name: schema <name> { ... }")
	}
	if slices.Contains(shape.SchemaNames(), s.Name) {
		return s, d.Errf("schema %q is built in: choose another name for your own", s.Name)
	}
	var fields [][2]string
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "event":
			var canonical, name string
			if !d.AllArgs(&canonical, &name) {
				return s, d.Errf("event <canonical type> <platform event name>")
			}
			s.Events[canonical] = append(s.Events[canonical], shape.SchemaEvent{Name: name})
		case "field":
			var path, value string
			if !d.AllArgs(&path, &value) {
				return s, d.Errf("field <payload path> <value>; quote values with spaces")
			}
			fields = append(fields, [2]string{path, value})
		default:
			return s, d.Errf("unknown schema option %q: write event or field", d.Val())
		}
	}
	payload, err := shape.TemplateFromFields(fields)
	if err != nil {
		return s, d.Errf("schema %s: %v", s.Name, err)
	}
	s.Payload = payload
	if err := shape.CheckSchema(s); err != nil {
		return s, d.Errf("%v", err)
	}
	return s, nil
}

// parseUserInfo reads:
//
//	user_info <url> {
//		header <name> <value>
//		timeout <duration>
//		cache <duration>
//		root <gjson path>
//	}
func parseUserInfo(d *caddyfile.Dispenser) (*UserInfo, error) {
	u := &UserInfo{}
	if !d.AllArgs(&u.URL) {
		return nil, d.Errf("user_info <url> { ... }")
	}
	durations := map[string]*caddy.Duration{"timeout": &u.Timeout, "cache": &u.Cache}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); {
		case opt == "header":
			if err := parseHeader(d, &u.Headers); err != nil {
				return nil, err
			}
		case opt == "root":
			if !d.AllArgs(&u.Root) {
				return nil, d.ArgErr()
			}
		case durations[opt] != nil:
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			dur, err := positiveDuration(d, opt, s, "10m")
			if err != nil {
				return nil, err
			}
			*durations[opt] = dur
		default:
			return nil, d.Errf("unknown user_info option %q", opt)
		}
	}
	return u, nil
}

// parseRecord reads:
//
//	record <file> {
//		max_size <size>
//		keep <rotated files>
//		redact <gjson path...>
//	}
func parseRecord(d *caddyfile.Dispenser) (*Record, error) {
	r := &Record{}
	if !d.AllArgs(&r.Path) {
		return nil, d.Errf("record <file> { ... }")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "max_size":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			n, ok := positiveSize(s)
			if !ok {
				return nil, d.Errf("record max_size %q: write a size such as 64MiB", s)
			}
			r.MaxSize = n
		case "keep":
			n, err := positiveInt(d)
			if err != nil {
				return nil, err
			}
			r.Keep = n
		case "redact":
			paths := d.RemainingArgs()
			if len(paths) == 0 {
				return nil, d.ArgErr()
			}
			r.Redact = append(r.Redact, paths...)
		default:
			return nil, d.Errf("unknown record option %q", d.Val())
		}
	}
	return r, nil
}

// parseSign reads: sign <scheme> <secret...> [{ option value ... }]
func parseSign(d *caddyfile.Dispenser) (*signer.Config, error) {
	args := d.RemainingArgs()
	if len(args) < 2 {
		return nil, d.Errf("sign <scheme> <secret...>: schemes are standard, chatzuri, chatwoot and hmac")
	}
	sc := &signer.Config{Name: args[0], Secrets: args[1:]}
	strs := map[string]*string{"algorithm": &sc.Algorithm, "encoding": &sc.Encoding, "header": &sc.Header,
		"prefix": &sc.Prefix, "timestamp_header": &sc.TimestampHeader, "id_header": &sc.IDHeader}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt == "signed_timestamp" {
			sc.SignedTimestamp = true
			continue
		}
		var v string
		if !d.AllArgs(&v) {
			return nil, d.ArgErr()
		}
		p := strs[opt]
		if p == nil {
			return nil, d.Errf("unknown sign option %q; known: algorithm, encoding, header, prefix, timestamp_header, signed_timestamp, id_header", opt)
		}
		*p = v
	}
	// The secrets may still be {env.*} placeholders: they are checked at
	// provision. The scheme's shape is checked here, for the line number.
	switch {
	case !slices.Contains([]string{"standard", "chatzuri", "chatwoot", "hmac"}, sc.Name):
		return nil, d.Errf("sign: unknown scheme %q: write standard, chatzuri, chatwoot or hmac", sc.Name)
	case sc.Name == "hmac" && sc.Header == "":
		return nil, d.Errf("sign hmac needs a header option, e.g. sign hmac {env.SECRET} { header X-Signature }")
	case sc.Name != "hmac" && sc.HMACOptions != (signer.HMACOptions{}):
		return nil, d.Errf("sign %s takes no options; they are for sign hmac", sc.Name)
	}
	if !slices.ContainsFunc(sc.Secrets, hasPlaceholder) {
		if _, err := sc.Scheme(); err != nil {
			return nil, d.Errf("sign: %v", err)
		}
	}
	return sc, nil
}

// hasPlaceholder reports whether s holds a placeholder, resolved only at
// provision.
func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

// parseGlobal reads the global option:
//
//	chat_webhooks {
//		outbox bbolt [path] | outbox memory | outbox nats <url...> { ... }
//		queue_size <n>
//		workers <n>
//		max_queued <n>
//		max_queued_bytes <size>
//		max_dead_letters <n>
//		conversation_state <entries> <ttl> | conversation_state off
//		journal off
//		breaker { ... }
//		keep_delivered <duration> [<messages> [<size>]] | keep_delivered off
//	}
func parseGlobal(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	ints := map[string]*int{"queue_size": &app.QueueSize, "workers": &app.Workers,
		"max_queued": &app.MaxQueued, "max_dead_letters": &app.MaxDeadLetters}
	d.Next()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "outbox":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1 && args[0] == "memory":
				app.Outbox = &Outbox{Kind: "memory"}
			case len(args) >= 1 && len(args) <= 2 && args[0] == "bbolt":
				app.Outbox = &Outbox{Kind: "bbolt"}
				if len(args) == 2 {
					app.Outbox.Path = args[1]
				}
			case len(args) >= 1 && args[0] == "nats":
				ob, err := parseNATS(d, args[1:])
				if err != nil {
					return nil, err
				}
				app.Outbox = ob
			default:
				return nil, d.Errf("outbox bbolt [path], outbox memory or outbox nats <url...> { ... }")
			}
		case "conversation_state":
			args := d.RemainingArgs()
			cs := &ConversationState{}
			switch {
			case len(args) == 1 && args[0] == "off":
				cs.Off = true
			case len(args) == 2:
				n, err := strconv.Atoi(args[0])
				dur, derr := caddy.ParseDuration(args[1])
				if err != nil || n <= 0 || derr != nil || dur <= 0 {
					return nil, d.Errf("conversation_state <entries> <ttl>, e.g. conversation_state 10000 24h, or conversation_state off")
				}
				cs.Entries, cs.TTL = n, caddy.Duration(dur)
			default:
				return nil, d.Errf("conversation_state <entries> <ttl>, or conversation_state off")
			}
			app.ConversationState = cs
		case "journal":
			if args := d.RemainingArgs(); len(args) != 1 || args[0] != "off" {
				return nil, d.Errf("journal off is the only journal option (the capture journal is on by default)")
			}
			app.Journal = &JournalConfig{Off: true}
		case "keep_delivered":
			k, err := parseKeepDelivered(d)
			if err != nil {
				return nil, err
			}
			app.KeepDelivered = k
		case "breaker":
			b, err := parseBreaker(d)
			if err != nil {
				return nil, err
			}
			app.Breaker = b
		case "max_queued_bytes":
			var s string
			if !d.AllArgs(&s) {
				return nil, d.ArgErr()
			}
			n, ok := positiveSize(s)
			if !ok {
				return nil, d.Errf("max_queued_bytes %q: write a size such as 256MiB", s)
			}
			app.MaxQueuedBytes = n
		default:
			p := ints[d.Val()]
			if p == nil {
				return nil, d.Errf("unknown chat_webhooks global option %q", d.Val())
			}
			n, err := positiveInt(d)
			if err != nil {
				return nil, err
			}
			*p = n
		}
	}
	if err := app.check(); err != nil {
		return nil, d.Errf("%v", err)
	}
	return httpcaddyfile.App{Name: "chat_webhooks", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseKeepDelivered reads: keep_delivered <duration> [<messages> [<size>]]
// or keep_delivered off.
func parseKeepDelivered(d *caddyfile.Dispenser) (*KeepDelivered, error) {
	args := d.RemainingArgs()
	usage := d.Errf("keep_delivered <duration> [<messages> [<size>]], such as keep_delivered 24h 10000 64MiB, or keep_delivered off")
	if len(args) == 1 && args[0] == "off" {
		return &KeepDelivered{Off: true}, nil
	}
	if len(args) < 1 || len(args) > 3 {
		return nil, usage
	}
	k := &KeepDelivered{}
	dur, err := caddy.ParseDuration(args[0])
	if err != nil || dur <= 0 {
		return nil, usage
	}
	k.For = caddy.Duration(dur)
	if len(args) > 1 {
		if k.MaxMessages, err = strconv.Atoi(args[1]); err != nil || k.MaxMessages <= 0 {
			return nil, usage
		}
	}
	if len(args) > 2 {
		n, ok := positiveSize(args[2])
		if !ok {
			return nil, usage
		}
		k.MaxBytes = n
	}
	return k, nil
}

// parseBreaker reads the breaker block of the global option:
//
//	breaker {
//		window <duration>
//		min_requests <n>
//		failure_ratio <share>
//		cooldown <duration>
//		max_cooldown <duration>
//	}
func parseBreaker(d *caddyfile.Dispenser) (*Breaker, error) {
	if d.NextArg() {
		return nil, d.Errf("breaker takes a block: breaker { cooldown 5s }")
	}
	b := &Breaker{}
	durations := map[string]*caddy.Duration{"window": &b.Window, "cooldown": &b.Cooldown, "max_cooldown": &b.MaxCooldown}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.Errf("breaker %s takes one value", opt)
		}
		switch {
		case durations[opt] != nil:
			dur, err := positiveDuration(d, "breaker "+opt, v, "30s")
			if err != nil {
				return nil, err
			}
			*durations[opt] = dur
		case opt == "min_requests":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return nil, d.Errf("breaker min_requests %q: write a positive number", v)
			}
			b.MinRequests = n
		case opt == "failure_ratio":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 || f > 1 {
				return nil, d.Errf("breaker failure_ratio %q: write a share between 0 and 1, such as 0.7", v)
			}
			b.FailureRatio = f
		default:
			return nil, d.Errf("unknown breaker option %q; known: window, min_requests, failure_ratio, cooldown, max_cooldown", opt)
		}
	}
	return b, nil
}

// parseHeader reads "header <name> <value>" into h.
func parseHeader(d *caddyfile.Dispenser, h *http.Header) error {
	var k, v string
	if !d.AllArgs(&k, &v) {
		return d.Errf("header <name> <value>")
	}
	if !httpguts.ValidHeaderFieldName(k) {
		return d.Errf("header name %q is not a valid HTTP header name", k)
	}
	if *h == nil {
		*h = http.Header{}
	}
	h.Add(k, v)
	return nil
}

// positiveInt reads the one argument of the current option as a number > 0.
func positiveInt(d *caddyfile.Dispenser) (int, error) {
	opt := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return 0, d.ArgErr()
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s %q: write a positive number", opt, s)
	}
	return n, nil
}

// positiveSize parses a size such as 64MiB that is above 0. Its upper
// bound is the option's own, which check applies to JSON and the
// Caddyfile alike.
func positiveSize(s string) (int64, bool) {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}

// positiveDuration parses v, the value of option opt, as a duration > 0.
func positiveDuration(d *caddyfile.Dispenser, opt, v, example string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s %q: write a duration such as %s", opt, v, example)
	}
	return caddy.Duration(dur), nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
