package main

import (
	"fmt"
	"time"
)

// drainedPhase is a module phase that ended only when the outbox had
// drained.
type drainedPhase struct {
	result                     // as the clients saw it
	delivered    int           // distinct events the receiver got
	complete     bool          // every event arrived and the module is idle
	untilDrained time.Duration // from the first request to the last delivery
	cpu          time.Duration // Caddy's, over the load and the drain
}

func (d drainedPhase) rpsDrained() float64 { return float64(d.ok) / d.untilDrained.Seconds() }

// moduleDrained runs s against the module site and waits until every
// event is delivered, measuring Caddy's CPU time over both.
func (e *env) moduleDrained(s loadSpec) drainedPhase {
	e.rx.reset()
	c0 := e.caddy.cpu()
	start := time.Now()
	r := e.load(s)
	_, ok := e.waitDrained(len(webhooks) * r.ok)
	c1 := e.caddy.cpu()
	n, last, _ := e.rx.summary()
	return drainedPhase{result: r, delivered: n, complete: ok, untilDrained: max(last.Sub(start), r.elapsed), cpu: c1 - c0}
}

func mergeDrained(ds []drainedPhase) drainedPhase {
	var out drainedPhase
	rs := make([]result, len(ds))
	for i, d := range ds {
		rs[i] = d.result
		out.delivered += d.delivered
		out.untilDrained += d.untilDrained
		out.cpu += d.cpu
	}
	out.result = merge(rs)
	return out
}

// warmUp sends load to both sites for a moment, then lets the module drain.
func (e *env) warmUp() {
	for _, url := range []string{e.plainURL, e.moduleURL} {
		e.load(loadSpec{url: url, clients: *conc, d: min(2*time.Second, *duration)})
	}
	e.settle()
}

func (e *env) proxyScenario() error {
	fmt.Printf("\n== proxy: plain reverse_proxy vs the same with chat_webhooks, %d clients, %s of load per phase; a module phase ends when the outbox has drained\n", *conc, *duration)
	e.warmUp()
	var (
		plain    []result
		module   []drainedPhase
		plainCPU time.Duration
	)
	for i := range *rounds {
		c0 := e.caddy.cpu()
		p := e.load(loadSpec{url: e.plainURL, clients: *conc, d: *duration})
		c1 := e.caddy.cpu()
		plainCPU += c1 - c0
		e.settle()
		m := e.moduleDrained(loadSpec{url: e.moduleURL, clients: *conc, d: *duration})
		fmt.Printf("round %d: plain  %8.0f req/s %s (failed %d); Caddy CPU %s per request\n",
			i+1, p.rps(), p50p99(p.latency), p.failed, us(per(c1-c0, p.ok)))
		fmt.Printf("         module %8.0f req/s until drained (%.2fs load + %.2fs drain; %.0f req/s under load) %s (failed %d)\n",
			m.rpsDrained(), m.elapsed.Seconds(), (m.untilDrained - m.elapsed).Seconds(), m.rps(), p50p99(m.latency), m.failed)
		fmt.Printf("         delivered %d of %d events (complete %t); Caddy CPU %s per delivered event, %s per request\n",
			m.delivered, len(webhooks)*m.ok, m.complete, us(per(m.cpu, m.delivered)), us(per(m.cpu, m.ok)))
		plain, module = append(plain, p), append(module, m)
		e.settle()
	}
	p, m := merge(plain), mergeDrained(module)
	e.plainCapacity = p.rps()
	fmt.Printf("total:   plain %.0f req/s %s | module %.0f req/s until drained, %.0f under load, %s\n",
		p.rps(), p50p99(p.latency), m.rpsDrained(), m.rps(), p50p99(m.latency))
	fmt.Printf("ratio module/plain: throughput with the outbox drained %.3f (under load only %.3f); at saturation p50 added %s, p99 added %s\n",
		m.rpsDrained()/p.rps(), m.rps()/p.rps(), ms(pct(m.latency, .5)-pct(p.latency, .5)), ms(pct(m.latency, .99)-pct(p.latency, .99)))

	events := module[len(module)-1].delivered
	if events == 0 {
		return fmt.Errorf("the module delivered nothing: no payloads for the minimal sender to copy")
	}
	last := module[len(module)-1]
	whole := per(m.cpu, m.delivered)
	eventsPerRequest := float64(m.delivered) / float64(m.ok)
	beyond := time.Duration(float64(per(m.cpu, m.ok)-per(plainCPU, p.ok)) / eventsPerRequest)
	// As fast as it goes, the minimal sender puts hundreds of events in a
	// commit; at the rate the module delivered, it pays what arriving
	// traffic costs (smaller commits, waking for each event) as the module
	// does. Both are printed.
	for _, perSec := range []float64{0, float64(events) / last.untilDrained.Seconds()} {
		e.settle()
		mr, err := e.runMinimal(events, perSec)
		if err != nil {
			return err
		}
		pace := "as fast as it goes"
		if perSec > 0 {
			pace = fmt.Sprintf("paced at the module's %.0f events/s", perSec)
		}
		minimal := per(mr.cpu, events)
		fmt.Printf("minimal sender, %s (bbolt grouped commits, HMAC-SHA256, %d kept-alive connections, delete; pinned like Caddy): %d events in %.2fs (%.0f events/s), %d put and %d delete commits; delivered %d, failed %d; CPU %s per event\n",
			pace, *conc, events, mr.elapsed.Seconds(), float64(events)/mr.elapsed.Seconds(), mr.PutCommits, mr.DeleteCommits, mr.delivered, mr.Failed, us(minimal))
		fmt.Printf("  CPU per delivered event ÷ minimal sender's: Caddy with the module %s = %.2f×; beyond proxying ((module − plain) per request ÷ %.2f events per request) %s = %.2f×\n",
			us(whole), float64(whole)/float64(minimal), eventsPerRequest, us(beyond), float64(beyond)/float64(minimal))
	}
	e.settle()
	return nil
}

func (e *env) pacedScenario() error {
	if e.plainCapacity == 0 {
		fmt.Printf("\n== paced: measuring the plain site's capacity first (%d clients, %s)\n", *conc, *duration)
		e.warmUp()
		e.plainCapacity = e.load(loadSpec{url: e.plainURL, clients: *conc, d: *duration}).rps()
	}
	rate := e.plainCapacity * *pacedFrac
	fmt.Printf("\n== paced: %.0f req/s (%.0f%% of the plain site's %.0f req/s), up to %d clients on a fixed schedule, %s per phase; latency counts from each request's due time\n",
		rate, 100**pacedFrac, e.plainCapacity, *pacedConc, *duration)
	e.settle()
	spec := loadSpec{clients: *pacedConc, d: *duration, perSec: rate}
	var plain, module []result
	for i := range *rounds {
		spec.url = e.plainURL
		p := e.load(spec)
		e.settle()
		spec.url = e.moduleURL
		m := e.moduleDrained(spec)
		drain := m.untilDrained - m.elapsed
		fmt.Printf("round %d: plain %.0f req/s %s (failed %d) | module %.0f req/s %s (failed %d), outbox drained %.2fs after the load (complete %t)\n",
			i+1, p.rps(), p50p99(p.latency), p.failed, m.rps(), p50p99(m.latency), m.failed, drain.Seconds(), m.complete)
		if m.rps() < 0.95*rate || drain > time.Second {
			fmt.Println("         the module site did not keep up with this rate: its latency includes queueing")
		}
		plain, module = append(plain, p), append(module, m.result)
		e.settle()
	}
	printAdded("request latency", merge(plain).latency, merge(module).latency)
	return nil
}
