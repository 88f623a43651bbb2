package delivery

import (
	"errors"
	"testing"
	"time"
)

// TestRateLimitSpacesAttemptsAndDropsNothing enqueues a burst for an
// endpoint limited to 5 per second: every message is delivered, one every
// 200ms of the engine's clock, and the stats show the limit and the wait.
func TestRateLimitSpacesAttemptsAndDropsNothing(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 200}))
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Ordered, e.RateLimit, e.RatePeriod = false, 5, time.Second }))
	const n = 20
	var msgs []Message
	for i := range n {
		msgs = append(msgs, msg("A", i))
	}
	h.enqueue(msgs...)
	start := h.clock.Now()
	for i := 1; i < n; i++ {
		h.waitCount("delivered:rx", i)
		if i == 1 {
			s, _ := h.eng.Stats()
			if e := s.Endpoints["rx"]; e.RateLimit != "5/1s" || e.RateLimitedUntil == nil || !e.RateLimitedUntil.Equal(start.Add(200*time.Millisecond)) {
				t.Errorf("stats %+v: want rate_limit 5/1s, waiting until +200ms", e)
			}
		}
		if d := h.clock.advanceToTimer(t); d != 200*time.Millisecond {
			t.Fatalf("wait before attempt %d: %s, want 200ms", i+1, d)
		}
	}
	h.waitCount("delivered:rx", n)
	if got := rx.count(); got != n {
		t.Fatalf("%d requests, want %d", got, n)
	}
	elapsed := h.clock.Now().Sub(start)
	rate := float64(n-1) / elapsed.Seconds()
	if rate < 4.5 || rate > 5.5 {
		t.Errorf("%d attempts in %s: %.2f/s, want 5/s within 10%%", n, elapsed, rate)
	}
	if got := h.obs.get("dropped:rx:" + ReasonQueueFull); got != 0 {
		t.Errorf("%d dropped", got)
	}
}

// TestLimiterKeepsItsCadence checks the limiter on its own: a dispatcher
// waking late keeps the cadence, an idle endpoint does not save up turns.
func TestLimiterKeepsItsCadence(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	l := limiter{}
	l.set(10, time.Second) // every 100ms
	steps := []struct {
		now      time.Time
		wantWait time.Time
	}{
		{ms(0), time.Time{}},
		{ms(50), ms(100)},
		{ms(130), time.Time{}}, // 30ms late: the next turn stays at 200
		{ms(190), ms(200)},
		{ms(200), time.Time{}},
		{ms(5000), time.Time{}}, // idle: one turn, not 48
		{ms(5001), ms(5100)},
	}
	for _, s := range steps {
		got := l.wait(s.now)
		if !got.Equal(s.wantWait) {
			t.Fatalf("at %s wait until %s, want %s", s.now.Sub(t0), got.Sub(t0), s.wantWait.Sub(t0))
		}
		if got.IsZero() {
			l.take(s.now)
		}
	}
}

// TestDisableAfterStopsAttemptsUntilEnabled fails every attempt for an
// hour: the endpoint is then disabled (no more attempts, the message kept,
// the observer told), and Enable delivers it.
func TestDisableAfterStopsAttemptsUntilEnabled(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 500}))
	h := newHarness(t, NewMemoryStore(), Options{})
	every := make([]time.Duration, 20)
	for i := range every {
		every[i] = 10 * time.Minute
	}
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Retry, e.DisableAfter = every, time.Hour }))
	h.enqueue(msg("A", 1))
	for i := 1; i <= 6; i++ {
		h.waitCount("failed:rx", i)
		if h.obs.get("disabled:rx") != 0 {
			t.Fatalf("disabled after %d failures, %s of them", i, time.Duration(i-1)*10*time.Minute)
		}
		h.clock.advanceToTimer(t)
	}
	h.waitCount("failed:rx", 7) // an hour after the first failure
	h.waitCount("disabled:rx", 1)
	s, _ := h.eng.Stats()
	if e := s.Endpoints["rx"]; e.DisabledAt == nil || e.Queued != 1 || e.FailingSince == nil {
		t.Fatalf("stats %+v: want disabled, the message still queued", e)
	}

	// Its retry falls due. A message to another webhook, delivered after
	// that, shows the dispatcher has passed over rx at this time.
	other := newReceiver(t, answers(response{status: 200}))
	h.set(endpoint(other.URL, func(e *Endpoint) { e.Name = "other" }))
	h.clock.Advance(24 * time.Hour)
	barrier := msg("B", 1)
	barrier.Endpoint = "other"
	h.enqueue(barrier)
	h.waitCount("delivered:other", 1)
	if s, _ := h.eng.Stats(); s.Endpoints["rx"].InFlight != 0 || h.obs.get("failed:rx") != 7 {
		t.Fatalf("attempted while disabled: %+v", s.Endpoints["rx"])
	}
	rx.setRespond(answers(response{status: 200}))
	if was, err := h.eng.Enable("rx"); err != nil || !was {
		t.Fatalf("Enable = %v, %v; want true", was, err)
	}
	h.waitCount("delivered:rx", 1)
	h.waitCount("enabled:rx", 1)
	if got := rx.count(); got != 8 || h.obs.get("failed:rx") != 7 {
		t.Fatalf("%d attempts, %d failed; want 7 failed before the disable and 1 delivered after Enable", got, h.obs.get("failed:rx"))
	}
	if s, _ := h.eng.Stats(); s.Endpoints["rx"].DisabledAt != nil || s.Endpoints["rx"].FailingSince != nil {
		t.Errorf("stats after enabling %+v", s.Endpoints["rx"])
	}
	if _, err := h.eng.Enable("nope"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("Enable of an unknown webhook: %v", err)
	}
}

// TestASuccessRestartsTheDisableClock checks that only an unbroken run of
// failures disables: a success in between starts the hour over.
func TestASuccessRestartsTheDisableClock(t *testing.T) {
	var h health
	t0 := time.Unix(0, 0)
	if h.failedAt(t0, "HTTP 500", time.Hour) {
		t.Fatal("disabled at the first failure")
	}
	h.succeeded(t0.Add(50 * time.Minute))
	if h.failedAt(t0.Add(70*time.Minute), "HTTP 500", time.Hour) {
		t.Fatal("disabled though a success came 20 minutes before")
	}
	if !h.failedAt(t0.Add(130*time.Minute), "HTTP 500", time.Hour) {
		t.Fatal("not disabled after an hour of failures")
	}
}
