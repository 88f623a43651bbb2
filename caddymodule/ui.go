package caddymodule

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// uiFiles is the dashboard: one page, its script and its style sheet,
// embedded so that it needs no build step and loads nothing from
// elsewhere.
//
//go:embed ui
var uiFiles embed.FS

// uiPrefix is where the admin API serves the dashboard.
const uiPrefix = "/chat_webhooks/ui/"

// uiPolicy allows the page only its own script, style and API calls: chat
// text shown on it is attacker-controlled, so even a mistake in escaping
// cannot run a script from elsewhere or inline, or send data away.
const uiPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// serveUI serves the dashboard's files, index.html for the directory.
func serveUI(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, uiPrefix)
	if name == "" {
		name = "index.html"
	}
	sub, _ := fs.Sub(uiFiles, "ui")
	if _, err := fs.Stat(sub, name); err != nil || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return nil
	}
	h := w.Header()
	h.Set("Content-Security-Policy", uiPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, sub, name)
	return nil
}
