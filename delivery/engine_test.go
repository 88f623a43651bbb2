package delivery

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
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
	if d := h.clock.advanceToTimer(t); d != 30*time.Second {
		t.Fatalf("next wake in %s, want the 30s cool-down", d)
	}
	if st, _ := h.eng.Stats(); rx.count() != 10 {
		t.Fatalf("%d attempts while open (stats %+v), want 10", rx.count(), st)
	}
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
		{"unknown endpoint", Message{ID: "1", Endpoint: "nope", Body: []byte(`{}`)}, "unknown endpoint"},
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

func TestMessagesWaitForTheirEndpoint(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 503}))
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL))
	h.enqueue(msg("A", 1))
	h.waitCount("retried:rx", 1)
	h.eng.RemoveEndpoint("rx")
	if err := h.eng.Enqueue(t.Context(), msg("A", 2)); !errors.Is(err, ErrUnknownEndpoint) {
		t.Fatalf("Enqueue to a removed endpoint = %v, want ErrUnknownEndpoint", err)
	}
	h.clock.Advance(time.Hour)
	if st, _ := h.eng.Stats(); rx.count() != 1 || st.Endpoints["rx"].Configured || st.Endpoints["rx"].Queued != 1 {
		t.Fatalf("%d attempts, stats %+v; want the message to wait, counted", rx.count(), st)
	}
	// Setting it again, with changed settings as a reload would, resumes.
	rx.setRespond(answers(response{status: 200}))
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Timeout = time.Second }))
	h.waitCount("delivered:rx", 1)
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

// failingWrites fails Save and Delete, without writing, while fail is set.
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

func (s *failingWrites) Delete(seq uint64, done func(error)) {
	if s.fail.Load() {
		done(errDiskBroken)
		return
	}
	s.Store.Delete(seq, done)
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
