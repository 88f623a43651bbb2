package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// natsKillScenario runs two Caddy instances, A (the env's) and B (a second
// child process with its own ports and spool), on one embedded NATS node.
// A starts first, so NATS pins every partition to it: A delivers, B only
// publishes. Paced load at -rate is spread evenly over both for -d;
// halfway, A is SIGKILLed and restarted at once on the same spool, as a
// supervisor would. The receiver's distinct events are then compared with
// the requests both answered: A's partitions wait out the failover (3s)
// before B or the new A takes them over, and what A had spooled but not
// yet published waits for its restart.
func (e *env) natsKillScenario() error {
	fmt.Printf("\n== nats-kill: instances A and B on one embedded NATS node, %d req/s spread over both for %s, A (pinned on every partition) SIGKILLed halfway and restarted on its spool\n", *rate, *duration)
	n, err := startNATS(e.dir, 1)
	if err != nil {
		return err
	}
	defer func() {
		e.useOutbox("")
		n.shutdown()
	}()
	if err := e.useOutbox(n.outbox("kill", 1, filepath.Join(e.dir, "spool-a.db"))); err != nil {
		return err
	}
	portsB, err := freePorts(3)
	if err != nil {
		return err
	}
	dirB := filepath.Join(e.dir, "instance-b")
	if err := os.MkdirAll(dirB, 0o700); err != nil {
		return err
	}
	b := &caddyProc{bin: e.caddy.bin, dir: dirB, config: e.caddyfileFor(0, portsB, n.outbox("kill", 1, filepath.Join(dirB, "spool.db")))}
	if err := b.start(fmt.Sprintf("127.0.0.1:%d", portsB[0])); err != nil {
		return err
	}
	defer b.stop()
	for _, c := range []*caddyProc{e.caddy, b} {
		if err := c.waitNATSReady(); err != nil {
			return err
		}
	}
	urlB := fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", portsB[2])

	e.settle()
	e.rx.reset()
	var through [2]chan result
	for i, url := range []string{e.moduleURL, urlB} {
		through[i] = make(chan result, 1)
		go func() {
			through[i] <- e.load(loadSpec{url: url, clients: max(1, *conc/2), d: *duration, perSec: float64(*rate) / 2})
		}()
	}
	time.Sleep(*duration / 2)
	e.caddy.kill()
	killed := time.Now()
	restartErr := e.caddy.start(e.adminAddr)
	restart := time.Since(killed)
	ra, rb := <-through[0], <-through[1]
	r := merge([]result{ra, rb})
	want := len(webhooks) * r.ok
	took, complete := e.waitDistinct(want, 15*time.Second)
	_, _, lat := e.rx.summary()
	// The latency's tail is the failover: what was published while the
	// partitions were still pinned to the killed process.
	note := fmt.Sprintf("%d requests ok (A %d, B %d), %d failed at the client (A %d); A restarted %.2fs after the SIGKILL; delivery latency p50 %s p99 %s max %s",
		r.ok, ra.ok, rb.ok, r.failed, ra.failed, restart.Seconds(), ms(pct(lat, .5)), ms(pct(lat, .99)), ms(pct(lat, 1)))
	if restartErr != nil {
		note += " (restart failed: " + restartErr.Error() + ")"
	}
	e.account("nats-kill", r.tokens(), fmt.Sprintf("%s; all delivered %.1fs after the load (complete=%t)", note, took.Seconds(), complete))
	return nil
}

// waitDistinct waits until the receiver holds want distinct events, or
// nothing new has arrived for quiet (longer than a failover), or the drain
// timeout; it returns how long it took and whether it got there.
func (e *env) waitDistinct(want int, quiet time.Duration) (time.Duration, bool) {
	start := time.Now()
	last, lastChange := -1, start
	for time.Since(start) < *drainWithin {
		n := e.rx.distinct()
		if n >= want {
			return time.Since(start), true
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(lastChange) > quiet {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), false
}
