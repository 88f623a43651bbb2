package delivery

import (
	"net/http"
	"testing"
	"time"
)

func TestDefaultRetryIsTheSvixSchedule(t *testing.T) {
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	got := DefaultRetry()
	if len(got) != len(want) {
		t.Fatalf("DefaultRetry() has %d delays, want %d (8 attempts in all)", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delay %d = %s, want %s", i, got[i], want[i])
		}
	}
	got[0] = 0
	if DefaultRetry()[0] != 5*time.Second {
		t.Error("DefaultRetry returns a shared slice")
	}
}

func TestBackoffJitterStaysWithin20Percent(t *testing.T) {
	schedule := DefaultRetry()
	for attempts := 1; attempts <= len(schedule); attempts++ {
		base := schedule[attempts-1]
		lo, hi := base*8/10, base*12/10
		for _, rnd := range []float64{0, 0.5, 0.999999} {
			d, ok := backoff(schedule, attempts, 0, rnd)
			if !ok || d < lo || d > hi {
				t.Errorf("attempt %d rnd %v: %s, %v; want within [%s, %s]", attempts, rnd, d, ok, lo, hi)
			}
		}
		for range 1000 {
			if d, _ := backoff(schedule, attempts, 0, randJitter()); d < lo || d > hi {
				t.Fatalf("attempt %d: %s outside [%s, %s]", attempts, d, lo, hi)
			}
		}
	}
	if d, _ := backoff(schedule, 1, 0, 0); d != 4*time.Second {
		t.Errorf("lowest jitter of 5s = %s, want 4s", d)
	}
}

func TestBackoff(t *testing.T) {
	schedule := []time.Duration{time.Second, time.Minute}
	tests := []struct {
		name       string
		schedule   []time.Duration
		attempts   int
		retryAfter time.Duration
		want       time.Duration
		wantOK     bool
	}{
		{"first retry", schedule, 1, 0, time.Second, true},
		{"last retry", schedule, 2, 0, time.Minute, true},
		{"exhausted", schedule, 3, 0, 0, false},
		{"retry off", []time.Duration{}, 1, 0, 0, false},
		{"retry-after longer wins", schedule, 1, time.Hour, time.Hour, true},
		{"schedule longer wins", schedule, 2, time.Second, time.Minute, true},
		{"retry-after does not add attempts", schedule, 3, time.Hour, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := backoff(tt.schedule, tt.attempts, tt.retryAfter, 0.5)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("backoff = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "120", 2 * time.Minute},
		{"seconds with spaces", " 7 ", 7 * time.Second},
		{"http date", now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{"past date", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"negative", "-5", 0},
		{"capped", "999999999999", maxRetryAfter},
		{"garbage", "soon", 0},
		{"empty", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRetryAfter(tt.value, now); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
}
