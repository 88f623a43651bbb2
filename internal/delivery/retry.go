package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultRetry returns the default retry schedule: the delays before the
// 2nd to 8th attempts, after a first attempt made at once (the schedule of
// Svix and of the Standard Webhooks guidance). Each delay gets ±20% jitter.
func DefaultRetry() []time.Duration {
	return []time.Duration{
		5 * time.Second,
		5 * time.Minute,
		30 * time.Minute,
		2 * time.Hour,
		5 * time.Hour,
		10 * time.Hour,
		10 * time.Hour,
	}
}

const (
	// jitter spreads retries so that messages failed together do not all
	// come back in the same instant.
	jitter = 0.2
	// maxRetryAfter bounds what a receiver can ask for, so that one header
	// cannot park a lane for a year.
	maxRetryAfter = 24 * time.Hour
)

// backoff returns the delay before the next attempt of a message that has
// failed attempts times, or false when the schedule is exhausted. rnd, in
// [0,1), picks the jitter; retryAfter is a lower bound asked for by the
// receiver.
func backoff(schedule []time.Duration, attempts int, retryAfter time.Duration, rnd float64) (time.Duration, bool) {
	if attempts < 1 || attempts > len(schedule) {
		return 0, false
	}
	d := time.Duration(float64(schedule[attempts-1]) * (1 - jitter + 2*jitter*rnd))
	return max(d, retryAfter), true
}

// randJitter is the production jitter source.
func randJitter() float64 { return rand.Float64() }

// parseRetryAfter reads a Retry-After value, in seconds or as an HTTP date,
// as a delay from now. Unparseable or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
