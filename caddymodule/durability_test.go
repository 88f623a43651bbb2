package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// These tests show durable, ordered delivery at the Caddy level: real Caddy
// (in-process through caddytest, or the built binary as a subprocess), real
// HTTP receivers and real bbolt outbox files.

const testAdmin = "localhost:2999"

// sinkSecret signs the test webhooks: signed deliveries carry webhook-id.
const sinkSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// turnBackend is a stand-in OpenAI-compatible chat backend that answers
// every turn with a unique completion id and echoes the user's last message,
// so that each proxied request can be traced to its webhook. Other paths get
// {"ok":true}.
func newTurnBackend(t *testing.T) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			io.WriteString(w, `{"ok":true}`)
			return
		}
		last := gjson.GetBytes(body, `messages.#(role=="user")#.content|@reverse|0`).String()
		answer, _ := json.Marshal(map[string]any{
			"id":      fmt.Sprintf("chatcmpl-%d", n.Add(1)),
			"object":  "chat.completion",
			"model":   "gpt-test",
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": "re: " + last}, "finish_reason": "stop"}},
		})
		w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// chatTurn sends one OpenAI-style turn of conversation conv through Caddy
// and reads the whole answer. It returns the status, or an error if the
// request did not complete.
func chatTurn(client *http.Client, port int, conv, content string) (int, error) {
	return sendTurn(client, turnRequest(port, conv, content))
}

// turnRequest builds the request of one turn, for a test to add headers.
func turnRequest(port int, conv, content string) *http.Request {
	body, _ := json.Marshal(map[string]any{
		"model":    "gpt-test",
		"messages": []any{map[string]any{"role": "user", "content": content}},
	})
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions", port), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Conversation-Id", conv)
	return req
}

// sendTurn sends a turn's request and reads the whole answer.
func sendTurn(client *http.Client, req *http.Request) (int, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// turnClient opens a connection per turn: a kept-alive connection that an
// old server closes at a reload fails the next POST in the client (Go does
// not retry POSTs), with or without this module.
var turnClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func mustTurn(t *testing.T, port int, conv, content string) {
	t.Helper()
	status, err := chatTurn(turnClient, port, conv, content)
	if err != nil || status != http.StatusOK {
		t.Fatalf("proxied turn %s/%s: status %d, %v", conv, content, status, err)
	}
}

// hookDelivery is one webhook request a hookSink accepted (answered 2xx).
type hookDelivery struct {
	id     string // webhook-id
	path   string
	query  string
	header http.Header
	body   []byte
}

// hookSink is a real HTTP webhook receiver on a fixed address. It can be
// stopped and started again on the same port, answers with whatever status
// its answer function gives, and records what it accepted.
type hookSink struct {
	t      *testing.T
	addr   string
	answer func(n int, r *http.Request) int // n counts requests from 0

	mu       sync.Mutex
	srv      *http.Server
	requests int
	accepted []hookDelivery
	changed  chan struct{} // poked after every request
}

func newHookSink(t *testing.T, answer func(n int, r *http.Request) int) *hookSink {
	t.Helper()
	s := &hookSink{t: t, answer: answer, changed: make(chan struct{}, 1)}
	if s.answer == nil {
		s.answer = func(int, *http.Request) int { return http.StatusOK }
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.stop)
	return s
}

// newSwitchedSink is a receiver that answers 503 until up is set, then 200.
func newSwitchedSink(t *testing.T, up *atomic.Bool) *hookSink {
	return newHookSink(t, func(int, *http.Request) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
}

func (s *hookSink) URL() string { return "http://" + s.addr }

func (s *hookSink) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle)}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(l)
}

func (s *hookSink) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := s.requests
	s.requests++
	s.mu.Unlock()
	status := s.answer(n, r)
	if status >= 200 && status < 300 {
		s.mu.Lock()
		s.accepted = append(s.accepted, hookDelivery{id: r.Header.Get("webhook-id"), path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
		s.mu.Unlock()
	}
	w.WriteHeader(status)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// stop closes the listener and every connection: the receiver is down.
func (s *hookSink) stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart listens again on the same address.
func (s *hookSink) restart() {
	s.t.Helper()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listening again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

func (s *hookSink) snapshot() (requests int, accepted []hookDelivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, append([]hookDelivery(nil), s.accepted...)
}

// distinct returns the accepted deliveries, first acceptance of each
// webhook-id only, and how many were accepted again under an id already seen.
// Webhooks are told apart by path: one event has one id for every webhook.
func (s *hookSink) distinct() (firsts []hookDelivery, dups int) {
	_, all := s.snapshot()
	seen := map[string]bool{}
	for _, d := range all {
		if seen[d.path+" "+d.id] {
			dups++
			continue
		}
		seen[d.path+" "+d.id] = true
		firsts = append(firsts, d)
	}
	return firsts, dups
}

// waitDistinct waits until n distinct webhook-ids have been accepted.
func (s *hookSink) waitDistinct(n int, within time.Duration) []hookDelivery {
	s.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		got, _ := s.distinct()
		if len(got) >= n {
			return got
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			reqs, all := s.snapshot()
			s.t.Fatalf("receiver accepted %d distinct webhooks (%d accepted, %d requests) within %v, want %d", len(got), len(all), reqs, within, n)
		}
	}
}

// waitUntil polls cond until it holds or fails the test after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// adminRequest calls an admin API at addr and returns status and body.
func adminRequest(t *testing.T, addr, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// outboxStats reads GET /chat_webhooks/stats.
func outboxStats(t *testing.T, addr string) delivery.Stats {
	t.Helper()
	status, b := adminRequest(t, addr, http.MethodGet, "/chat_webhooks/stats")
	var s delivery.Stats
	if status != http.StatusOK || json.Unmarshal(b, &s) != nil {
		t.Fatalf("stats: %d %s", status, b)
	}
	return s
}

// reloadCaddy replaces the running configuration the way an operator does:
// POST /load with a Caddyfile.
func reloadCaddy(cfg string) error {
	req, _ := http.NewRequest(http.MethodPost, "http://"+testAdmin+"/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("load: HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

// chatConfig is a Caddyfile with a bbolt outbox at outbox (or memory when
// empty) and one site on withModulePort whose chat_webhooks block is
// handler, proxying to backend.
func chatConfig(outbox, handler, backend string) string {
	ob := "memory"
	if outbox != "" {
		ob = "bbolt " + outbox
	}
	return testCaddyfile("", "outbox "+ob, handler, "reverse_proxy "+backend, "")
}

// testCaddyfile is the Caddyfile every in-process test runs: the admin API
// on testAdmin, the global options globals, the chat_webhooks app options
// appOptions, the site on withModulePort whose chat_webhooks block holds
// chat followed by the directives in rest, then further sites.
func testCaddyfile(globals, appOptions, chat, rest, sites string) string {
	return fmt.Sprintf(`{
	admin %s
	http_port %d
	%s
	chat_webhooks {
		%s
	}
}
http://localhost:%d {
	chat_webhooks {
		%s
	}
	%s
}
%s`, testAdmin, withModulePort, globals, appOptions, withModulePort, chat, rest, sites)
}

func startChatCaddy(t *testing.T, cfg string) {
	t.Helper()
	caddytest.NewTester(t).InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

// counterValue reads one child of a metric vector in-process.
func counterValue(c prometheus.Collector) float64 {
	m, ok := c.(prometheus.Metric)
	if !ok {
		return 0
	}
	var out dto.Metric
	if m.Write(&out) != nil {
		return 0
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	}
	return 0
}

var uniqueN atomic.Int64

// unique makes a webhook name no earlier test (or -count run) used, so that
// the process-wide metrics of one test are its own.
func unique(name string) string { return fmt.Sprintf("%s-%d", name, uniqueN.Add(1)) }

// turnLabel is what turn i of conversation conv says; it comes back in the
// chatvolt payload's userMessage.
func turnLabel(conv string, i int) string { return fmt.Sprintf("%s turn %03d", conv, i) }

// checkOrder asserts that every conversation's turns arrived, each once and
// in the order they were sent.
func checkOrder(t *testing.T, got []hookDelivery, convs []string, turns int) {
	t.Helper()
	per := map[string][]string{}
	for _, d := range got {
		conv := gjson.GetBytes(d.body, "conversationId").String()
		per[conv] = append(per[conv], gjson.GetBytes(d.body, "userMessage").String())
	}
	for _, c := range convs {
		var want []string
		for i := 0; i < turns; i++ {
			want = append(want, turnLabel(c, i))
		}
		if fmt.Sprint(per[c]) != fmt.Sprint(want) {
			t.Errorf("conversation %s arrived as\n%q\nwant\n%q", c, per[c], want)
		}
	}
}

func TestReceiverDownForAWhileThenBackReceivesEveryEventInOrder(t *testing.T) {
	backend := newTurnBackend(t)
	const retry = "retry 20ms 20ms 50ms 100ms 200ms 500ms 1s"

	// The circuit breaker opens once 7 of 10 attempts fail and then pauses
	// the endpoint for 30 s; the outages below stay under that (6 failed
	// attempts at most) so the test is fast. The breaker has its own tests
	// in delivery.
	t.Run("receiver answers 503 then recovers", func(t *testing.T) {
		const failures = 6
		sink := newHookSink(t, func(n int, _ *http.Request) int {
			if n < failures {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name down503
			schema chatvolt
			sign standard `+sinkSecret+`
			%s
		}`, sink.URL(), retry), backend.Listener.Addr().String()))

		convs := []string{"conv-a", "conv-b", "conv-c", "conv-d"}
		const turns = 5
		var wg sync.WaitGroup
		for _, c := range convs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < turns; i++ {
					mustTurn(t, withModulePort, c, turnLabel(c, i))
				}
			}()
		}
		wg.Wait()
		got := sink.waitDistinct(len(convs)*turns, 10*time.Second)
		checkOrder(t, got, convs, turns)
		if reqs, _ := sink.snapshot(); reqs < len(convs)*turns+failures {
			t.Errorf("receiver saw %d requests; want the %d events plus %d retried after a 503", reqs, len(convs)*turns, failures)
		}
		if _, dups := sink.distinct(); dups != 0 {
			t.Errorf("%d events accepted twice", dups)
		}
	})

	t.Run("receiver closed then restarted on the same port", func(t *testing.T) {
		sink := newHookSink(t, nil)
		sink.stop()
		name := unique("closed")
		startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name `+name+`
			schema chatvolt
			sign standard `+sinkSecret+`
			%s
		}`, sink.URL(), retry), backend.Listener.Addr().String()))

		convs := []string{"conv-x", "conv-y"}
		const turns = 4
		for i := 0; i < turns; i++ {
			for _, c := range convs {
				mustTurn(t, withModulePort, c, turnLabel(c, i))
			}
		}
		refused := metrics.failed.WithLabelValues(name, "chatvolt", delivery.ReasonConnect)
		waitUntil(t, 5*time.Second, "connection refused counted", func() bool { return counterValue(refused) >= float64(len(convs)) })
		waitUntil(t, 5*time.Second, "outbox holds every event while the receiver is down", func() bool {
			return outboxStats(t, testAdmin).Endpoints[name].Queued == len(convs)*turns
		})
		sink.restart()
		got := sink.waitDistinct(len(convs)*turns, 40*time.Second)
		checkOrder(t, got, convs, turns)
		if _, dups := sink.distinct(); dups != 0 {
			t.Errorf("%d events accepted twice", dups)
		}
	})
}

func TestConfigReloadDuringTrafficLosesNothing(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	outbox := filepath.Join(t.TempDir(), "outbox.db")
	config := func(generation int) string {
		return chatConfig(outbox, fmt.Sprintf(`source openai
		agent_name "Support Bot %d"
		webhook %s/hook {
			name rx
			schema chatvolt
			sign standard `+sinkSecret+`
			header X-Generation %d
			retry 20ms 50ms 100ms 200ms 500ms 1s
		}`, generation, sink.URL(), generation), backend.Listener.Addr().String())
	}
	startChatCaddy(t, config(0))

	// Clients send turns back to back while the configuration is reloaded.
	const clients = 3
	var (
		stop     atomic.Bool
		sent     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		answered = map[string][]string{} // conversation → turns answered 200, in order
		failed   []string
	)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("reload-%d", c)
			// A new connection per request: a POST sent on a kept-alive
			// connection that the old server closes at the reload fails in
			// the client (Go does not retry POSTs), with or without this
			// module; that is not what this test is about.
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for i := 0; !stop.Load(); i++ {
				label := turnLabel(conv, i)
				status, err := chatTurn(client, withModulePort, conv, label)
				mu.Lock()
				if err == nil && status == http.StatusOK {
					answered[conv] = append(answered[conv], label)
				} else {
					failed = append(failed, fmt.Sprintf("%s: %d %v", label, status, err))
				}
				mu.Unlock()
				sent.Add(1)
			}
		}()
	}
	waitFor := func(more int64) {
		target := sent.Load() + more
		waitUntil(t, 10*time.Second, "traffic flowing", func() bool { return sent.Load() >= target })
	}
	for generation := 1; generation <= 4; generation++ {
		waitFor(15)
		if err := reloadCaddy(config(generation)); err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	waitFor(15)
	stop.Store(true)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, turns := range answered {
		total += len(turns)
	}
	// Caddy itself (2.11, with or without this module) resets a few
	// connections accepted while the old server shuts down: those clients
	// get EOF and no answer. They are not "proxied requests"; an event for
	// one would still be allowed below (it may have reached the backend).
	if len(failed) > 2*clients*4 {
		t.Errorf("%d of %d requests failed during reloads: %q", len(failed), total+len(failed), failed)
	}
	sink.waitDistinct(total, 15*time.Second)
	waitUntil(t, 5*time.Second, "outbox drained", func() bool { return outboxStats(t, testAdmin).Queued == 0 })
	got, dups := sink.distinct()
	if dups != 0 {
		t.Errorf("%d events delivered twice across reloads", dups)
	}
	per := map[string][]string{}
	agents := map[string]bool{}
	mismatched := 0
	for _, d := range got {
		conv := gjson.GetBytes(d.body, "conversationId").String()
		per[conv] = append(per[conv], gjson.GetBytes(d.body, "userMessage").String())
		agent := gjson.GetBytes(d.body, "agentName").String()
		agents[agent] = true
		// The payload was shaped under the configuration that named the
		// agent; its headers must be that configuration's too.
		if "Support Bot "+d.header.Get("X-Generation") != agent {
			mismatched++
		}
	}
	if mismatched > 0 {
		t.Errorf("%d of %d deliveries carried another configuration's headers than the one that shaped them", mismatched, len(got))
	}
	unanswered := map[string]bool{}
	for _, f := range failed {
		unanswered[strings.SplitN(f, ":", 2)[0]] = true
	}
	for conv, want := range answered {
		// Delivered in the order sent, each answered turn present; a turn
		// whose client saw no answer may or may not be there.
		var delivered []string
		for _, label := range per[conv] {
			if !unanswered[label] {
				delivered = append(delivered, label)
			}
		}
		if fmt.Sprint(delivered) != fmt.Sprint(want) {
			t.Errorf("conversation %s: delivered %d answered turns, answered %d; first difference at %d", conv, len(delivered), len(want), firstDiff(delivered, want))
		}
	}
	if !agents["Support Bot 0"] || !agents["Support Bot 4"] {
		t.Errorf("events should carry the agent name of the configuration that saw them; got %v", keys(agents))
	}
	t.Logf("%d requests answered across 4 reloads (%d reset by Caddy's reload), %d events delivered, agent names %v", total, len(failed), len(got), keys(agents))
}

// TestReloadAppliesNewOutboxLimits lowers max_queued on a running Caddy:
// the pipeline is kept across the reload, so the engine must take the new
// limit at once rather than at the next restart.
func TestReloadAppliesNewOutboxLimits(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	name := unique("limits")
	config := func(limit string) string {
		cfg := chatConfig("", fmt.Sprintf(`source openai
		webhook %s/hook {
			name %s
			schema chatvolt
			retry 1h
		}`, sink.URL(), name), backend.Listener.Addr().String())
		return strings.Replace(cfg, "outbox memory", "outbox memory\n\t\t"+limit, 1)
	}
	startChatCaddy(t, config("max_queued 100"))
	mustTurn(t, withModulePort, "limits", "turn 1")
	mustTurn(t, withModulePort, "limits", "turn 2")
	waitUntil(t, 5*time.Second, "two events queued", func() bool { return outboxStats(t, testAdmin).Queued == 2 })

	if err := reloadCaddy(config("max_queued 2")); err != nil {
		t.Fatal(err)
	}
	mustTurn(t, withModulePort, "limits", "turn 3")
	dropped := metrics.dropped.WithLabelValues(name, "chatvolt", delivery.ReasonQueueFull)
	waitUntil(t, 5*time.Second, "the third event refused as queue_full", func() bool { return counterValue(dropped) == 1 })
	if q := outboxStats(t, testAdmin).Queued; q != 2 {
		t.Errorf("queued %d after the reload, want the 2 already queued kept", q)
	}
}

// newHeldLookups is a user_info service that holds lookups of paths ending
// in held until release is called (at the latest when the test ends, before
// Caddy stops) and answers the others at once.
func newHeldLookups(t *testing.T, held string) (*httptest.Server, func()) {
	released := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(released) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, held) {
			select {
			case <-released:
			case <-r.Context().Done():
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"Someone"}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release)
	return srv, release
}

// Two turns of one conversation, sent one after the other, must reach the
// receiver in that order even when the first takes longer to process (here:
// its user_info lookup is slow) than the second.
func TestPipelineKeepsTurnsOfOneConversationInOrder(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	lookups, release := newHeldLookups(t, "/slow")
	startChatCaddy(t, testCaddyfile("", "outbox memory\n\t\tworkers 2", fmt.Sprintf(`source openai
		user_info %s/users/{contact.id} {
			timeout 10s
		}
		webhook %s/hook {
			schema chatvolt
			sign standard %s
		}`, lookups.URL, sink.URL(), sinkSecret), fmt.Sprintf("reverse_proxy %s", backend.Listener.Addr()), ""))

	for i, user := range []string{"slow", "fast"} {
		body := fmt.Sprintf(`{"model":"gpt-test","user":%q,"messages":[{"role":"user","content":%q}]}`, user, turnLabel("ordered", i))
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions", withModulePort), strings.NewReader(body))
		req.Header.Set("X-Conversation-Id", "ordered")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The slow lookup answers once the receiver got something, or after a
	// while if a correct pipeline holds the second turn back.
	go func() {
		select {
		case <-sink.changed:
		case <-time.After(500 * time.Millisecond):
		}
		release()
	}()
	checkOrder(t, sink.waitDistinct(2, 10*time.Second), []string{"ordered"}, 2)
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Subprocess tests: the binary `go build ./cmd/caddy` makes, with its own
// admin and site ports.
const (
	procAdmin = "localhost:2998"
	procPort  = 19390
)

// buildCaddy builds ./cmd/caddy into a temporary directory.
func buildCaddy(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the caddy binary; skipped with -short")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "caddy", "main.go")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	bin := filepath.Join(t.TempDir(), "caddy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, out)
	}
	return bin
}

// caddyProcess is Caddy running as a child process.
type caddyProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startCaddyProcess runs `caddy run` on the Caddyfile at config, with its
// own HOME and XDG directories, and waits until its admin API answers.
func startCaddyProcess(t *testing.T, bin, config, home string) *caddyProcess {
	t.Helper()
	logFile, err := os.CreateTemp(home, "caddy-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_DATA_HOME="+filepath.Join(home, "data"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, log: logFile.Name(), done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("caddy process log:\n%s", b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + procAdmin + "/chat_webhooks/stats")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("caddy exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy's admin API did not come up within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeProcConfig writes the Caddyfile of a subprocess test into home: a
// bbolt outbox there, and the site on procPort whose chat_webhooks block
// is chat, proxying to backend. It returns the file's path.
func writeProcConfig(t *testing.T, home, chat string, backend *httptest.Server) string {
	t.Helper()
	config := filepath.Join(home, "Caddyfile")
	err := os.WriteFile(config, []byte(fmt.Sprintf(`{
	admin %s
	http_port %d
	chat_webhooks {
		outbox bbolt %s
	}
}
http://localhost:%d {
	chat_webhooks {
		%s
	}
	reverse_proxy %s
}
`, procAdmin, procPort, filepath.Join(home, "outbox.db"), procPort, chat, backend.Listener.Addr())), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// kill sends SIGKILL: no shutdown code runs.
func (p *caddyProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func TestSIGKILLLosesNoQueuedEvent(t *testing.T) {
	bin := buildCaddy(t)
	backend := newTurnBackend(t)
	up := new(atomic.Bool)
	sink := newSwitchedSink(t, up)
	home := t.TempDir()
	config := writeProcConfig(t, home, `source openai
		webhook `+sink.URL()+`/hook {
			name crm
			schema chatvolt
			sign standard `+sinkSecret+`
			retry 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s 1s
		}`, backend)

	proc := startCaddyProcess(t, bin, config, home)
	convs := []string{"kill-a", "kill-b", "kill-c"}
	const turns = 4
	n := len(convs) * turns
	for i := 0; i < turns; i++ {
		for _, c := range convs {
			mustTurn(t, procPort, c, turnLabel(c, i))
		}
	}
	waitUntil(t, 10*time.Second, fmt.Sprintf("outbox holds %d", n), func() bool { return outboxStats(t, procAdmin).Queued == n })
	if _, got := sink.snapshot(); len(got) != 0 {
		t.Fatalf("the receiver is down, yet %d deliveries were accepted", len(got))
	}

	// The subcommand of the same binary reads the same numbers.
	out, err := exec.Command(bin, "chat-webhooks", "stats", "--address", procAdmin).Output()
	if err != nil {
		t.Fatalf("caddy chat-webhooks stats: %v", err)
	}
	if q := gjson.GetBytes(out, "endpoints.crm.queued").Int(); q != int64(n) {
		t.Errorf("caddy chat-webhooks stats says crm has %d queued, want %d:\n%s", q, n, out)
	}

	proc.kill()
	up.Store(true)
	startCaddyProcess(t, bin, config, home)
	got := sink.waitDistinct(n, 20*time.Second)
	checkOrder(t, got, convs, turns)
	waitUntil(t, 5*time.Second, "outbox drained after the restart", func() bool { return outboxStats(t, procAdmin).Queued == 0 })
	if _, dups := sink.distinct(); dups != 0 {
		t.Errorf("%d events accepted twice", dups)
	}

	// The restarted process's metrics describe what it found and delivered,
	// under the webhook's schema (the queue was counted at start, before
	// the handler named the schema).
	m := scrapeMetrics(t, procAdmin)
	if v, ok := m[`caddy_chat_webhooks_queue_depth{schema="chatvolt",webhook="crm"}`]; !ok || v != 0 {
		t.Errorf("queue_depth of crm = %v (present %t), want 0", v, ok)
	}
	if v := m[`caddy_chat_webhooks_events_delivered_total{schema="chatvolt",webhook="crm"}`]; v != float64(n) {
		t.Errorf("events_delivered_total of crm = %v, want %d", v, n)
	}
	for k := range m {
		if strings.Contains(k, `schema=""`) {
			t.Errorf("series without a schema: %s", k)
		}
	}
}

// scrapeMetrics reads an admin endpoint's /metrics into series → value.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	status, b := adminRequest(t, addr, http.MethodGet, "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, b)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		fmt.Sscan(line[i+1:], &v)
		out[line[:i]] = v
	}
	return out
}

// decodeJSON unmarshals b or fails the test with the body.
func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
}
