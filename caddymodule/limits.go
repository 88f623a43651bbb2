package caddymodule

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Bounds of the numeric options. The Caddyfile parser and Provision check
// the same ones, so JSON configuration gets the same answers as the
// Caddyfile, and nothing in configuration can panic the request path or
// make a reload hang.
const (
	maxCaptureLimit     = 64 << 20
	maxQueueSize        = 1 << 20
	maxWorkers          = 256
	maxQueuedLimit      = 10_000_000
	maxQueuedBytesLimit = 64 << 30
	maxDeadLettersLimit = 1_000_000
	maxStateEntries     = 10_000_000
	maxStateTTL         = 365 * 24 * time.Hour
	maxTimeout          = 10 * time.Minute
	maxRetryDelay       = 7 * 24 * time.Hour
	maxRetries          = 32
	maxConcurrencyLimit = 1000
	maxLookupTimeout    = time.Minute
	maxLookupCache      = 24 * time.Hour
	maxBreakerPeriod    = 24 * time.Hour
	maxKeepDelivered    = 365 * 24 * time.Hour
	maxKeptMessages     = 10_000_000
	maxKeptBytes        = 64 << 30
	maxRate             = 1_000_000
	maxRatePeriod       = 24 * time.Hour
	maxDisableAfter     = 365 * 24 * time.Hour
)

// inRange checks that a number option is unset (0, the default) or in
// [1, most].
func inRange[N int | int64](opt string, v, most N, example string) error {
	if v < 0 || v > most {
		return fmt.Errorf("%s %d: write a number from 1 to %d, such as %s, or leave it out for the default", opt, v, most, example)
	}
	return nil
}

// durationIn checks that a duration option is unset (0) or in (0, most].
func durationIn(opt string, v caddy.Duration, most time.Duration, example string) error {
	if v < 0 || time.Duration(v) > most {
		return fmt.Errorf("%s %s: write a duration up to %s, such as %s, or leave it out for the default", opt, time.Duration(v), most, example)
	}
	return nil
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// check validates the app's options.
func (a *App) check() error {
	if ob := a.Outbox; ob != nil {
		switch {
		case ob.Kind != "" && ob.Kind != "bbolt" && ob.Kind != "memory" && ob.Kind != "nats":
			return fmt.Errorf("outbox %q: write bbolt [path], memory or nats <url...>", ob.Kind)
		case ob.Kind == "nats" && ob.NATS == nil:
			return fmt.Errorf("outbox nats needs its servers: \"nats\": {\"urls\": [\"nats://127.0.0.1:4222\"]}")
		case ob.Kind != "nats" && ob.NATS != nil:
			return fmt.Errorf("outbox %s takes no nats settings", ob.Kind)
		case ob.NATS != nil:
			if err := ob.NATS.check(); err != nil {
				return err
			}
		}
	}
	err := firstError(
		inRange("queue_size", a.QueueSize, maxQueueSize, "4096"),
		inRange("workers", a.Workers, maxWorkers, "4"),
		inRange("max_queued", a.MaxQueued, maxQueuedLimit, "100000"),
		inRange("max_queued_bytes", a.MaxQueuedBytes, maxQueuedBytesLimit, "268435456 (256MiB)"),
		inRange("max_dead_letters", a.MaxDeadLetters, maxDeadLettersLimit, "10000"),
	)
	if err != nil {
		return err
	}
	if cs := a.ConversationState; cs != nil {
		if err := firstError(
			inRange("conversation_state entries", cs.Entries, maxStateEntries, "10000"),
			durationIn("conversation_state ttl", cs.TTL, maxStateTTL, "24h"),
		); err != nil {
			return err
		}
	}
	if k := a.KeepDelivered; k != nil {
		if err := firstError(
			durationIn("keep_delivered", k.For, maxKeepDelivered, "24h"),
			inRange("keep_delivered messages", k.MaxMessages, maxKeptMessages, "1000"),
			inRange("keep_delivered size", k.MaxBytes, maxKeptBytes, "16777216 (16MiB)"),
		); err != nil {
			return err
		}
	}
	if b := a.Breaker; b != nil {
		if b.FailureRatio < 0 || b.FailureRatio > 1 {
			return fmt.Errorf("breaker failure_ratio %g: write a share between 0 and 1, such as 0.7", b.FailureRatio)
		}
		return firstError(
			durationIn("breaker window", b.Window, maxBreakerPeriod, "30s"),
			durationIn("breaker cooldown", b.Cooldown, maxBreakerPeriod, "30s"),
			durationIn("breaker max_cooldown", b.MaxCooldown, maxBreakerPeriod, "10m"),
			inRange("breaker min_requests", b.MinRequests, 1_000_000, "10"),
		)
	}
	return nil
}

// check validates the handler's own options; its webhooks check
// themselves.
func (h *Handler) check() error {
	if err := inRange("max_capture", h.MaxCapture, maxCaptureLimit, "1048576 (1MiB)"); err != nil {
		return err
	}
	if h.Record != nil {
		if err := h.Record.check(); err != nil {
			return err
		}
	}
	if u := h.UserInfo; u != nil {
		return firstError(
			durationIn("user_info timeout", u.Timeout, maxLookupTimeout, "5s"),
			durationIn("user_info cache", u.Cache, maxLookupCache, "10m"),
		)
	}
	return nil
}

// check validates what can be known of a webhook before placeholders are
// resolved.
func (wh *Webhook) check() error {
	if !strings.Contains(wh.URL, "{") {
		if u, err := url.Parse(wh.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook URL must be an absolute http:// or https:// URL, such as https://hooks.example.com/in")
		}
	}
	switch wh.Ordering {
	case "", "conversation", "none":
	default:
		return fmt.Errorf("ordering %q: write conversation or none", wh.Ordering)
	}
	if len(wh.Retry) > maxRetries {
		return fmt.Errorf("retry: %d delays; at most %d", len(wh.Retry), maxRetries)
	}
	for _, d := range wh.Retry {
		if err := durationIn("retry delay", d, maxRetryDelay, "5m"); err != nil {
			return err
		}
	}
	_, _, err := wh.rate()
	return firstError(
		durationIn("timeout", wh.Timeout, maxTimeout, "15s"),
		inRange("max_concurrency", wh.MaxConcurrency, maxConcurrencyLimit, "10"),
		durationIn("disable_after", wh.DisableAfter, maxDisableAfter, "120h"),
		err,
	)
}

// rate reads RateLimit, "<n>/<duration>" such as 10/1s; empty is no limit.
func (wh *Webhook) rate() (int, time.Duration, error) {
	if wh.RateLimit == "" {
		return 0, 0, nil
	}
	bad := fmt.Errorf("rate_limit %q: write <n>/<duration> with n up to %d and a duration up to %s, such as 10/1s or 600/1m", wh.RateLimit, maxRate, maxRatePeriod)
	ns, ds, ok := strings.Cut(wh.RateLimit, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n <= 0 || n > maxRate {
		return 0, 0, bad
	}
	d, err := caddy.ParseDuration(ds)
	if err != nil || d <= 0 || d > maxRatePeriod || d/time.Duration(n) <= 0 {
		return 0, 0, bad
	}
	return n, d, nil
}
