package main

import (
	"fmt"
	"strings"
	"time"
)

// idle reports whether nothing waits in the module's pipeline, outbox or
// NATS spool.
func (c *caddyProc) idle() bool {
	m := c.metrics()
	return m["caddy_chat_webhooks_queue_depth"] == 0 && m["caddy_chat_webhooks_pipeline_queued"] == 0 && m["caddy_chat_webhooks_nats_spooled"] == 0
}

// waitDrained waits until the receiver holds want distinct events and the
// module is idle, or the drain timeout; it returns how long it took and
// whether it got there. Caddy's /metrics is read only once the receiver
// has what it waits for (every 100 ms) or has seen nothing new for 3 s
// (every second): scraping costs Caddy CPU, which the proxy scenario
// counts. Nothing queued anywhere and nothing arriving means that what is
// missing was dropped (or lost), not late.
func (e *env) waitDrained(want int) (time.Duration, bool) {
	start := time.Now()
	last, lastChange := -1, start
	var nextScrape time.Time
	for time.Since(start) < *drainWithin {
		n, now := e.rx.distinct(), time.Now()
		if n != last {
			last, lastChange = n, now
		}
		if stalled := now.Sub(lastChange) > 3*time.Second; (n >= want || stalled) && now.After(nextScrape) {
			if e.caddy.idle() {
				if n >= want {
					return time.Since(start), true
				}
				return lastChange.Sub(start), false
			}
			nextScrape = now.Add(100 * time.Millisecond)
			if stalled {
				nextScrape = now.Add(time.Second)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), false
}

// settle waits for the module to be idle, then lets the machine calm down.
func (e *env) settle() {
	e.waitDrained(0)
	time.Sleep(500 * time.Millisecond)
}

// account compares the events sent (one per webhook and successful module
// request) with what the receiver got, de-duplicated, and returns how
// many were lost.
func (e *env) account(name string, sent []string, extra string) int {
	snap := e.rx.snapshot()
	fmt.Printf("%s: %s\n", name, extra)
	totalLost := 0
	for _, w := range webhooks {
		got := snap[w.path()]
		delivered := 0
		for _, t := range sent {
			if got.tokens[t] {
				delivered++
			}
		}
		lost := len(sent) - delivered
		totalLost += lost
		ids := ""
		if w.scheme == "standard" {
			ids = fmt.Sprintf(", distinct webhook-ids %d", len(got.ids))
		}
		fmt.Printf("  %-9s sent %d  delivered %d (received %d, duplicates %d%s)  lost %d\n",
			w.path(), len(sent), delivered, got.total, got.total-len(got.tokens), ids, lost)
	}
	m := e.caddy.metrics()
	fmt.Printf("  lost total %d; exchanges dropped: pipeline_full %.0f, shutting_down %.0f; events dropped %.0f; dead-lettered %.0f\n",
		totalLost, m[`caddy_chat_webhooks_exchanges_dropped_total{reason="pipeline_full"}`],
		m[`caddy_chat_webhooks_exchanges_dropped_total{reason="shutting_down"}`], sumPrefix(m, "caddy_chat_webhooks_events_dropped_total"),
		sumPrefix(m, "caddy_chat_webhooks_events_dead_lettered_total"))
	return totalLost
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	s := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}
