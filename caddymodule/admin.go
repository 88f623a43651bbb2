package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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
	"/chat_webhooks/dead_letters": {http.MethodGet},
	"/chat_webhooks/dead_letter":  {http.MethodGet, http.MethodDelete},
	"/chat_webhooks/replay":       {http.MethodPost},
	"/chat_webhooks/queue":        {http.MethodDelete},
	"/chat_webhooks/rederive":     {http.MethodPost},
}

func (a AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	methods, known := adminMethods[r.URL.Path]
	if !known {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such chat_webhooks route: %s; the routes are stats, dead_letters, dead_letter, replay, queue and rederive", r.URL.Path)}
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
	case "GET /chat_webhooks/dead_letters":
		limit := 0
		if s := q.Get("limit"); s != "" {
			if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
				return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit=%q: give a number of dead letters", s)}
			}
		}
		recs, err := engine.DeadLetters(webhook, limit)
		views := make([]deadLetterView, len(recs))
		for i := range recs {
			views[i] = viewOf(recs[i])
		}
		return reply(w, views, err)
	case "GET /chat_webhooks/dead_letter":
		if err := needIDs(webhook, id); err != nil {
			return err
		}
		rec, err := engine.DeadLetter(webhook, id)
		return reply(w, viewOf(rec), err)
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

// deadLetterView is a dead letter as the admin API shows it: the payload as
// JSON rather than base64, so that an operator can read what failed.
type deadLetterView struct {
	ID         string          `json:"id"`
	Webhook    string          `json:"webhook"`
	Lane       string          `json:"lane,omitempty"`
	Body       json.RawMessage `json:"body"`
	Created    time.Time       `json:"created"`
	Attempts   int             `json:"attempts"`
	LastStatus int             `json:"last_status,omitempty"`
	LastError  string          `json:"last_error,omitempty"`
	DeadAt     time.Time       `json:"dead_at"`
	Reason     string          `json:"reason"`
}

func viewOf(rec delivery.Record) deadLetterView {
	body := json.RawMessage(rec.Body)
	if !json.Valid(body) {
		// Not JSON (a custom scheme's Prepare may change it): a string.
		body, _ = json.Marshal(string(rec.Body))
	}
	return deadLetterView{
		ID: rec.ID, Webhook: rec.Endpoint, Lane: rec.Lane, Body: body, Created: rec.Created,
		Attempts: rec.Attempts, LastStatus: rec.LastStatus, LastError: rec.LastError,
		DeadAt: rec.DeadAt, Reason: rec.Reason,
	}
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
