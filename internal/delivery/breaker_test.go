package delivery

import (
	"testing"
	"time"
)

func TestBreakerOpensHalfOpensAndCloses(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBreaker(BreakerConfig{}.withDefaults())
	for i := range 9 {
		b.record(t0.Add(time.Duration(i)*time.Second), false)
	}
	if b.state != BreakerClosed {
		t.Fatalf("open after 9 requests, want at least 10")
	}
	b.record(t0.Add(9*time.Second), false)
	if b.state != BreakerOpen {
		t.Fatalf("state %s after 10 failures, want open", b.state)
	}
	opened := t0.Add(9 * time.Second)
	if ok, until := b.allow(opened.Add(29 * time.Second)); ok || !until.Equal(opened.Add(30*time.Second)) {
		t.Fatalf("allow during cool-down = %v until %s", ok, until)
	}
	probeAt := opened.Add(30 * time.Second)
	if ok, _ := b.allow(probeAt); !ok {
		t.Fatal("no probe after the cool-down")
	}
	if ok, until := b.allow(probeAt); ok || !until.IsZero() {
		t.Fatal("a second request was let through while the probe is in flight")
	}
	// A failed probe re-opens for twice as long.
	b.record(probeAt, false)
	if ok, until := b.allow(probeAt.Add(59 * time.Second)); ok || !until.Equal(probeAt.Add(60*time.Second)) {
		t.Fatalf("after a failed probe: allow = %v until %s, want closed until +60s", ok, until)
	}
	probeAt = probeAt.Add(60 * time.Second)
	if ok, _ := b.allow(probeAt); !ok {
		t.Fatal("no second probe")
	}
	b.record(probeAt, true)
	if b.state != BreakerClosed {
		t.Fatalf("state %s after a good probe, want closed", b.state)
	}
	if ok, _ := b.allow(probeAt); !ok {
		t.Fatal("closed breaker refuses")
	}
}

func TestBreakerStaysClosed(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		results []bool // one per second
	}{
		{"below 70% failures", []bool{false, false, false, false, false, false, true, true, true, true, true, true}},
		{"fewer than 10 requests", []bool{false, false, false, false, false, false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(BreakerConfig{}.withDefaults())
			for i, ok := range tt.results {
				b.record(t0.Add(time.Duration(i)*time.Second), ok)
			}
			if b.state != BreakerClosed {
				t.Errorf("state %s, want closed", b.state)
			}
		})
	}
	b := newBreaker(BreakerConfig{}.withDefaults())
	for i := range 9 {
		b.record(t0, i == 0)
	}
	b.record(t0.Add(31*time.Second), false) // new window: 9 old results forgotten
	if b.state != BreakerClosed {
		t.Errorf("failures from an old window opened the breaker")
	}
}

func TestBreakerRetuneShortensAnOpenWaitToTheNewMaximum(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		cfg       BreakerConfig
		wantUntil time.Duration // after t0, where it opened
		wantNext  time.Duration // the wait after a failed probe
	}{
		{"longer maximum keeps the wait", BreakerConfig{Cooldown: 5 * time.Second, MaxCooldown: time.Hour}, 30 * time.Second, 60 * time.Second},
		{"shorter maximum cuts the wait", BreakerConfig{Cooldown: 5 * time.Second, MaxCooldown: 10 * time.Second}, 10 * time.Second, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(BreakerConfig{}.withDefaults())
			for range 10 {
				b.record(t0, false)
			}
			b.retune(tt.cfg.withDefaults())
			if ok, until := b.allow(t0); ok || !until.Equal(t0.Add(tt.wantUntil)) {
				t.Fatalf("allow = %v until %s, want open until +%s", ok, until.Sub(t0), tt.wantUntil)
			}
			probe := t0.Add(tt.wantUntil)
			if ok, _ := b.allow(probe); !ok {
				t.Fatal("no probe at the end of the wait")
			}
			b.record(probe, false)
			if _, until := b.allow(probe); !until.Equal(probe.Add(tt.wantNext)) {
				t.Errorf("after a failed probe open until +%s, want +%s", until.Sub(probe), tt.wantNext)
			}
		})
	}
}
