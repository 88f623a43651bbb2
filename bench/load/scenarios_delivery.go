package main

import (
	"fmt"
	"strings"
	"time"
)

func (e *env) deliveryScenario() error {
	fmt.Printf("\n== delivery: end to end with the bbolt outbox\n")
	e.saturatedDelivery()
	before := e.caddy.metrics()
	e.pacedDelivery()
	m := e.caddy.metrics()
	var buckets []string
	for _, le := range []string{"0.001", "0.0025", "0.005", "0.01", "0.025", "0.1"} {
		k := `caddy_chat_webhooks_delivery_latency_seconds_bucket{le="` + le + `"}`
		buckets = append(buckets, fmt.Sprintf("<=%ss: %.0f", le, m[k]-before[k]))
	}
	fmt.Printf("  caddy_chat_webhooks_delivery_latency_seconds (this phase): %s of %.0f\n", strings.Join(buckets, ", "),
		m["caddy_chat_webhooks_delivery_latency_seconds_count"]-before["caddy_chat_webhooks_delivery_latency_seconds_count"])
	return nil
}

// deliveryFigures is what one delivery phase measured: distinct events
// delivered per second from the first request to the last arrival, and
// the delivery latency (end of response -> receiver) of first arrivals.
type deliveryFigures struct {
	perSec   float64
	p50, p99 time.Duration
	lost     int
}

// saturatedDelivery loads the module site as fast as the clients go, then
// waits until the outbox is drained.
func (e *env) saturatedDelivery() deliveryFigures {
	e.settle()
	e.rx.reset()
	before := e.caddy.metrics()
	start := time.Now()
	r := e.load(loadSpec{url: e.moduleURL, clients: *conc, d: *duration})
	took, ok := e.waitDrained(len(webhooks) * r.ok)
	n, lastAt, lat := e.rx.summary()
	after := e.caddy.metrics()
	f := deliveryFigures{perSec: float64(n) / lastAt.Sub(start).Seconds(), p50: pct(lat, .5), p99: pct(lat, .99)}
	fmt.Printf("saturated: %d requests in %s (%.0f req/s) -> %d events delivered in %.2fs from the first request (%.0f events/s); drained %.2fs after the load (ok=%t)\n",
		r.ok, r.elapsed.Round(time.Millisecond), r.rps(), n, lastAt.Sub(start).Seconds(), f.perSec, took.Seconds(), ok)
	fmt.Printf("saturated delivery latency (end of response -> receiver): p50 %s p99 %s (n=%d); pipeline_full drops %.0f\n",
		ms(f.p50), ms(f.p99), len(lat),
		after[`caddy_chat_webhooks_exchanges_dropped_total{reason="pipeline_full"}`]-before[`caddy_chat_webhooks_exchanges_dropped_total{reason="pipeline_full"}`])
	f.lost = e.account("saturated accounting", r.tokens(), "")
	return f
}

// pacedDelivery loads the module site at -rate requests/s with a healthy
// receiver: the latency of one event.
func (e *env) pacedDelivery() deliveryFigures {
	e.settle()
	e.rx.reset()
	start := time.Now()
	r := e.load(loadSpec{url: e.moduleURL, clients: *conc, d: *duration, perSec: float64(*rate)})
	e.waitDrained(len(webhooks) * r.ok)
	n, lastAt, lat := e.rx.summary()
	f := deliveryFigures{perSec: float64(n) / lastAt.Sub(start).Seconds(), p50: pct(lat, .5), p99: pct(lat, .99)}
	fmt.Printf("paced %d req/s (%d requests, %d events sent, %d delivered in %.2fs: %.0f events/s): delivery latency p50 %s p90 %s p99 %s (n=%d)\n",
		*rate, r.ok, len(webhooks)*r.ok, n, lastAt.Sub(start).Seconds(), f.perSec, ms(f.p50), ms(pct(lat, .9)), ms(f.p99), len(lat))
	f.lost = e.account("paced accounting", r.tokens(), "")
	return f
}

func (e *env) backlogScenario() error {
	fmt.Printf("\n== backlog: %d requests (%d events) while the receiver is down\n", *backlogN, len(webhooks)**backlogN)
	e.settle()
	time.Sleep(2 * time.Second) // let the idle RSS settle
	idle := e.caddy.rssKiB()
	e.rx.down()
	e.rx.reset()
	start := time.Now()
	r := e.load(loadSpec{url: e.moduleURL, clients: *conc, d: 10 * time.Minute, limit: *backlogN, perSec: float64(*backlogRate)})
	want := len(webhooks) * r.ok
	// wait until everything is in the outbox
	var depth float64
	for i := 0; i < 600; i++ {
		if depth = e.caddy.queueDepth(); depth >= float64(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	rss := e.caddy.rssKiB()
	fmt.Printf("sent %d requests in %.1fs; queued %.0f events; RSS idle %.1f MiB, with backlog %.1f MiB: +%.1f MiB\n",
		r.ok, time.Since(start).Seconds(), depth, float64(idle)/1024, float64(rss)/1024, float64(rss-idle)/1024)
	if err := e.rx.up(); err != nil {
		return err
	}
	up := time.Now()
	for time.Since(up) < *drainWithin && e.rx.distinct() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	first := time.Since(up)
	_, ok := e.waitDrained(want)
	fmt.Printf("receiver up: first delivery after %.2fs (breaker cooldown), all delivered %.2fs after up (ok=%t): %.0f events/s once flowing\n",
		first.Seconds(), time.Since(up).Seconds(), ok, float64(want)/(time.Since(up)-first).Seconds())
	e.account("backlog accounting", r.tokens(), "")
	return nil
}
