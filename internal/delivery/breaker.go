package delivery

import "time"

// BreakerConfig tunes the circuit breaker kept per endpoint. While it is
// open, messages of that endpoint wait: they are neither attempted, nor
// counted as attempts, nor dropped. Zero fields take the defaults.
type BreakerConfig struct {
	// Window is the sample period over which failures are counted.
	// Default 30s.
	Window time.Duration
	// MinRequests is the number of attempts in a window before the breaker
	// may open. Default 10.
	MinRequests int
	// FailureRatio opens the breaker when this share of a window's attempts
	// failed. Default 0.7.
	FailureRatio float64
	// Cooldown is how long the breaker stays open before one probe attempt
	// is let through; it doubles after every failed probe. Default 30s.
	Cooldown time.Duration
	// MaxCooldown caps the doubling. Default 10m.
	MaxCooldown time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Window <= 0 {
		c.Window = 30 * time.Second
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 10
	}
	if c.FailureRatio <= 0 || c.FailureRatio > 1 {
		c.FailureRatio = 0.7
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 30 * time.Second
	}
	if c.MaxCooldown < c.Cooldown {
		c.MaxCooldown = max(10*time.Minute, c.Cooldown)
	}
	return c
}

// Breaker states as reported in EndpointStats.
const (
	BreakerClosed   = "closed"
	BreakerOpen     = "open"
	BreakerHalfOpen = "half-open"
)

// breaker is one endpoint's circuit breaker. It is not safe for concurrent
// use; the engine guards it with its lock.
type breaker struct {
	cfg         BreakerConfig
	state       string
	windowStart time.Time
	total       int
	failed      int
	openUntil   time.Time
	cooldown    time.Duration
	probing     bool
}

func newBreaker(cfg BreakerConfig) *breaker {
	return &breaker{cfg: cfg, state: BreakerClosed}
}

// retune applies new settings at once: to the current window's counts and
// to the next opening. A breaker open now keeps its wait, shortened to the
// new MaxCooldown if that is less.
func (b *breaker) retune(cfg BreakerConfig) {
	b.cfg = cfg
	if b.cooldown > cfg.MaxCooldown {
		b.openUntil = b.openUntil.Add(cfg.MaxCooldown - b.cooldown)
		b.cooldown = cfg.MaxCooldown
	}
}

// allow reports whether an attempt may start now. When it may not, until is
// when to ask again; zero means a probe is in flight and its outcome will
// decide.
func (b *breaker) allow(now time.Time) (ok bool, until time.Time) {
	switch b.state {
	case BreakerOpen:
		if now.Before(b.openUntil) {
			return false, b.openUntil
		}
		b.state = BreakerHalfOpen
		fallthrough
	case BreakerHalfOpen:
		if b.probing {
			return false, time.Time{}
		}
		b.probing = true
	}
	return true, time.Time{}
}

// record feeds the outcome of one attempt and returns the state before it,
// so that the caller can log transitions.
func (b *breaker) record(now time.Time, ok bool) (was string) {
	was = b.state
	switch b.state {
	case BreakerHalfOpen:
		if ok {
			b.state, b.cooldown = BreakerClosed, 0
			b.reset(now)
		} else {
			b.open(now, min(2*b.cooldown, b.cfg.MaxCooldown))
		}
	case BreakerClosed:
		if now.Sub(b.windowStart) > b.cfg.Window {
			b.reset(now)
		}
		b.total++
		if !ok {
			b.failed++
		}
		if b.total >= b.cfg.MinRequests && float64(b.failed) >= b.cfg.FailureRatio*float64(b.total) {
			b.open(now, b.cfg.Cooldown)
		}
	}
	// Results arriving while open come from attempts started before it
	// opened; they carry no news about the receiver's recovery.
	return was
}

func (b *breaker) open(now time.Time, cooldown time.Duration) {
	b.state, b.cooldown, b.probing = BreakerOpen, cooldown, false
	b.openUntil = now.Add(cooldown)
}

func (b *breaker) reset(now time.Time) {
	b.windowStart, b.total, b.failed, b.probing = now, 0, 0, false
}
