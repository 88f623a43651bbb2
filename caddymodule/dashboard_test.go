package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome binary, "" if there is none.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium with a fresh profile that makes no
// connection of its own (the machine's network may be closed), and
// returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := chromium()
	if bin == "" {
		t.Skip("no chromium binary: install Debian's chromium package (.ci/run does) to drive the dashboard in a browser")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	return ctx
}

// startDashboard runs what "caddy chat-webhooks ui" runs, for the test's
// Caddy, and returns the dashboard's URL.
func startDashboard(t *testing.T) string {
	t.Helper()
	l, err := loopbackListen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	urls := make(chan string, 1)
	go serveDashboard(l, testAdmin, func(url string) { urls <- url })
	return <-urls
}

// waitJS waits until the JavaScript expression is true on the page.
func waitJS(ctx context.Context, t *testing.T, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\npage:\n%s", what, err, page)
	}
}

// click clicks the element at a CSS selector.
func click(ctx context.Context, t *testing.T, selector string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		t.Fatalf("click %s: %v", selector, err)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// cellText is a JavaScript expression reading the text of the element at
// selector, or null.
func cellText(selector string) string {
	return fmt.Sprintf("document.querySelector(%s)?.textContent", jsString(selector))
}

// TestDashboardInARealBrowser loads the dashboard from a running Caddy in
// headless Chromium: it shows the webhook and its delivered count, shows
// attacker-controlled chat text as text, lists the dead letter a receiver
// refused with 410, and its Replay button sends it again to the receiver.
func TestDashboardInARealBrowser(t *testing.T) {
	ctx := browser(t)
	backend := newTurnBackend(t)
	sink, healthy := switchableSink(t, http.StatusGone)
	healthy.Store(true)
	// An outbox of its own: counts start from zero.
	startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			schema chatvolt
			sign standard %s
			rate_limit 50/1s
		}`, sink.URL(), sinkSecret), backend.Listener.Addr().String()))
	const hostile = `<img src=x id=pwned onerror="document.title='pwned'">`
	mustTurn(t, withModulePort, hostile, "hello "+hostile)
	sink.waitDistinct(1, 5*time.Second)

	if _, err := chromedp.Run(ctx, chromedp.Navigate(startDashboard(t))); err != nil {
		t.Fatal(err)
	}
	row := `#webhooks tr[data-webhook="crm"]`
	waitJS(ctx, t, "the webhook with 1 delivered", cellText(row+" td.delivered")+` === "1"`)
	waitJS(ctx, t, "the delivery listed with the conversation as text",
		`[...document.querySelectorAll("#messages td")].some(td => td.textContent === `+jsString(hostile)+`)`)
	click(ctx, t, `#messages tbody button.show`)
	waitJS(ctx, t, "the payload shown as text", cellText("#detail-body")+`?.includes("hello <img src=x")`)
	waitJS(ctx, t, "no element made from chat text", `document.querySelector("#pwned") === null && document.title !== "pwned"`)

	healthy.Store(false)
	mustTurn(t, withModulePort, "conv-gone", "this one is refused")
	dead := waitDeadLetters(t, "crm", 1)[0]
	if dead.Reason != "gone" {
		t.Fatalf("dead letter reason %q, want gone", dead.Reason)
	}
	deadRow := fmt.Sprintf(`#dead tr[data-id=%s]`, jsString(dead.ID))
	waitJS(ctx, t, "the dead letter listed", cellText(deadRow+" td:nth-child(3)")+` === "gone"`)
	waitJS(ctx, t, "the dead letter counted", cellText(row+" td.dead")+` === "1"`)

	healthy.Store(true)
	click(ctx, t, deadRow+" button.replay")
	got := sink.waitDistinct(2, 5*time.Second)
	if got[1].id != dead.ID {
		t.Fatalf("after Replay the receiver got %s, want the dead letter %s", got[1].id, dead.ID)
	}
	waitJS(ctx, t, "the replayed message delivered", cellText(row+" td.delivered")+` === "2" && `+cellText("#dead tbody")+` === "No dead letters."`)
	waitJS(ctx, t, "the replay reported", cellText("#status")+`.startsWith("replay ")`)

	if *update {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join("..", "docs", "dashboard.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(png))
	}
}

// TestDashboardFilesAreServedWithAStrictPolicy checks the page and its
// assets come from the admin endpoint with a policy that forbids inline
// and foreign scripts, and that nothing else is served under ui/.
func TestDashboardFilesAreServedWithAStrictPolicy(t *testing.T) {
	startChatCaddy(t, chatConfig("", "source openai", "127.0.0.1:9"))
	for _, tc := range []struct {
		method, path string
		status       int
		contentType  string
	}{
		{http.MethodGet, uiPrefix, http.StatusOK, "text/html"},
		{http.MethodGet, uiPrefix + "app.js", http.StatusOK, "javascript"},
		{http.MethodGet, uiPrefix + "style.css", http.StatusOK, "text/css"},
		{http.MethodGet, strings.TrimSuffix(uiPrefix, "/"), http.StatusOK, "text/html"}, // redirected
		{http.MethodGet, uiPrefix + "missing.js", http.StatusNotFound, ""},
		{http.MethodGet, uiPrefix + "../stats", http.StatusOK, "application/json"},
		{http.MethodPost, uiPrefix, http.StatusMethodNotAllowed, ""},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+testAdmin+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.contentType)
		}
		if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Request.URL.Path, uiPrefix) &&
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: no Content-Security-Policy", tc.path)
		}
	}
}

// TestDashboardProxyGuardsItselfAndForwards checks why the proxy exists and
// that it is no way around the admin endpoint's checks: Caddy refuses a
// browser opening its admin URL, the proxy serves the page, forwards the
// API's answers with their status, and refuses other hosts and sites.
func TestDashboardProxyGuardsItselfAndForwards(t *testing.T) {
	startChatCaddy(t, chatConfig("", "source openai", "127.0.0.1:9"))
	ui := startDashboard(t)
	self := strings.TrimPrefix(strings.TrimSuffix(ui, uiPrefix), "http://")
	for _, tc := range []struct {
		name, method, url string
		header            map[string]string
		want              int
	}{
		{"a browser opening the admin endpoint", http.MethodGet, "http://" + testAdmin + uiPrefix, map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"}, http.StatusForbidden},
		{"a browser opening the dashboard", http.MethodGet, ui, map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"}, http.StatusOK},
		{"the page reading stats", http.MethodGet, "http://" + self + "/chat_webhooks/stats", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"the page's action, answered 404 by the admin API", http.MethodPost, "http://" + self + "/chat_webhooks/enable?webhook=nope", map[string]string{"Origin": "http://" + self}, http.StatusNotFound},
		{"another site's action", http.MethodPost, "http://" + self + "/chat_webhooks/replay", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"another site's image", http.MethodGet, "http://" + self + "/chat_webhooks/stats", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"another host name (DNS rebinding)", http.MethodGet, "http://" + self + "/chat_webhooks/stats", map[string]string{"Host": "rebind.example:80"}, http.StatusForbidden},
		{"the admin API's config, not forwarded", http.MethodGet, "http://" + self + "/config/", nil, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, nil)
			for k, v := range tc.header {
				if k == "Host" {
					req.Host = v
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s: %d, want %d", tc.method, tc.url, resp.StatusCode, tc.want)
			}
		})
	}
	if _, err := loopbackListen("0.0.0.0:0"); err == nil {
		t.Error("the dashboard listened on every interface")
	}
}
