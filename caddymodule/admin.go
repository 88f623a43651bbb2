package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves the delivery engine's state on Caddy's admin endpoint:
//
//	GET    /chat_webhooks/stats
//	GET    /chat_webhooks/messages?state=queued|delivered|dead[&webhook=<name>][&conversation=<id>][&limit=<n>][&before=<seq>]
//	GET    /chat_webhooks/message?id=<id>[&webhook=<name>]   (every record with that id, with payload, headers sent and attempts)
//	POST   /chat_webhooks/enable?webhook=<name>   (after disable_after disabled it)
//	GET    /chat_webhooks/ui/   (the dashboard)
//	GET    /chat_webhooks/dead_letters?webhook=<name>&limit=<n>
//	GET    /chat_webhooks/dead_letter?webhook=<name>&id=<id>
//	POST   /chat_webhooks/replay?webhook=<name>[&id=<id>]   (no id: all of the webhook; no webhook: all)
//	DELETE /chat_webhooks/dead_letter?webhook=<name>&id=<id>
//	DELETE /chat_webhooks/queue?webhook=<name>   (its queued messages and dead letters)
//	POST   /chat_webhooks/rederive[?webhook=<name>]   (body: a HAR file; derive and enqueue its events)
//
// Answers are JSON. Errors are Caddy's admin errors: 400 for missing or bad
// parameters, 404 for an unknown dead letter, webhook or route, 405 for a known route
// with the wrong method, 503 when the running configuration has no
// chat_webhooks.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.chat_webhooks",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/chat_webhooks/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminMethods is the method of each route.
var adminMethods = map[string][]string{
	"/chat_webhooks/stats":        {http.MethodGet},
	"/chat_webhooks/messages":     {http.MethodGet},
	"/chat_webhooks/message":      {http.MethodGet},
	"/chat_webhooks/enable":       {http.MethodPost},
	"/chat_webhooks/dead_letters": {http.MethodGet},
	"/chat_webhooks/dead_letter":  {http.MethodGet, http.MethodDelete},
	"/chat_webhooks/replay":       {http.MethodPost},
	"/chat_webhooks/queue":        {http.MethodDelete},
	"/chat_webhooks/rederive":     {http.MethodPost},
}

func (a AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if strings.HasPrefix(r.URL.Path, uiPrefix) || r.URL.Path == strings.TrimSuffix(uiPrefix, "/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("%s %s: the dashboard is read with GET", r.Method, r.URL.Path)}
		}
		if !strings.HasPrefix(r.URL.Path, uiPrefix) {
			http.Redirect(w, r, uiPrefix, http.StatusFound)
			return nil
		}
		return serveUI(w, r)
	}
	methods, known := adminMethods[r.URL.Path]
	if !known {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such chat_webhooks route: %s; the routes are stats, messages, message, enable, dead_letters, dead_letter, replay, queue, rederive and ui/", r.URL.Path)}
	}
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", fmt.Sprint(methods))
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("%s %s: use %v", r.Method, r.URL.Path, methods)}
	}
	app, engine, err := currentApp()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	webhook, id := q.Get("webhook"), q.Get("id")
	switch r.Method + " " + r.URL.Path {
	case "POST /chat_webhooks/rederive":
		return serveRederive(w, r, app, engine, webhook)
	case "GET /chat_webhooks/stats":
		stats, err := engine.Stats()
		return reply(w, app.rt.stats(stats), err)
	case "GET /chat_webhooks/messages":
		return listMessages(w, engine, q)
	case "GET /chat_webhooks/message":
		return showMessage(w, engine, webhook, id)
	case "POST /chat_webhooks/enable":
		if webhook == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("give webhook=<name>: the webhook to enable again")}
		}
		was, err := engine.Enable(webhook)
		return reply(w, map[string]bool{"was_disabled": was}, err)
	case "GET /chat_webhooks/dead_letters":
		limit, err := number(q, "limit")
		if err != nil {
			return err
		}
		recs, err := engine.DeadLetters(webhook, int(limit))
		return reply(w, viewsOf(recs, true), err)
	case "GET /chat_webhooks/dead_letter":
		if err := needIDs(webhook, id); err != nil {
			return err
		}
		rec, err := engine.DeadLetter(webhook, id)
		return reply(w, viewOf(rec, true), err)
	case "POST /chat_webhooks/replay":
		if id != "" {
			if err := needIDs(webhook, id); err != nil {
				return err
			}
			return reply(w, map[string]int{"replayed": 1}, engine.Replay(webhook, id))
		}
		n, err := engine.ReplayAll(webhook)
		return reply(w, map[string]int{"replayed": n}, err)
	case "DELETE /chat_webhooks/queue":
		if webhook == "" {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("give webhook=<name>: the webhook whose queue and dead letters to delete")}
		}
		purged, err := app.rt.purge(engine, webhook)
		return reply(w, purged, err)
	default: // DELETE /chat_webhooks/dead_letter
		if err := needIDs(webhook, id); err != nil {
			return err
		}
		return reply(w, map[string]int{"deleted": 1}, engine.DeleteDeadLetter(webhook, id))
	}
}

// messageView is a stored message as the admin API shows it: the payload
// as JSON rather than base64, so that an operator can read what was sent.
type messageView struct {
	ID           string             `json:"id"`
	Webhook      string             `json:"webhook"`
	State        string             `json:"state"`
	Seq          uint64             `json:"seq"`
	Lane         string             `json:"lane,omitempty"`
	Conversation string             `json:"conversation,omitempty"`
	Body         json.RawMessage    `json:"body,omitempty"`
	Created      time.Time          `json:"created"`
	Attempts     int                `json:"attempts"`
	LastStatus   int                `json:"last_status,omitempty"`
	LastError    string             `json:"last_error,omitempty"`
	Next         time.Time          `json:"next,omitzero"`
	DeliveredAt  time.Time          `json:"delivered_at,omitzero"`
	DeadAt       time.Time          `json:"dead_at,omitzero"`
	Reason       string             `json:"reason,omitempty"`
	Traceparent  string             `json:"traceparent,omitempty"`
	Headers      http.Header        `json:"headers,omitempty"`
	History      []delivery.Attempt `json:"history,omitempty"`
}

// viewOf shows rec, with its body unless it is for a list.
func viewOf(rec delivery.Record, body bool) messageView {
	v := messageView{
		ID: rec.ID, Webhook: rec.Endpoint, State: rec.State(), Seq: rec.Seq, Lane: rec.Lane, Conversation: rec.Conversation,
		Created: rec.Created, Attempts: rec.Attempts, LastStatus: rec.LastStatus, LastError: rec.LastError,
		DeliveredAt: rec.DeliveredAt, DeadAt: rec.DeadAt, Reason: rec.Reason,
		Traceparent: rec.Traceparent, Headers: rec.SentHeader, History: rec.History,
	}
	if v.State == delivery.StateQueued {
		v.Next = rec.Next
	}
	if body {
		// A custom scheme's Prepare may make the body other than JSON.
		v.Body = jsonOrString(rec.Body)
	}
	return v
}

func viewsOf(recs []delivery.Record, body bool) []messageView {
	views := make([]messageView, len(recs))
	for i := range recs {
		views[i] = viewOf(recs[i], body)
	}
	return views
}

// messagePage is one page of GET /chat_webhooks/messages.
type messagePage struct {
	Messages []messageView `json:"messages"`
	// NextBefore, given as before=, fetches the next page; absent on the
	// last one.
	NextBefore uint64 `json:"next_before,omitempty"`
}

// defaultPage is the page size of GET /chat_webhooks/messages.
const defaultPage = 50

func listMessages(w http.ResponseWriter, engine *delivery.Engine, q url.Values) error {
	state := q.Get("state")
	switch state {
	case "":
		state = delivery.StateDelivered
	case delivery.StateQueued, delivery.StateDelivered, delivery.StateDead:
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("state=%q: give queued, delivered or dead", state)}
	}
	limit, err := number(q, "limit")
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = defaultPage
	}
	before, err := number(q, "before")
	if err != nil {
		return err
	}
	// One more than asked tells whether there is a next page.
	recs, err := engine.Messages(delivery.Query{State: state, Endpoint: q.Get("webhook"),
		Conversation: q.Get("conversation"), Before: before, Limit: int(limit) + 1})
	page := messagePage{}
	if len(recs) > int(limit) {
		recs = recs[:limit]
		page.NextBefore = recs[limit-1].Seq
	}
	page.Messages = viewsOf(recs, false)
	return reply(w, page, err)
}

// showMessage answers every record with id (of webhook, if given), newest
// first: the same event goes to several webhooks under one id.
func showMessage(w http.ResponseWriter, engine *delivery.Engine, webhook, id string) error {
	if id == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("give id=<event id>, and webhook=<name> to see one webhook's")}
	}
	recs, err := engine.Message(id)
	if webhook != "" {
		recs = slices.DeleteFunc(recs, func(r delivery.Record) bool { return r.Endpoint != webhook })
		if err == nil && len(recs) == 0 {
			err = fmt.Errorf("%w: %s for %q", delivery.ErrNotFound, id, webhook)
		}
	}
	return reply(w, viewsOf(recs, true), err)
}

// number reads the query parameter name as a number >= 0; absent is 0.
func number(q url.Values, name string) (uint64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return 0, caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("%s=%q: give a whole number", name, s)}
	}
	return n, nil
}

func needIDs(webhook, id string) error {
	if webhook == "" || id == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("give both webhook=<name> and id=<event id> query parameters")}
	}
	return nil
}

func reply(w http.ResponseWriter, v any, err error) error {
	if errors.Is(err, delivery.ErrNotFound) || errors.Is(err, delivery.ErrUnknownEndpoint) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// currentApp finds the chat_webhooks app of the running configuration and
// its delivery engine. During a reload that changes the outbox two
// pipelines exist for a moment; the active configuration's is the one to
// show.
func currentApp() (*App, *delivery.Engine, error) {
	notRunning := caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("chat_webhooks is not running in the current configuration")}
	ctx := caddy.ActiveContext()
	app, err := ctx.AppIfConfigured("chat_webhooks")
	if err != nil {
		return nil, nil, notRunning
	}
	a, ok := app.(*App)
	if !ok || a.rt == nil {
		return nil, nil, notRunning
	}
	a.rt.mu.Lock()
	defer a.rt.mu.Unlock()
	if a.rt.engine == nil {
		return nil, nil, notRunning
	}
	return a, a.rt.engine, nil
}

// Interface guard.
var _ caddy.AdminRouter = (*AdminAPI)(nil)
