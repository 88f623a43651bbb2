package main

import (
	"fmt"
	"time"
)

func (e *env) sseScenario() error {
	fmt.Printf("\n== sse: %d clients read streams of %d chunks the backend writes every %s, one after the other, %s per site\n",
		*conc, *chunks, *chunkEvery, *duration)
	e.settle()
	spec := loadSpec{url: e.plainURL, clients: *conc, d: *duration}
	p := e.streamPhase(spec, *chunks, *chunkEvery)
	e.settle()
	e.rx.reset()
	spec.url = e.moduleURL
	m := e.streamPhase(spec, *chunks, *chunkEvery)
	took, ok := e.waitDrained(len(webhooks) * m.streams)
	fmt.Printf("streams read: plain %d (failed %d), module %d (failed %d)\n", p.streams, p.failed, m.streams, m.failed)
	printAdded("first chunk", p.first, m.first)
	printAdded("inter-chunk gap", p.gaps, m.gaps)
	printAdded("chunk transit", p.transit, m.transit)
	e.account("sse accounting", m.tokens, fmt.Sprintf("drained %.1fs after the load (complete=%t)", took.Seconds(), ok))
	return nil
}

func (e *env) streamsScenario() error {
	n := *streamsOpen
	fmt.Printf("\n== streams: Caddy's RSS with %d streams held open after their first chunk, plain vs module, each on a freshly started Caddy\n", n)
	for _, site := range []struct{ name, url string }{{"plain", e.plainURL}, {"module", e.moduleURL}} {
		e.settle()
		if err := e.caddy.restart(); err != nil {
			return err
		}
		// A few requests and one held stream build what Caddy builds
		// lazily, so that idle is the site's own baseline.
		e.load(loadSpec{url: site.url, clients: 4, d: 10 * time.Second, limit: 100})
		_, wait := e.heldStreams(site.url, 1, 10*time.Second)
		e.backend.release()
		wait()
		time.Sleep(2 * time.Second)
		idle := e.caddy.rssKiB()
		open, wait := e.heldStreams(site.url, n, time.Minute)
		time.Sleep(time.Second)
		held := e.caddy.rssKiB()
		e.backend.release()
		done := len(wait())
		fmt.Printf("%-6s RSS idle %.1f MiB, with %d streams open %.1f MiB: +%.1f MiB, %.2f MiB per 1 000 open streams (%d streams completed)\n",
			site.name, float64(idle)/1024, open, float64(held)/1024, float64(held-idle)/1024, float64(held-idle)/1024*1000/float64(max(open, 1)), done)
	}
	e.settle()
	return nil
}
