package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"

	"github.com/chatwebhooks/chatwebhooks/delivery"
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

func (a AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	engine, err := currentEngine()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	webhook, id := q.Get("webhook"), q.Get("id")
	route := r.Method + " " + r.URL.Path
	switch route {
	case "GET /chat_webhooks/stats":
		stats, err := engine.Stats()
		return reply(w, stats, err)
	case "GET /chat_webhooks/dead_letters":
		limit, _ := strconv.Atoi(q.Get("limit"))
		recs, err := engine.DeadLetters(webhook, limit)
		if recs == nil {
			recs = []delivery.Record{}
		}
		return reply(w, recs, err)
	case "GET /chat_webhooks/dead_letter":
		if err := needIDs(webhook, id); err != nil {
			return err
		}
		rec, err := engine.DeadLetter(webhook, id)
		return reply(w, rec, err)
	case "POST /chat_webhooks/replay":
		if id != "" {
			if err := needIDs(webhook, id); err != nil {
				return err
			}
			return reply(w, map[string]int{"replayed": 1}, engine.Replay(webhook, id))
		}
		n, err := engine.ReplayAll(webhook)
		return reply(w, map[string]int{"replayed": n}, err)
	case "DELETE /chat_webhooks/dead_letter":
		if err := needIDs(webhook, id); err != nil {
			return err
		}
		return reply(w, map[string]int{"deleted": 1}, engine.DeleteDeadLetter(webhook, id))
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such chat_webhooks route: %s; see the README's admin API section", route)}
}

func needIDs(webhook, id string) error {
	if webhook == "" || id == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("give both webhook=<name> and id=<event id> query parameters")}
	}
	return nil
}

func reply(w http.ResponseWriter, v any, err error) error {
	if errors.Is(err, delivery.ErrNotFound) {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// currentEngine finds the running delivery engine. A configuration has one
// outbox; while a reload moves to another, the newest is as good as any.
func currentEngine() (*delivery.Engine, error) {
	var engine *delivery.Engine
	pool.Range(func(_, v any) bool {
		engine = v.(*pipeline).engine
		return true
	})
	if engine == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("chat_webhooks is not running in the current configuration")}
	}
	return engine, nil
}

// Interface guard.
var _ caddy.AdminRouter = (*AdminAPI)(nil)
