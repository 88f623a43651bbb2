package delivery

import (
	"fmt"
	"time"
)

// health is what an endpoint did since the engine started, for Stats and
// auto-disable. The engine's lock guards it.
type health struct {
	delivered, failed, retried int64
	lastSuccess, lastFailure   time.Time
	lastError                  string
	// failingSince is the first failure since the last success; zero while
	// the last attempt succeeded.
	failingSince time.Time
	// disabledAt is when Endpoint.DisableAfter disabled the endpoint; zero
	// while it is enabled.
	disabledAt time.Time
}

// succeeded notes a delivered attempt.
func (h *health) succeeded(now time.Time) {
	h.delivered++
	h.lastSuccess, h.failingSince = now, time.Time{}
}

// failedAt notes a failed attempt and reports whether it disables the
// endpoint: every attempt has failed for disableAfter (0: never).
func (h *health) failedAt(now time.Time, detail string, disableAfter time.Duration) bool {
	h.failed++
	h.lastFailure, h.lastError = now, detail
	if h.failingSince.IsZero() {
		h.failingSince = now
	}
	if disableAfter <= 0 || !h.disabledAt.IsZero() || now.Sub(h.failingSince) < disableAfter {
		return false
	}
	h.disabledAt = now
	return true
}

// enable ends a disablement and starts the failure time over, so that
// DisableAfter counts from the next failure.
func (h *health) enable() {
	h.disabledAt, h.failingSince = time.Time{}, time.Time{}
}

// limiter spaces an endpoint's attempts evenly, n per period: a token
// bucket that holds one token, so that no window of the period sees more
// than n+1 attempts however long the endpoint was idle. Messages wait for
// their turn in their lanes; nothing is dropped.
type limiter struct {
	n      int
	period time.Duration
	next   time.Time // when the next attempt may start
}

// set applies a new rate; 0 removes the limit.
func (l *limiter) set(n int, period time.Duration) {
	l.n, l.period = n, period
}

func (l *limiter) every() time.Duration { return l.period / time.Duration(l.n) }

// wait reports when the next attempt may start, zero if now.
func (l *limiter) wait(now time.Time) time.Time {
	if l.n <= 0 || !now.Before(l.next) {
		return time.Time{}
	}
	return l.next
}

// take spends the turn of an attempt starting now. A dispatcher that
// wakes a little late keeps the cadence; one idle for longer starts over.
func (l *limiter) take(now time.Time) {
	if l.n <= 0 {
		return
	}
	every := l.every()
	if now.Sub(l.next) >= every {
		l.next = now
	}
	l.next = l.next.Add(every)
}

// String writes the rate as configured, e.g. "10/1s"; empty when there is
// no limit.
func (l *limiter) String() string {
	if l.n <= 0 {
		return ""
	}
	return fmt.Sprintf("%d/%s", l.n, l.period)
}

// Enable re-enables an endpoint that DisableAfter disabled: its queued
// messages are attempted again, and the failure time starts over. It
// reports whether the endpoint was disabled, and fails with
// ErrUnknownEndpoint for a name that is not configured.
func (e *Engine) Enable(endpoint string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.endpoints[endpoint]
	if st == nil || st.cfg == nil {
		return false, fmt.Errorf("%w %q is configured", ErrUnknownEndpoint, endpoint)
	}
	was := !st.health.disabledAt.IsZero()
	st.health.enable()
	if was {
		e.log.Info("webhook re-enabled", "endpoint", endpoint)
		e.obs.Disabled(endpoint, st.schema, false)
	}
	e.poke()
	return was, nil
}
