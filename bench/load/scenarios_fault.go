package main

import (
	"fmt"
	"time"
)

// faultLoad runs paced load on the module site for d while fault runs.
func (e *env) faultLoad(name string, d time.Duration, fault func() string) error {
	e.settle()
	e.rx.reset()
	done := make(chan result)
	go func() { done <- e.load(loadSpec{url: e.moduleURL, clients: *conc, d: d, perSec: float64(*rate)}) }()
	note := fault()
	r := <-done
	took, ok := e.waitDrained(len(webhooks) * r.ok)
	e.account(name, r.tokens(), fmt.Sprintf("%d requests ok, %d failed at the client; %s; drained %.1fs after the load (complete=%t)", r.ok, r.failed, note, took.Seconds(), ok))
	return nil
}

func (e *env) outageScenario() error {
	fmt.Printf("\n== fault: receiver outage and recovery\n")
	return e.faultLoad("outage", 30*time.Second, func() string {
		time.Sleep(5 * time.Second)
		e.rx.down()
		time.Sleep(10 * time.Second)
		if err := e.rx.up(); err != nil {
			return "receiver did not come back: " + err.Error()
		}
		return "receiver down from 5s to 15s of 30s"
	})
}

func (e *env) killScenario() error {
	fmt.Printf("\n== fault: SIGKILL under load (%d in a row), restart on the same outbox\n", *kills)
	// The load runs 4s per kill plus 12s; each kill comes 4s after the
	// previous restart, with no pause in the load.
	return e.faultLoad("kill", time.Duration(*kills)*4*time.Second+12*time.Second, func() string {
		var restarts []string
		for range *kills {
			time.Sleep(4 * time.Second)
			e.caddy.kill()
			t := time.Now()
			if err := e.caddy.start(e.caddy.admin); err != nil {
				return "restart failed: " + err.Error()
			}
			restarts = append(restarts, fmt.Sprintf("%.2fs", time.Since(t).Seconds()))
		}
		return fmt.Sprintf("%d SIGKILLs 4s apart, restarted in %v", *kills, restarts)
	})
}

// reloadMark is one reload of the storm: POST /load of generation gen.
type reloadMark struct {
	gen        int
	start, end time.Time
	err        error
}

// span is a stretch of time; a zero end is open.
type span struct{ from, to time.Time }

// holds reports whether the request was sent and answered within s.
func (s span) holds(r sentReq) bool {
	return (s.from.IsZero() || !r.start.Before(s.from)) && (s.to.IsZero() || !r.end.After(s.to))
}

func anyHolds(spans []span, r sentReq) bool {
	for _, s := range spans {
		if s.holds(r) {
			return true
		}
	}
	return false
}

// presence returns when w was certainly configured and when certainly not:
// a configuration serves from the end of its successful /load to the start
// of the next one that changes w's presence; a request that overlaps such a
// reload may have been served by either.
func presence(w webhook, marks []reloadMark) (in, out []span) {
	present, cur := w.present(0), span{}
	for _, m := range marks {
		if m.err != nil || w.present(m.gen) == present {
			continue
		}
		cur.to = m.start
		if present {
			in = append(in, cur)
		} else {
			out = append(out, cur)
		}
		cur, present = span{from: m.end}, !present
	}
	if present {
		in = append(in, cur)
	} else {
		out = append(out, cur)
	}
	return in, out
}

// reloadScenario reloads a configuration that changes every webhook's
// identity (header, query, secret and a shaped payload member) while paced
// load runs, and removes and re-adds chatzuri. The receiver checks that
// each delivery carries the identity of the generation that shaped it;
// messages of a removed webhook count as accounted for when they are dead
// letters with reason webhook_removed.
func (e *env) reloadScenario() error {
	fmt.Printf("\n== fault: reload storm, a reload every %s during %s of %d req/s; each generation changes every webhook's header, URL query, secret and payload member bench_gen, and every fourth removes chatzuri until the next\n",
		*reloadEvery, *stormFor, *rate)
	e.settle()
	e.rx.reset()
	e.rx.checkIdentity.Store(true)
	defer e.rx.checkIdentity.Store(false)
	done := make(chan result)
	go func() {
		done <- e.load(loadSpec{url: e.moduleURL, clients: *conc, d: *stormFor, perSec: float64(*rate)})
	}()
	marks, failed, removals := e.reloadStorm()
	r := <-done
	// Back to generation 0, which has every webhook, while messages shaped
	// under the last generation may still wait: they too must keep their
	// identity, and the dead letters of every webhook can be listed.
	final := reloadMark{gen: 0, start: time.Now()}
	final.err = e.caddy.reload(e.caddyfile(0))
	final.end = time.Now()
	if final.err != nil {
		return final.err
	}
	marks = append(marks, final)
	classes := make([]stormClass, len(webhooks))
	want := 0
	for i, w := range webhooks {
		classes[i] = classify(w, marks, r.sent)
		want += len(classes[i].expected)
	}
	took, complete := e.waitDrained(want)
	fmt.Printf("reload storm: %d reloads, the last back to generation 0 (%d failed), %d webhooks removed by them; %d requests ok, %d failed at the client; drained %.1fs after the load (all expected delivered=%t)\n",
		len(marks), failed, removals, r.ok, r.failed, took.Seconds(), complete)
	snap := e.rx.snapshot()
	var total stormCount
	for i, w := range webhooks {
		dead, err := e.caddy.deadLetters(w.name)
		if err != nil {
			return err
		}
		c := reportStorm(w, snap[w.path()], dead, classes[i], marks)
		total.delivered += c.delivered
		total.lost += c.lost
		total.duplicated += c.duplicated
		total.mismatched += c.mismatched
	}
	fmt.Printf("reload storm total: delivered %d, lost %d, duplicated %d, mismatched %d\n", total.delivered, total.lost, total.duplicated, total.mismatched)
	return nil
}

// reloadStorm loads generation after generation every -reload-every until
// the storm's end; it returns the reloads, how many failed and how many
// webhooks the successful ones removed.
func (e *env) reloadStorm() (marks []reloadMark, failed, removals int) {
	for begin, gen := time.Now(), 1; time.Since(begin)+*reloadEvery < *stormFor; gen++ {
		time.Sleep(*reloadEvery)
		m := reloadMark{gen: gen, start: time.Now()}
		m.err = e.caddy.reload(e.caddyfile(gen))
		m.end = time.Now()
		marks = append(marks, m)
		if m.err != nil {
			failed++
			fmt.Println("  reload:", m.err)
			continue
		}
		for _, w := range webhooks {
			if !w.present(gen) {
				removals++
			}
		}
	}
	return marks, failed, removals
}

// stormClass sorts the storm's requests for one webhook: answered while it
// was certainly configured, certainly not, or across a reload that
// removed or re-added it.
type stormClass struct{ expected, absent, transition []sentReq }

func classify(w webhook, marks []reloadMark, sent []sentReq) stormClass {
	var c stormClass
	in, out := presence(w, marks)
	for _, s := range sent {
		switch {
		case anyHolds(in, s):
			c.expected = append(c.expected, s)
		case anyHolds(out, s):
			c.absent = append(c.absent, s)
		default:
			c.transition = append(c.transition, s)
		}
	}
	return c
}

type stormCount struct{ delivered, lost, duplicated, mismatched int }

// reportStorm prints what became of one webhook's messages in the storm.
// Lost: expected, neither delivered nor a dead letter. Duplicated: every
// delivery beyond the first of a token, and tokens both delivered and
// dead-lettered.
func reportStorm(w webhook, got received, dead []deadLetter, c stormClass, marks []reloadMark) stormCount {
	reasons := map[string]string{} // token → reason
	for _, d := range dead {
		reasons[w.token(d.Body)] = d.Reason
	}
	delivered, removed, otherDead, both := 0, 0, 0, 0
	var lost []sentReq
	for _, s := range c.expected {
		reason, isDead := reasons[s.tok]
		switch {
		case got.tokens[s.tok]:
			delivered++
			if isDead {
				both++
			}
		case reason == "webhook_removed":
			removed++
		case isDead:
			otherDead++
		default:
			lost = append(lost, s)
		}
	}
	duplicated := got.total - len(got.tokens) + both
	fmt.Printf("  %-9s expected %d  delivered %d  lost %d  duplicated %d  mismatched %d (header %d, query %d, signature %d)  dead letters: webhook_removed %d, other %d\n",
		w.path(), len(c.expected), delivered, len(lost), duplicated, got.mismatch.any, got.mismatch.header, got.mismatch.query, got.mismatch.signature, removed, otherDead)
	if w.removable {
		tDelivered, tDead, aDelivered := 0, 0, 0
		for _, s := range c.transition {
			if _, isDead := reasons[s.tok]; got.tokens[s.tok] {
				tDelivered++
			} else if isDead {
				tDead++
			}
		}
		for _, s := range c.absent {
			if got.tokens[s.tok] {
				aDelivered++
			}
		}
		fmt.Printf("            across a reload that removed or re-added it: %d requests, delivered %d, dead letters %d, neither %d; while it was removed: %d requests, delivered anyway %d\n",
			len(c.transition), tDelivered, tDead, len(c.transition)-tDelivered-tDead, len(c.absent), aDelivered)
	}
	for _, id := range got.mismatch.examples {
		fmt.Printf("            mismatch: %s\n", id)
	}
	for _, s := range lost[:min(3, len(lost))] {
		fmt.Printf("            lost: %s, answered %s from the nearest reload's start\n", s.tok, nearestReload(s.end, marks))
	}
	return stormCount{delivered: delivered, lost: len(lost), duplicated: duplicated, mismatched: got.mismatch.any}
}

// nearestReload is the signed time from the closest reload's start to t.
func nearestReload(t time.Time, marks []reloadMark) time.Duration {
	var best time.Duration
	for i, m := range marks {
		if d := t.Sub(m.start); i == 0 || d.Abs() < best.Abs() {
			best = d
		}
	}
	return best.Round(time.Millisecond)
}
