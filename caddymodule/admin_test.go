package caddymodule

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// deadLetters lists a webhook's dead letters through the admin API.
func deadLetters(t *testing.T, webhook string) []messageView {
	t.Helper()
	status, b := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/dead_letters?webhook="+url.QueryEscape(webhook))
	if status != http.StatusOK {
		t.Fatalf("dead_letters: %d %s", status, b)
	}
	var out []messageView
	decodeJSON(t, b, &out)
	return out
}

// waitDeadLetters waits until webhook has n dead letters and returns them.
func waitDeadLetters(t *testing.T, webhook string, n int) []messageView {
	t.Helper()
	var got []messageView
	waitUntil(t, 5*time.Second, fmt.Sprintf("%d dead letters for %s", n, webhook), func() bool {
		got = deadLetters(t, webhook)
		return len(got) == n
	})
	return got
}

// deadLetterScenario runs Caddy with one webhook "crm" without retries whose
// receiver answers failStatus until healthy is set.
func deadLetterScenario(t *testing.T, failStatus int) (*hookSink, *atomic.Bool) {
	t.Helper()
	backend := newTurnBackend(t)
	sink, healthy := switchableSink(t, failStatus)
	startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			schema chatvolt
			sign standard %s
			retry off
		}`, sink.URL(), sinkSecret), backend.Listener.Addr().String()))
	return sink, healthy
}

// switchableSink is a receiver that answers failStatus until healthy is
// set, then 200.
func switchableSink(t *testing.T, failStatus int) (*hookSink, *atomic.Bool) {
	t.Helper()
	healthy := new(atomic.Bool)
	sink := newHookSink(t, func(int, *http.Request) int {
		if healthy.Load() {
			return http.StatusOK
		}
		return failStatus
	})
	return sink, healthy
}

func TestDeadLetterReplayedThroughAdminAPIArrives(t *testing.T) {
	sink, healthy := deadLetterScenario(t, http.StatusInternalServerError)

	for i, conv := range []string{"dl-a", "dl-b", "dl-c"} {
		mustTurn(t, withModulePort, conv, turnLabel(conv, i))
	}
	dead := waitDeadLetters(t, "crm", 3)
	for _, d := range dead {
		if d.Webhook != "crm" || d.Reason != "exhausted" || d.LastStatus != 500 || d.Attempts != 1 || d.LastError == "" || d.DeadAt.IsZero() {
			t.Errorf("dead letter %+v: want webhook crm, reason exhausted, last status 500 after 1 attempt, with an error and a time", d)
		}
		if !gjson.ValidBytes(d.Body) || gjson.GetBytes(d.Body, "eventType").String() != "AGENT_USER_MESSAGE" {
			t.Errorf("dead letter body should be the payload as JSON: %s", d.Body)
		}
	}
	// A dead letter is stored before its attempt leaves the queue.
	waitUntil(t, 5*time.Second, "stats of crm: 3 dead letters and nothing queued", func() bool {
		s := outboxStats(t, testAdmin).Endpoints["crm"]
		return s.DeadLetters == 3 && s.Queued == 0
	})
	one, two, three := dead[0], dead[1], dead[2]

	status, b := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/dead_letter?webhook=crm&id="+one.ID)
	if status != http.StatusOK || gjson.GetBytes(b, "id").String() != one.ID || gjson.GetBytes(b, "reason").String() != "exhausted" {
		t.Errorf("GET dead_letter: %d %s", status, b)
	}

	// The receiver is healthy again: a replayed dead letter arrives with
	// the same webhook-id and the same payload.
	healthy.Store(true)
	status, b = adminRequest(t, testAdmin, http.MethodPost, "/chat_webhooks/replay?webhook=crm&id="+one.ID)
	if status != http.StatusOK || gjson.GetBytes(b, "replayed").Int() != 1 {
		t.Fatalf("replay one: %d %s", status, b)
	}
	got := sink.waitDistinct(1, 5*time.Second)
	if got[0].id != one.ID || !bytes.Equal(got[0].body, one.Body) {
		t.Errorf("replayed delivery %s %s, want id %s and body %s", got[0].id, got[0].body, one.ID, one.Body)
	}
	if status, _ := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/dead_letter?webhook=crm&id="+one.ID); status != http.StatusNotFound {
		t.Errorf("a replayed dead letter is no longer one: GET answered %d, want 404", status)
	}

	// Deleted: gone for good, not replayable.
	status, b = adminRequest(t, testAdmin, http.MethodDelete, "/chat_webhooks/dead_letter?webhook=crm&id="+two.ID)
	if status != http.StatusOK || gjson.GetBytes(b, "deleted").Int() != 1 {
		t.Fatalf("delete: %d %s", status, b)
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		if status, _ := adminRequest(t, testAdmin, method, "/chat_webhooks/dead_letter?webhook=crm&id="+two.ID); status != http.StatusNotFound {
			t.Errorf("%s of a deleted dead letter: %d, want 404", method, status)
		}
	}
	if status, _ := adminRequest(t, testAdmin, http.MethodPost, "/chat_webhooks/replay?webhook=crm&id="+two.ID); status != http.StatusNotFound {
		t.Errorf("replay of a deleted dead letter: %d, want 404", status)
	}

	// Replay all: what is left (the third) arrives.
	status, b = adminRequest(t, testAdmin, http.MethodPost, "/chat_webhooks/replay?webhook=crm")
	if status != http.StatusOK || gjson.GetBytes(b, "replayed").Int() != 1 {
		t.Fatalf("replay all: %d %s", status, b)
	}
	got = sink.waitDistinct(2, 5*time.Second)
	if got[1].id != three.ID {
		t.Errorf("replay all delivered %s, want %s", got[1].id, three.ID)
	}
	if left := deadLetters(t, "crm"); len(left) != 0 {
		t.Errorf("dead letters left: %+v", left)
	}
	for _, d := range got {
		if d.id == two.ID {
			t.Errorf("the deleted dead letter %s was delivered", two.ID)
		}
	}
	waitUntil(t, 5*time.Second, "stats show the replays delivered", func() bool {
		s := outboxStats(t, testAdmin).Endpoints["crm"]
		return s.Queued == 0 && s.DeadLetters == 0
	})
}

func TestAdminAPIAnswersMistakesWithTheRightStatus(t *testing.T) {
	backend := newTurnBackend(t)
	startChatCaddy(t, chatConfig("", fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
		}`, newHookSink(t, nil).URL()), backend.Listener.Addr().String()))
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/chat_webhooks/stats", http.StatusOK},
		{http.MethodGet, "/chat_webhooks/messages?state=sent", http.StatusBadRequest},
		{http.MethodGet, "/chat_webhooks/messages?limit=-1", http.StatusBadRequest},
		{http.MethodGet, "/chat_webhooks/messages?before=x", http.StatusBadRequest},
		{http.MethodGet, "/chat_webhooks/message", http.StatusBadRequest},
		{http.MethodGet, "/chat_webhooks/message?id=evt_nope", http.StatusNotFound},
		{http.MethodGet, "/chat_webhooks/message?id=evt_nope&webhook=crm", http.StatusNotFound},
		{http.MethodPost, "/chat_webhooks/enable", http.StatusBadRequest},
		{http.MethodPost, "/chat_webhooks/enable?webhook=nope", http.StatusNotFound},
		{http.MethodGet, "/chat_webhooks/enable?webhook=crm", http.StatusMethodNotAllowed},
		{http.MethodGet, "/chat_webhooks/dead_letters", http.StatusOK},
		{http.MethodGet, "/chat_webhooks/dead_letters?limit=2", http.StatusOK},
		{http.MethodGet, "/chat_webhooks/dead_letters?limit=lots", http.StatusBadRequest},
		{http.MethodGet, "/chat_webhooks/dead_letter?webhook=crm", http.StatusBadRequest},
		{http.MethodGet, "/chat_webhooks/dead_letter?webhook=crm&id=evt_nope", http.StatusNotFound},
		{http.MethodDelete, "/chat_webhooks/dead_letter?id=evt_nope", http.StatusBadRequest},
		{http.MethodPost, "/chat_webhooks/replay?id=evt_nope", http.StatusBadRequest},
		{http.MethodPost, "/chat_webhooks/replay?webhook=crm&id=evt_nope", http.StatusNotFound},
		{http.MethodPost, "/chat_webhooks/replay?webhook=crm", http.StatusOK},
		{http.MethodPost, "/chat_webhooks/stats", http.StatusMethodNotAllowed},
		{http.MethodGet, "/chat_webhooks/replay", http.StatusMethodNotAllowed},
		{http.MethodGet, "/chat_webhooks/nothing", http.StatusNotFound},
	} {
		status, b := adminRequest(t, testAdmin, tc.method, tc.path)
		if status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, b, tc.status)
		}
		if tc.status == http.StatusOK && !gjson.ValidBytes(b) {
			t.Errorf("%s %s: not JSON: %s", tc.method, tc.path, b)
		}
	}
	if _, b := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/dead_letters"); strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("no dead letters should list as [], got %s", b)
	}

	// A configuration without chat_webhooks: the routes say so.
	if err := reloadCaddy(fmt.Sprintf("{\n\tadmin %s\n\thttp_port %d\n}\nhttp://localhost:%d {\n\trespond ok\n}\n", testAdmin, withModulePort, withModulePort)); err != nil {
		t.Fatal(err)
	}
	if status, b := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/stats"); status != http.StatusServiceUnavailable {
		t.Errorf("stats without chat_webhooks: %d %s, want 503", status, b)
	}
}

func TestDeliveryMetricsAppearOnCaddysMetricsEndpoint(t *testing.T) {
	backend := newTurnBackend(t)
	good := newHookSink(t, nil)
	bad := newHookSink(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	goodName, badName := unique("metrics-good"), unique("metrics-bad")
	startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name %s
			schema chatvolt
			sign standard %s
		}
		webhook %s/hook {
			name %s
			schema standard
			retry 10ms
		}`, good.URL(), goodName, sinkSecret, bad.URL(), badName), backend.Listener.Addr().String()))

	before := scrapeMetrics(t, testAdmin)
	const turns = 3
	for i := 0; i < turns; i++ {
		mustTurn(t, withModulePort, "metrics", turnLabel("metrics", i))
	}
	good.waitDistinct(turns, 5*time.Second)
	waitDeadLetters(t, badName, turns)

	series := func(name, labels string) string {
		return "caddy_chat_webhooks_" + name + "{" + labels + "}"
	}
	goodL := `schema="chatvolt",webhook="` + goodName + `"`
	badL := `schema="standard",webhook="` + badName + `"`
	var m map[string]float64
	delta := func(key string) float64 { return m[key] - before[key] }
	// Labels appear in name order in the exposition format.
	want := []struct {
		key  string
		want float64
	}{
		{series("events_derived_total", `type="message.replied"`), turns},
		{series("events_enqueued_total", goodL), turns},
		{series("events_enqueued_total", badL), turns},
		{series("events_delivered_total", goodL), turns},
		{series("delivery_latency_seconds_count", goodL), turns},
		{series("events_failed_total", `reason="status",`+badL), 2 * turns}, // one attempt and one retry each
		{series("events_retried_total", badL), turns},
		{series("events_dead_lettered_total", `reason="exhausted",`+badL), turns},
	}
	// Metrics trail the deliveries by a moment (the receiver answers before
	// the engine records the outcome), and one scrape is no snapshot: a
	// series may be read before an attempt ends and the next one after.
	// Wait until every counter has come up this far, then check that none
	// went further.
	depths := []string{series("queue_depth", goodL), series("queue_depth", badL)}
	waitUntil(t, 5*time.Second, "delivery metrics counted and queue depths back to 0", func() bool {
		m = scrapeMetrics(t, testAdmin)
		for _, c := range want {
			if delta(c.key) < c.want {
				return false
			}
		}
		for _, key := range depths {
			if v, ok := m[key]; !ok || v != 0 {
				return false
			}
		}
		return true
	})
	for _, c := range want {
		if got := delta(c.key); got != c.want {
			t.Errorf("%s went up by %v, want %v", c.key, got, c.want)
		}
	}
	if sum := m[series("delivery_latency_seconds_sum", goodL)] - before[series("delivery_latency_seconds_sum", goodL)]; sum <= 0 || sum > 5*turns {
		t.Errorf("delivery latency sum %vs for %d quick deliveries", sum, turns)
	}
	if _, ok := m[series("delivery_latency_seconds_bucket", goodL+`,le="+Inf"`)]; !ok {
		t.Errorf("latency histogram buckets missing")
	}
	if _, ok := m[series("events_delivered_total", badL)]; ok {
		t.Errorf("nothing was delivered to %s, yet it has a delivered series", badName)
	}
}

// The metrics handler on a site serves the same collectors.
func TestDeliveryMetricsAppearOnASiteMetricsHandler(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	name := unique("metrics-site")
	cfg := chatConfig("", fmt.Sprintf(`source openai
		webhook %s/hook {
			name %s
		}`, sink.URL(), name), backend.Listener.Addr().String())
	cfg = strings.Replace(cfg, "\treverse_proxy", "\tmetrics /metrics\n\treverse_proxy", 1)
	startChatCaddy(t, cfg)
	mustTurn(t, withModulePort, "site-metrics", "hello")
	sink.waitDistinct(1, 5*time.Second)
	want := `caddy_chat_webhooks_events_delivered_total{schema="standard",webhook="` + name + `"} 1`
	waitUntil(t, 5*time.Second, "delivered counter on the site's /metrics", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", withModulePort))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return strings.Contains(buf.String(), want)
	})
}
