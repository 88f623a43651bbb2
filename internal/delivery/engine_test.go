package delivery

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBreakerStopsAttemptsThenRecovers(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 503}))
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Ordered = false; e.MaxConcurrency = 1 }))
	var msgs []Message
	for n := range 20 {
		msgs = append(msgs, msg("A", n))
	}
	h.enqueue(msgs...)

	h.waitCount("failed:rx", 10)
	// The breaker is open: the dispatcher sleeps until the cool-down ends
	// instead of attempting the 10 messages never tried.
	// Counted before the clock moves: advancing releases the probe.
	if d := h.clock.waitTimer(t); d != 30*time.Second {
		t.Fatalf("next wake in %s, want the 30s cool-down", d)
	}
	if st, _ := h.eng.Stats(); rx.count() != 10 {
		t.Fatalf("%d attempts while open (stats %+v), want 10", rx.count(), st)
	}
	h.clock.Advance(30 * time.Second)
	// Cool-down over: a single probe, which fails and re-opens for 60s.
	h.waitCount("failed:rx", 11)
	if d := h.clock.waitTimer(t); d != time.Minute {
		t.Fatalf("after a failed probe next wake in %s, want 1m", d)
	}
	if rx.count() != 11 {
		t.Fatalf("%d attempts, want 11", rx.count())
	}
	rx.setRespond(answers(response{status: 200}))
	h.clock.Advance(time.Minute)
	h.waitCount("delivered:rx", 20)
	if got := rx.count(); got != 31 {
		t.Errorf("%d attempts in all, want 31", got)
	}
	if st, _ := h.eng.Stats(); st.Endpoints["rx"].Breaker != BreakerClosed {
		t.Errorf("breaker %s after recovery", st.Endpoints["rx"].Breaker)
	}
	if got := h.obs.get("retried:rx"); got != 11 {
		t.Errorf("retried %d, want 11: waiting on the breaker is not an attempt", got)
	}
}

func TestEnqueueRefusesWhenFull(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		tune bool // set opts on a running engine instead of at New
	}{
		{"message count", Options{MaxQueued: 3}, false},
		{"bytes", Options{MaxQueuedBytes: int64(3 * len(msg("A", 1).Body))}, false},
		{"message count lowered by Tune", Options{MaxQueued: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rx := newReceiver(t, answers(response{status: 503}))
			var h *harness
			if tt.tune {
				h = newHarness(t, NewMemoryStore(), Options{})
				h.eng.Tune(tt.opts)
			} else {
				h = newHarness(t, NewMemoryStore(), tt.opts)
			}
			h.set(endpoint(rx.URL))
			h.enqueue(msg("A", 1), msg("A", 2))
			err := h.eng.Enqueue(t.Context(), msg("A", 3), msg("A", 4))
			if !errors.Is(err, ErrQueueFull) {
				t.Fatalf("Enqueue over the limit = %v, want ErrQueueFull", err)
			}
			if got := h.obs.get("dropped:rx:" + ReasonQueueFull); got != 2 {
				t.Errorf("dropped %d, want 2", got)
			}
			h.enqueue(msg("A", 3)) // all-or-nothing: room for one is left
			if st, _ := h.eng.Stats(); st.Queued != 3 || st.Endpoints["rx"].Queued != 3 {
				t.Errorf("queued %+v, want 3", st)
			}
		})
	}
}

func TestEnqueueErrors(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 200}))
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL))
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"no id", Message{Endpoint: "rx", Body: []byte(`{}`)}, "has no ID"},
		{"prepare fails", Message{ID: "1", Endpoint: "rx", Body: []byte(`not json`)}, "preparing message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.eng.Enqueue(t.Context(), tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Enqueue = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if h.obs.get("dropped:rx:"+ReasonPrepare) != 1 {
		t.Error("a failed Prepare was not counted as dropped")
	}
	h.eng.Close()
	if err := h.eng.Enqueue(t.Context(), msg("A", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed", err)
	}
}

func TestRemovedEndpointStopsAndItsQueueBecomesDeadLetters(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 503}))
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL))
	h.enqueue(msg("A", 1), msg("A", 2))
	h.waitCount("retried:rx", 1)

	// Apply without rx stops it at once; until Commit, applying it again
	// undoes the removal (a configuration that failed to start).
	if err := h.eng.Apply(nil); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	if st, _ := h.eng.Stats(); rx.count() != 1 || len(st.Endpoints) != 0 || st.Queued != 2 {
		t.Fatalf("%d attempts, stats %+v; want no attempt, rx unlisted, 2 queued", rx.count(), st)
	}
	if err := h.eng.Apply([]Endpoint{endpoint(rx.URL)}); err != nil {
		t.Fatal(err)
	}
	h.waitCount("retried:rx", 2)
	if err := h.eng.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Commit(); err != nil {
		t.Fatal(err)
	}
	// A message of an old configuration arriving after the removal is kept
	// as a dead letter too.
	if err := h.eng.Enqueue(t.Context(), msg("A", 3)); err != nil {
		t.Fatal(err)
	}
	st, _ := h.eng.Stats()
	dead, _ := h.eng.DeadLetters("rx", 0)
	if st.Queued != 0 || st.OrphanedDeadLetters["rx"] != 3 || len(dead) != 3 || dead[0].Reason != ReasonRemoved || dead[2].Reason != ReasonRemoved {
		t.Fatalf("stats %+v, dead letters %+v; want the 3 messages dead with reason %s", st, dead, ReasonRemoved)
	}
	if h.obs.get("dead:rx:"+ReasonRemoved) != 3 || h.obs.get("removed:rx") == 0 {
		t.Errorf("observer: %v", h.obs.counts)
	}
	if _, err := h.eng.ReplayAll("rx"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("ReplayAll of a removed endpoint = %v, want ErrUnknownEndpoint", err)
	}

	// Back under the same name, its dead letters can be replayed, in order.
	rx.setRespond(answers(response{status: 200}))
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Timeout = time.Second }))
	if n, err := h.eng.ReplayAll("rx"); err != nil || n != 3 {
		t.Fatalf("ReplayAll = %d, %v", n, err)
	}
	h.waitCount("delivered:rx", 3)
	if got := delivered(rx.got()); !slices.Equal(got["A"], []int{1, 2, 3}) {
		t.Errorf("delivered %v, want A [1 2 3]", got)
	}
}

func TestMessagesAreSentWithTheIdentityTheyWereShapedFor(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 503}, response{status: 200}))
	h := newHarness(t, NewMemoryStore(), Options{})
	gen := func(n string) Endpoint {
		return endpoint(rx.URL, func(e *Endpoint) {
			e.Identity = "gen" + n
			e.Header = http.Header{"X-Gen": {n}}
		})
	}
	h.set(gen("1"))
	first := msg("A", 1)
	first.Identity = "gen1"
	h.enqueue(first)
	h.waitCount("retried:rx", 1)

	// A reload changes the header: the queued message keeps generation 1's,
	// the next one gets generation 2's, in lane order.
	h.set(gen("2"))
	second := msg("A", 2)
	second.Identity = "gen2"
	h.enqueue(second)
	h.clock.Advance(time.Hour)
	h.waitCount("delivered:rx", 2)
	got := rx.got()
	if len(got) != 3 || got[1].Header.Get("X-Gen") != "1" || got[2].Header.Get("X-Gen") != "2" {
		t.Fatalf("deliveries %v; want the retry of A1 with X-Gen 1, then A2 with X-Gen 2", got)
	}

	// A message the previous configuration shaped after the reload brings
	// its settings and goes out with them.
	late := msg("A", 3)
	late.Identity, late.Settings = "gen1", &Endpoint{}
	*late.Settings = gen("1")
	h.enqueue(late)
	h.waitCount("delivered:rx", 3)
	if got := rx.got(); got[3].Header.Get("X-Gen") != "1" {
		t.Errorf("a late message of generation 1 went out with X-Gen %q", got[3].Header.Get("X-Gen"))
	}

	// One of an identity that is gone and brings no settings (loaded after
	// a restart) is not sent with the current settings.
	stale := msg("A", 4)
	stale.Identity = "gen1"
	if err := h.eng.Enqueue(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	if dead, _ := h.eng.DeadLetters("rx", 0); len(dead) != 1 || dead[0].Reason != ReasonChanged {
		t.Fatalf("dead letters %+v, want A4 with reason %s", dead, ReasonChanged)
	}
}

func TestPurgeDeletesQueueAndDeadLetters(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 410}, response{status: 503}))
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL))
	h.enqueue(msg("A", 1))
	h.waitCount("dead:rx", 1)
	h.enqueue(msg("B", 1), msg("B", 2))
	h.waitCount("retried:rx", 1)
	p, err := h.eng.Purge("rx")
	if err != nil || p != (Purged{Queued: 2, DeadLetters: 1}) {
		t.Fatalf("Purge = %+v, %v; want 2 queued and 1 dead letter", p, err)
	}
	h.clock.Advance(time.Hour)
	if st, _ := h.eng.Stats(); st.Queued != 0 || st.Endpoints["rx"].DeadLetters != 0 || rx.count() != 2 {
		t.Errorf("after purge: %+v, %d attempts", st, rx.count())
	}
	if _, err := h.eng.Purge("nosuch"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("Purge of an unknown name = %v, want ErrUnknownEndpoint", err)
	}
}

// A name is required: in a bbolt outbox the empty endpoint selects the dead
// letters of every webhook.
func TestPurgeWithoutNameDeletesNothing(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 410}))
	h := newHarness(t, mustOpenBolt(t, filepath.Join(t.TempDir(), "outbox.db")), Options{})
	h.set(endpoint(rx.URL))
	h.enqueue(msg("A", 1))
	h.waitCount("dead:rx", 1)
	if _, err := h.eng.Purge(""); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("Purge of no name = %v, want ErrUnknownEndpoint", err)
	}
	if dead, err := h.eng.DeadLetters("rx", 0); err != nil || len(dead) != 1 {
		t.Errorf("dead letters of rx after Purge(\"\") = %d, %v; want the 1 kept", len(dead), err)
	}
}

func TestLogsOneLinePerFailureReason(t *testing.T) {
	var buf syncBuffer
	rx := newReceiver(t, answers(response{status: 500}))
	h := newHarness(t, NewMemoryStore(), Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	secret := "Bearer s3cret-token"
	h.set(endpoint(rx.URL+"/hook?token=s3cret-token", func(e *Endpoint) {
		e.Ordered = false
		e.Retry = []time.Duration{time.Second, time.Second}
		e.Header = http.Header{"Authorization": {secret}}
	}))
	h.enqueue(msg("A", 1), msg("A", 2), msg("A", 3))
	for i := 1; i <= 2; i++ {
		h.waitCount("retried:rx", 3*i)
		h.clock.advanceToTimer(t)
	}
	h.waitCount("dead:rx", 3)
	rx.setRespond(answers(response{status: 200}))
	h.enqueue(msg("B", 1))
	h.waitCount("delivered:rx", 1)
	h.eng.Close() // attempts log after reporting to the Observer: let them finish

	out := buf.String()
	for line, want := range map[string]int{"webhook delivery failing": 1, "webhook moved to dead letters": 1, "webhook delivery recovered": 1} {
		if got := strings.Count(out, line); got != want {
			t.Errorf("%q logged %d times, want %d:\n%s", line, got, want, out)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "lane") {
		t.Errorf("log leaks a secret or a body:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failingWrites fails Save and Deliver, without writing, while fail is set.
type failingWrites struct {
	Store
	fail atomic.Bool
}

var errDiskBroken = errors.New("disk broken")

func (s *failingWrites) Save(rec *Record) error {
	if s.fail.Load() {
		return errDiskBroken
	}
	return s.Store.Save(rec)
}

func (s *failingWrites) Deliver(rec *Record, keep Retention, done func(error)) {
	if s.fail.Load() {
		done(errDiskBroken)
		return
	}
	s.Store.Deliver(rec, keep, done)
}

// TestLogsStoreFailuresOnceUntilTheyStop checks that failing writes, saves
// and deletes alike, log one line when they start and one when writes work
// again, whatever the store.
func TestLogsStoreFailuresOnceUntilTheyStop(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) {
			var buf syncBuffer
			rx := newReceiver(t, answers(response{status: 500}, response{status: 200}))
			inner, _ := kind.open(t)
			store := &failingWrites{Store: inner}
			store.fail.Store(true)
			h := newHarness(t, store, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			h.set(endpoint(rx.URL))
			h.enqueue(msg("A", 1), msg("A", 2))
			h.waitCount("retried:rx", 1) // its Save failed
			h.clock.advanceToTimer(t)
			h.waitCount("delivered:rx", 2) // their Deletes failed
			store.fail.Store(false)
			h.enqueue(msg("A", 3))
			h.waitCount("delivered:rx", 3)
			if err := h.eng.Close(); err != nil { // commits the last Delete
				t.Fatal(err)
			}
			out := buf.String()
			for line, want := range map[string]int{"webhook outbox write failed": 1, "webhook outbox writes work again": 1} {
				if got := strings.Count(out, line); got != want {
					t.Errorf("%q logged %d times, want %d:\n%s", line, got, want, out)
				}
			}
			if !strings.Contains(out, errDiskBroken.Error()) {
				t.Errorf("the failure's error is not logged:\n%s", out)
			}
		})
	}
}

// TestTuneWhileTrimmingDeadLetters runs Tune against attempts that trim dead
// letters and log the limit; -race checks that the log reads a copy.
func TestTuneWhileTrimmingDeadLetters(t *testing.T) {
	var buf syncBuffer
	rx := newReceiver(t, answers(response{status: 500}))
	h := newHarness(t, NewMemoryStore(), Options{MaxDeadLetters: 1, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Retry, e.Ordered = []time.Duration{}, false }))
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				h.eng.Tune(Options{MaxDeadLetters: 1})
			}
		}
	}()
	h.enqueue(msg("A", 1), msg("A", 2), msg("A", 3))
	h.waitCount("dead:rx", 3)
	close(stop)
	<-stopped
	h.waitCount("dropped:rx:"+ReasonDeadLetters, 2)
	h.eng.Close() // attempts log after reporting to the Observer: let them finish
	if !strings.Contains(buf.String(), "max_dead_letters=1") {
		t.Errorf("the trim is not logged with its limit:\n%s", buf.String())
	}
}
