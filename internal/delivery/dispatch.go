package delivery

import "time"

// poke wakes the dispatcher without blocking; one pending wake is enough.
func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// run is the dispatcher: every wake it starts whatever attempts are due and
// allowed, and sets a timer for the next due time.
func (e *Engine) run() {
	defer e.attempts.Done()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.kick:
			e.dispatch()
		}
	}
}

func (e *Engine) dispatch() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	now := e.clock.Now()
	var wake time.Time
	later := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	for _, st := range e.endpoints {
		if st.cfg == nil || !st.health.disabledAt.IsZero() {
			continue
		}
		for e.busy < e.opts.Workers && st.inflight < st.cfg.MaxConcurrency {
			l := st.due()
			if l == nil {
				break
			}
			if next := l.head().next; next.After(now) {
				later(next)
				break
			}
			if turn := st.limiter.wait(now); !turn.IsZero() {
				later(turn)
				break
			}
			ok, until := st.breaker.allow(now)
			if !ok {
				later(until)
				break
			}
			st.limiter.take(now)
			e.start(st, st.take())
		}
	}
	// Attempts finishing poke the dispatcher, which covers waits for a free
	// worker, a concurrency slot or a probe's outcome.
	e.schedule(now, wake)
}

// schedule makes sure the dispatcher wakes at wake, keeping a pending timer
// that fires no later.
func (e *Engine) schedule(now, wake time.Time) {
	if wake.IsZero() || e.timer != nil && e.timerAt.After(now) && !e.timerAt.After(wake) {
		return
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timerAt = wake
	e.timer = e.clock.AfterFunc(wake.Sub(now), e.poke)
}

// start launches an attempt on l's head, with the configuration of the
// identity it was shaped for. The caller holds mu.
func (e *Engine) start(st *endpointState, l *lane) {
	e.busy++
	e.attempts.Add(1)
	en := l.head()
	go e.attempt(st, st.configFor(en.identity), l, en)
}

// bodyRetry is how long a message whose body could not be read from the
// store waits before the engine tries to read it again.
const bodyRetry = time.Minute

// attempt reads en's body from the store, makes one delivery attempt,
// persists its consequence, then updates the lane. en belongs to this
// goroutine until the lane is released: nothing else reads a head in
// flight.
func (e *Engine) attempt(st *endpointState, cfg *endpointConfig, l *lane, en *entry) {
	defer e.attempts.Done()
	rec, err := e.store.Load(en.seq)
	if err != nil {
		e.unreadable(st, l, en, err)
		return
	}
	en.fill(rec)
	started := e.clock.Now()
	traceparent, endSpan := e.startAttempt(rec)
	out := send(e.ctx, cfg, rec, traceparent, started)
	endSpan(out.status, out.reason)
	if e.ctx.Err() != nil {
		// Closing: the attempt was cut short and does not count; the
		// stored record is unchanged.
		e.mu.Lock()
		e.busy--
		st.release(l, false)
		e.mu.Unlock()
		return
	}
	now := e.clock.Now()
	e.mu.Lock()
	retire := en.retire // set by Commit or Purge during the attempt
	e.mu.Unlock()
	rec.addAttempt(Attempt{At: started, Duration: out.took, Status: out.status, Class: out.reason,
		Error: out.detail, Response: out.response})
	rec.SentHeader = out.header
	v := e.settle(cfg, rec, out, now, retire)

	e.mu.Lock()
	e.busy--
	en.attempts, en.lastStatus, en.lastError, en.next = rec.Attempts, rec.LastStatus, rec.LastError, rec.Next
	// Commit or Purge may have marked it after it was read above: it must
	// not wait in a lane nothing attempts any more.
	late := ""
	if !v.done() && en.retire != "" {
		late = en.retire
	}
	if v.done() || late != "" {
		e.queued--
		e.queuedBytes -= int64(en.size)
	}
	st.release(l, v.done() || late != "")
	breakerWas := st.breaker.record(now, out.ok())
	logs := e.report(st, cfg, rec, v, now, breakerWas)
	if st.cfg == nil && st.queued == 0 && e.endpoints[st.name] == st {
		delete(e.endpoints, st.name) // removed, and its last attempt is over
	}
	keep := e.opts.MaxDeadLetters
	e.poke()
	e.mu.Unlock()
	for _, f := range logs {
		f()
	}
	if late != "" {
		e.retireLate(rec, cfg.Schema, late, now, keep)
	}
}

// retireLate disposes of a message whose endpoint was removed or purged
// while its failed attempt ran: deleted if purged, else a dead letter.
func (e *Engine) retireLate(rec *Record, schema, reason string, now time.Time, keep int) {
	name, id := rec.Endpoint, rec.ID
	if reason == ReasonPurged {
		e.store.Delete(rec.Seq, func(err error) { e.wrote(name, id, err) })
		e.obs.Dropped(name, schema, ReasonPurged, 1)
		return
	}
	e.wrote(name, id, e.buryPending(name, schema, []uint64{rec.Seq}, reason, now, keep))
}

// buryPending moves stored pending messages of endpoint name to its dead
// letters with reason, and counts them and the dead letters trimmed to
// make room.
func (e *Engine) buryPending(name, schema string, seqs []uint64, reason string, now time.Time, keep int) error {
	trimmed, err := e.store.BuryPending(seqs, reason, now, keep)
	if err != nil {
		return err
	}
	e.obs.DeadLettered(name, schema, reason, len(seqs))
	if trimmed > 0 {
		e.obs.Dropped(name, schema, ReasonDeadLetters, trimmed)
	}
	return nil
}

// unreadable handles a pending message that the store could not read: it
// is neither sent nor dropped nor dead-lettered, and its stored record is
// left untouched (a Save would rewrite it without the body). It
// stays pending, holding its lane, and is tried again after bodyRetry; each
// failure is logged, at most once per bodyRetry per message. The attempt
// does not count, and the breaker does not hear of it.
func (e *Engine) unreadable(st *endpointState, l *lane, en *entry, err error) {
	e.mu.Lock()
	e.busy--
	now := e.clock.Now()
	en.next = now.Add(bodyRetry)
	st.release(l, false)
	e.poke()
	name, id, seq := st.name, en.id, en.seq
	e.mu.Unlock()
	e.log.Error("webhook outbox: cannot read a pending message's body; it stays queued and is retried",
		"endpoint", name, "id", id, "seq", seq, "retry_in", bodyRetry, "error", err)
}

// wrote notes the result of a store write made for an attempt, from the
// attempt or from the store's committer. A broken disk fails every write:
// one line when writes start failing, one when they work again.
func (e *Engine) wrote(name, id string, err error) {
	failing := err != nil
	if !e.storeFailing.CompareAndSwap(!failing, failing) {
		return
	}
	if failing {
		e.log.Error("webhook outbox write failed; messages may be delivered again after a restart",
			"endpoint", name, "id", id, "error", err)
	} else {
		e.log.Info("webhook outbox writes work again")
	}
}

// verdict is what an attempt's outcome did to its message.
type verdict struct {
	out     outcome
	dead    string // dead letter reason, if it became one
	purged  bool   // deleted undelivered: its webhook was purged
	trimmed int    // dead letters deleted to make room
}

func (v verdict) done() bool { return v.out.ok() || v.dead != "" || v.purged }

// settle counts an attempt on rec and writes its consequence to the store:
// keep it among the delivered when delivered, delete it when purged
// meanwhile, bury it when there is nothing left to try or its webhook was
// removed meanwhile (retire), else save the next attempt's time so that a
// restart keeps the schedule. The lane moves on once a delivery or delete
// is queued, not committed (see Store.Delete).
func (e *Engine) settle(cfg *endpointConfig, rec *Record, out outcome, now time.Time, retire string) verdict {
	v := verdict{out: out, purged: retire == ReasonPurged}
	rec.Attempts++
	rec.LastStatus = out.status
	name, id := rec.Endpoint, rec.ID
	wrote := func(err error) { e.wrote(name, id, err) }
	switch {
	case v.purged:
		e.store.Delete(rec.Seq, wrote)
		return v
	case out.ok():
		rec.DeliveredAt = now
		e.mu.Lock() // Tune may change the retention
		keep := e.opts.KeepDelivered
		e.mu.Unlock()
		e.store.Deliver(rec, keep, wrote)
		return v
	}
	rec.LastError = out.detail
	delay, again := backoff(cfg.Retry, rec.Attempts, out.retryAfter, e.jitter())
	switch {
	case retire != "":
		v.dead = retire
	case out.reason == ReasonGone:
		v.dead = ReasonGone
	case !again:
		v.dead = ReasonExhausted
	}
	var err error
	if v.dead != "" {
		rec.DeadAt, rec.Reason = now, v.dead
		e.mu.Lock() // Tune may change the limit
		keep := e.opts.MaxDeadLetters
		e.mu.Unlock()
		v.trimmed, err = e.store.Bury(rec, keep)
	} else {
		rec.Next = now.Add(delay)
		err = e.store.Save(rec)
	}
	e.wrote(name, id, err)
	return v
}

// report tells the Observer about a settled attempt and returns the log
// lines to write once mu is released. It logs the first failure of each
// reason since the last success, not every attempt. The caller holds mu.
func (e *Engine) report(st *endpointState, cfg *endpointConfig, rec *Record, v verdict, now time.Time, breakerWas string) []func() {
	// The logs run after unlock, when the record may be in flight again:
	// they use copies.
	name, schema, id, attempts, out := st.name, cfg.Schema, rec.ID, rec.Attempts, v.out
	maxDead := e.opts.MaxDeadLetters // Tune may change it once mu is released
	var logs []func()
	add := func(f func()) { logs = append(logs, f) }
	if out.ok() {
		st.health.succeeded(now)
		e.obs.Delivered(name, schema, now.Sub(rec.Created))
		if len(st.logged) > 0 {
			clear(st.logged)
			add(func() { e.log.Info("webhook delivery recovered", "endpoint", name) })
		}
	} else {
		e.obs.Failed(name, schema, out.reason, out.status)
		var disableAfter time.Duration
		if st.cfg != nil {
			disableAfter = st.cfg.DisableAfter
		}
		if st.health.failedAt(now, out.detail, disableAfter) {
			e.obs.Disabled(name, schema, true)
			add(func() {
				e.log.Warn("webhook disabled: every attempt failed for disable_after; its messages are kept until it is enabled again",
					"endpoint", name, "disable_after", disableAfter, "error", out.detail)
			})
		}
		if st.firstTime("fail:" + out.reason) {
			add(func() {
				e.log.Warn("webhook delivery failing", "endpoint", name, "reason", out.reason,
					"status", out.status, "error", out.detail, "attempt", attempts, "id", id)
			})
		}
		if v.dead != "" {
			e.obs.DeadLettered(name, schema, v.dead, 1)
			if st.firstTime("dead:" + v.dead) {
				add(func() {
					e.log.Warn("webhook moved to dead letters", "endpoint", name, "reason", v.dead,
						"attempts", attempts, "id", id)
				})
			}
		} else if !v.purged {
			st.health.retried++
			e.obs.Retried(name, schema)
		}
	}
	if v.trimmed > 0 {
		e.obs.Dropped(name, schema, ReasonDeadLetters, v.trimmed)
		if st.firstTime("trim") {
			add(func() {
				e.log.Warn("deleting the oldest dead letters", "endpoint", name, "max_dead_letters", maxDead)
			})
		}
	}
	// Failed probes re-open the breaker quietly: one line when it opens, one
	// when it closes.
	switch is := st.breaker.state; {
	case breakerWas == BreakerClosed && is == BreakerOpen:
		add(func() {
			e.log.Warn("webhook circuit breaker open: pausing deliveries", "endpoint", name, "reason", out.reason)
		})
	case breakerWas != BreakerClosed && is == BreakerClosed:
		add(func() { e.log.Info("webhook circuit breaker closed: resuming deliveries", "endpoint", name) })
	}
	e.obs.QueueDepth(name, schema, st.queued)
	return logs
}
