package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/spf13/cobra"

	"github.com/chatwebhooks/chatwebhooks/internal/har"
)

// siteHandler is a provisioned chat_webhooks handler and where it serves.
type siteHandler struct {
	hosts  []string // the host matchers around it
	listen []string // its server's addresses
	h      *Handler
}

func (s siteHandler) String() string {
	where := strings.Join(s.hosts, ", ")
	if where == "" {
		where = strings.Join(s.listen, ", ")
	}
	var names []string
	for _, wh := range s.h.route.webhooks {
		names = append(names, wh.endpoint.Name)
	}
	return fmt.Sprintf("%s (webhooks: %s)", where, strings.Join(names, ", "))
}

// provisionHandlers provisions a configuration as `caddy validate` does,
// starting nothing, and returns its chat_webhooks handlers and app. The
// configuration's own logs and storage are left out, so that trying it
// opens no file of theirs. cleanup undoes the provisioning.
func provisionHandlers(cfgJSON []byte) (handlers []siteHandler, app *App, cleanup func(), err error) {
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, nil, nil, err
	}
	apps := cfg.AppsRaw
	cfg.AppsRaw, cfg.Logging, cfg.StorageRaw, cfg.Admin = nil, nil, nil, nil
	base, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	// The apps are loaded in a context of their own, whose cancellation
	// cleans up every module they provisioned.
	cfg.AppsRaw = apps
	ctx, cancel := caddy.NewContext(base)
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	if _, ok := apps["http"]; !ok {
		return nil, nil, nil, fmt.Errorf("the configuration has no http app, so no chat_webhooks handler")
	}
	httpApp, err := ctx.App("http")
	if err != nil {
		return nil, nil, nil, err
	}
	servers := httpApp.(*caddyhttp.App).Servers
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		srv := servers[name]
		handlers = collectHandlers(handlers, srv.Routes, nil, srv.Listen)
	}
	if len(handlers) == 0 {
		return nil, nil, nil, fmt.Errorf("the configuration has no chat_webhooks handler")
	}
	appIface, err := ctx.App("chat_webhooks")
	if err != nil {
		return nil, nil, nil, err
	}
	return handlers, appIface.(*App), cancel, nil
}

// collectHandlers walks routes and their subroutes, with the hosts their
// matchers name.
func collectHandlers(out []siteHandler, routes caddyhttp.RouteList, hosts, listen []string) []siteHandler {
	for _, r := range routes {
		routeHosts := hosts
		for _, set := range r.MatcherSets {
			for _, m := range set {
				if hs, ok := m.(*caddyhttp.MatchHost); ok && len(*hs) > 0 {
					routeHosts = *hs
				}
			}
		}
		for _, mh := range r.Handlers {
			switch h := mh.(type) {
			case *Handler:
				out = append(out, siteHandler{hosts: routeHosts, listen: listen, h: h})
			case *caddyhttp.Subroute:
				out = collectHandlers(out, h.Routes, routeHosts, listen)
			}
		}
	}
	return out
}

// pickHandler chooses the handler named by site: a host of its site, an
// address it listens on, or one of its webhooks' names. Without site there
// must be only one.
func pickHandler(handlers []siteHandler, site string) (siteHandler, error) {
	var found []siteHandler
	for _, s := range handlers {
		if site == "" || s.names(site) {
			found = append(found, s)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	var list []string
	for _, s := range handlers {
		list = append(list, "  "+s.String())
	}
	if len(found) == 0 {
		return siteHandler{}, fmt.Errorf("no chat_webhooks handler for --site %q; the handlers are:\n%s", site, strings.Join(list, "\n"))
	}
	return siteHandler{}, fmt.Errorf("%d chat_webhooks handlers; choose one with --site <host, address or webhook name>:\n%s", len(found), strings.Join(list, "\n"))
}

func (s siteHandler) names(site string) bool {
	for _, h := range s.hosts {
		if strings.EqualFold(h, site) {
			return true
		}
	}
	for _, l := range s.listen {
		if l == site || strings.TrimPrefix(l, ":") == strings.TrimPrefix(site, ":") {
			return true
		}
	}
	for _, wh := range s.h.route.webhooks {
		if wh.endpoint.Name == site {
			return true
		}
	}
	return false
}

// tryEntry is one HAR entry's outcome as `try --json` prints it.
type tryEntry struct {
	Entry    int        `json:"entry"`
	Method   string     `json:"method,omitempty"`
	URL      string     `json:"url,omitempty"`
	Status   int        `json:"status"`
	Error    string     `json:"error,omitempty"`
	Skipped  string     `json:"skipped,omitempty"`
	Problems []string   `json:"problems,omitempty"`
	Events   []tryEvent `json:"events,omitempty"`
}

type tryEvent struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Time          time.Time       `json:"time"`
	Data          json.RawMessage `json:"data"`
	UserInfoError string          `json:"user_info_error,omitempty"`
	Webhooks      []tryDelivery   `json:"webhooks,omitempty"`
}

type tryDelivery struct {
	Webhook string          `json:"webhook"`
	Event   string          `json:"event"`
	ID      string          `json:"id"`
	Headers http.Header     `json:"headers,omitempty"`
	Payload json.RawMessage `json:"payload"`
	Error   string          `json:"error,omitempty"`
}

func runTry(cmd *cobra.Command) error {
	flags := cmd.Flags()
	configFile, _ := flags.GetString("config")
	adapter, _ := flags.GetString("adapter")
	site, _ := flags.GetString("site")
	harFile, _ := flags.GetString("har")
	asJSON, _ := flags.GetBool("json")
	userInfo, _ := flags.GetBool("user-info")
	if harFile == "" {
		return fmt.Errorf("try needs --har <file> (or --har - for standard input)")
	}
	data, err := readHAR(cmd, harFile)
	if err != nil {
		return err
	}
	entries, err := har.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %v", harFile, err)
	}
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return err
	}
	handlers, app, cleanup, err := provisionHandlers(cfgJSON)
	if err != nil {
		return fmt.Errorf("loading the configuration: %v", err)
	}
	defer cleanup()
	chosen, err := pickHandler(handlers, site)
	if err != nil {
		return err
	}
	rp, err := newReplayer(chosen.h.route, app.ConversationState, userInfo, "")
	if err != nil {
		return err
	}
	results, failed := tryEntries(cmd.Context(), rp, entries)
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		printTry(out, results)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d entries could not be read", failed, len(entries))
	}
	return nil
}

func readHAR(cmd *cobra.Command, file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(file)
}

// tryEntries replays the entries in order through one handler, and shows
// each webhook message as it would be sent, signed as of the event's time.
func tryEntries(ctx context.Context, rp *replayer, entries []har.Entry) ([]tryEntry, int) {
	results := make([]tryEntry, len(entries))
	failed := 0
	for i := range entries {
		res := &results[i]
		res.Entry, res.Method, res.URL, res.Status = i+1, entries[i].Request.Method, entries[i].Request.URL, entries[i].Response.Status
		ex, err := entries[i].Exchange()
		if err != nil {
			res.Error = err.Error()
			failed++
			continue
		}
		out := rp.replay(ctx, ex)
		res.Skipped, res.Problems = out.Skipped, out.Problems
		for _, ev := range out.Events {
			te := tryEvent{ID: ev.ID, Type: ev.Type, Time: ev.Time, Data: ev.Data, UserInfoError: ev.UserInfoError}
			for _, m := range ev.Messages {
				td := tryDelivery{Webhook: m.webhook.endpoint.Name, Event: m.Event, ID: m.ID}
				body, h, err := m.webhook.endpoint.Preview(m.ID, ev.Time, m.Body)
				if err != nil {
					td.Error, body = "signing: "+err.Error(), m.Body
				}
				td.Payload, td.Headers = jsonOrString(body), maskHeader(h, m.webhook)
				te.Webhooks = append(te.Webhooks, td)
			}
			res.Events = append(res.Events, te)
		}
	}
	return results, failed
}

// maskHeader hides the static headers a webhook is configured with when
// their names say they carry credentials; signatures are shown.
func maskHeader(h http.Header, wh *webhook) http.Header {
	for k := range wh.endpoint.Header {
		if har.Sensitive(k) {
			h[k] = []string{har.Masked}
		}
	}
	return h
}

// jsonOrString shows b as it is when it is JSON, else as a JSON string.
func jsonOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// printTry writes the results for people: one block per entry, payloads
// indented.
func printTry(w io.Writer, results []tryEntry) {
	indent := func(raw []byte, prefix string) string {
		var buf bytes.Buffer
		if json.Indent(&buf, raw, prefix, "  ") != nil {
			return prefix + string(raw)
		}
		return prefix + buf.String()
	}
	for _, r := range results {
		fmt.Fprintf(w, "entry %d: %s %s → %d\n", r.Entry, r.Method, r.URL, r.Status)
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "  unreadable: %s\n", r.Error)
		case r.Skipped != "":
			fmt.Fprintf(w, "  skipped: %s\n", r.Skipped)
		}
		if len(r.Problems) > 0 {
			fmt.Fprintf(w, "  traffic problems: %s\n", strings.Join(r.Problems, ", "))
		}
		for _, ev := range r.Events {
			fmt.Fprintf(w, "  event %s %s at %s\n", ev.Type, ev.ID, ev.Time.Format(time.RFC3339Nano))
			fmt.Fprintln(w, indent(ev.Data, "    "))
			if ev.UserInfoError != "" {
				fmt.Fprintf(w, "    user_info failed: %s\n", ev.UserInfoError)
			}
			if len(ev.Webhooks) == 0 {
				fmt.Fprintln(w, "    no webhook receives it")
			}
			for _, d := range ev.Webhooks {
				fmt.Fprintf(w, "    → webhook %q: %s, id %s\n", d.Webhook, d.Event, d.ID)
				if d.Error != "" {
					fmt.Fprintf(w, "      %s\n", d.Error)
				}
				for _, k := range slices.Sorted(maps.Keys(d.Headers)) {
					for _, v := range d.Headers[k] {
						fmt.Fprintf(w, "      %s: %s\n", k, v)
					}
				}
				fmt.Fprintln(w, indent(d.Payload, "      "))
			}
		}
		fmt.Fprintln(w)
	}
}
