package caddymodule

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// dashboardProxy serves the dashboard to a browser on a loopback address
// and forwards the page's API calls to Caddy's admin endpoint. Caddy
// refuses browser requests to its admin endpoint that carry no allowed
// Origin or Referer, and a browser opening a URL sends neither; the
// forwarded calls go as the caddy command's do, with the admin's own
// origin. The proxy guards itself the same way: only requests for its own
// host, from its own pages or typed in, are served.
type dashboardProxy struct {
	admin string // the admin API's address
	self  string // host:port the proxy is reached at
}

func (p *dashboardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	switch {
	case r.Host != p.self: // DNS rebinding
		http.Error(w, "this dashboard answers only at "+p.self, http.StatusForbidden)
		return
	case origin != "" && origin != "http://"+p.self, site != "" && site != "same-origin" && site != "none":
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	switch path := r.URL.Path; {
	case path == "/":
		http.Redirect(w, r, uiPrefix, http.StatusFound)
	case strings.HasPrefix(path, uiPrefix) && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		serveUI(w, r)
	case adminMethods[path] != nil:
		p.forward(w, r)
	default:
		http.NotFound(w, r)
	}
}

// forward makes the API call on the admin endpoint and copies its answer.
func (p *dashboardProxy) forward(w http.ResponseWriter, r *http.Request) {
	resp, err := caddycmd.AdminAPIRequest(p.admin, r.Method, r.URL.RequestURI(), nil, nil)
	if err != nil {
		status, body, answered := adminAnswer(err)
		if !answered {
			status, body = http.StatusBadGateway, fmt.Sprintf(`{"error":%q}`, "admin API at "+p.admin+": "+err.Error())
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// loopbackListen listens on addr, which must be a loopback address: the
// dashboard acts on the outbox, and is local-only like the admin API.
func loopbackListen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: write host:port, such as 127.0.0.1:2020", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q: the dashboard listens on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	return net.Listen("tcp", addr)
}

// serveDashboard runs the dashboard proxy for the admin API at admin until
// the listener fails; ready receives the dashboard's URL.
func serveDashboard(l net.Listener, admin string, ready func(url string)) error {
	self := l.Addr().String()
	ready("http://" + self + uiPrefix)
	return http.Serve(l, &dashboardProxy{admin: admin, self: self})
}
