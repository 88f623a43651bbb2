package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock moved only by the test.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	n := len(t.c.timers)
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *fakeTimer) bool { return x == t })
	return len(t.c.timers) < n
}

// Advance moves time forward and fires the timers that fall due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// next returns how far away the earliest timer is.
func (c *fakeClock) next() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	at := slices.MinFunc(c.timers, func(a, b *fakeTimer) int { return a.at.Compare(b.at) }).at
	return at.Sub(c.now), true
}

// waitTimer waits for the engine to set a timer and returns how far away
// it is.
func (c *fakeClock) waitTimer(t *testing.T) time.Duration {
	t.Helper()
	var d time.Duration
	eventually(t, "a timer to be set", func() bool {
		var ok bool
		d, ok = c.next()
		return ok
	})
	return d
}

// advanceToTimer jumps to the engine's next timer and returns the jump.
func (c *fakeClock) advanceToTimer(t *testing.T) time.Duration {
	t.Helper()
	d := c.waitTimer(t)
	c.Advance(d)
	return d
}

// eventually waits, in real time, for the engine's goroutines to reach a
// state. Policy time never passes on its own: it is the fake clock's.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recorder is an Observer that counts events by key.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
}

func newRecorder() *recorder { return &recorder{counts: map[string]int{}} }

func (r *recorder) add(key string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[key] += n
}

func (r *recorder) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *recorder) Enqueued(ep, _ string, n int)            { r.add("enqueued:"+ep, n) }
func (r *recorder) Delivered(ep, _ string, _ time.Duration) { r.add("delivered:"+ep, 1) }
func (r *recorder) Failed(ep, _ string, reason string, _ int) {
	r.add("failed:"+ep, 1)
	r.add("failed:"+ep+":"+reason, 1)
}
func (r *recorder) Retried(ep, _ string)                { r.add("retried:"+ep, 1) }
func (r *recorder) Dropped(ep, _, reason string, n int) { r.add("dropped:"+ep+":"+reason, n) }
func (r *recorder) DeadLettered(ep, _ string, reason string, n int) {
	r.add("dead:"+ep, n)
	r.add("dead:"+ep+":"+reason, n)
}
func (r *recorder) QueueDepth(string, string, int) {}
func (r *recorder) Removed(ep, _ string)           { r.add("removed:"+ep, 1) }
func (r *recorder) Disabled(ep, _ string, disabled bool) {
	if disabled {
		r.add("disabled:"+ep, 1)
	} else {
		r.add("enabled:"+ep, 1)
	}
}

// testScheme signs with HMAC-SHA256 over id.ts.body, and compacts JSON in
// Prepare so that tests can tell the prepared body from the original.
type testScheme struct{ prepared atomic.Int32 }

const testSecret = "test-secret"

func (s *testScheme) Prepare(body []byte) ([]byte, error) {
	s.prepared.Add(1)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func testSignature(id, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(testSecret))
	fmt.Fprintf(m, "%s.%s.%s", id, ts, body)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *testScheme) Sign(h http.Header, id string, ts time.Time, body []byte) error {
	t := strconv.FormatInt(ts.Unix(), 10)
	h.Set("X-Test-Id", id)
	h.Set("X-Test-Timestamp", t)
	h.Set("X-Test-Signature", testSignature(id, t, body))
	return nil
}

// payload is the body tests enqueue.
type payload struct {
	Lane string `json:"lane"`
	N    int    `json:"n"`
}

// hit is one request a receiver got.
type hit struct {
	Status int // what the receiver answered
	Path   string
	Header http.Header
	Body   []byte
	payload
}

// response is what a receiver answers.
type response struct {
	status int
	header map[string]string
	body   string
	delay  time.Duration
}

// receiver is a real HTTP server recording what it gets.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, h hit) response // n counts from 0
}

func newReceiver(t *testing.T, respond func(n int, h hit) response) *receiver {
	rx := &receiver{respond: respond}
	rx.Server = httptest.NewServer(http.HandlerFunc(rx.serve))
	t.Cleanup(rx.Close)
	return rx
}

// answers makes a respond func from a list; the last answer repeats.
func answers(rs ...response) func(int, hit) response {
	return func(n int, _ hit) response { return rs[min(n, len(rs)-1)] }
}

func (rx *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := hit{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	_ = json.Unmarshal(body, &h.payload)
	rx.mu.Lock()
	n := len(rx.hits)
	rx.hits = append(rx.hits, h)
	respond := rx.respond
	rx.mu.Unlock()
	resp := respond(n, h)
	rx.mu.Lock()
	rx.hits[n].Status = resp.status
	rx.mu.Unlock()
	if resp.delay > 0 {
		select {
		case <-time.After(resp.delay):
		case <-r.Context().Done():
		}
	}
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	io.WriteString(w, resp.body)
}

func (rx *receiver) setRespond(f func(int, hit) response) {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	rx.respond = f
}

func (rx *receiver) got() []hit {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	return slices.Clone(rx.hits)
}

func (rx *receiver) count() int { return len(rx.got()) }

// delivered returns, per lane, the N of the requests answered 2xx, in
// arrival order.
func delivered(hits []hit) map[string][]int {
	out := map[string][]int{}
	for _, h := range hits {
		if h.Status/100 == 2 {
			out[h.Lane] = append(out[h.Lane], h.N)
		}
	}
	return out
}

// harness is an Engine on a fake clock with a recording observer.
type harness struct {
	t     *testing.T
	clock *fakeClock
	obs   *recorder
	eng   *Engine
}

func newHarness(t *testing.T, store Store, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), obs: newRecorder()}
	h.start(store, opts)
	return h
}

// start (re)starts the engine on store, keeping clock and observer.
func (h *harness) start(store Store, opts Options) {
	h.t.Helper()
	opts.Clock, opts.Observer = h.clock, h.obs
	eng, err := New(store, opts)
	if err != nil {
		h.t.Fatal(err)
	}
	eng.jitter = func() float64 { return 0.5 } // no jitter: exact delays
	h.eng = eng
	h.t.Cleanup(func() { eng.Close() })
}

// endpoint returns an ordered, signed endpoint "rx" posting to url.
func endpoint(url string, mods ...func(*Endpoint)) Endpoint {
	ep := Endpoint{Name: "rx", URL: url, Schema: "test", Scheme: &testScheme{}, Ordered: true}
	for _, m := range mods {
		m(&ep)
	}
	return ep
}

func (h *harness) set(ep Endpoint) {
	h.t.Helper()
	if err := h.eng.SetEndpoint(ep); err != nil {
		h.t.Fatal(err)
	}
}

// msg builds message n of lane for endpoint "rx".
func msg(lane string, n int) Message {
	body, _ := json.Marshal(payload{Lane: lane, N: n})
	return Message{ID: fmt.Sprintf("msg_%s%d", lane, n), Endpoint: "rx", Lane: lane, Body: body}
}

func (h *harness) enqueue(msgs ...Message) {
	h.t.Helper()
	if err := h.eng.Enqueue(h.t.Context(), msgs...); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitCount(key string, n int) {
	h.t.Helper()
	eventually(h.t, fmt.Sprintf("%s = %d", key, n), func() bool { return h.obs.get(key) >= n })
	if got := h.obs.get(key); got != n {
		h.t.Fatalf("%s = %d, want %d", key, got, n)
	}
}
