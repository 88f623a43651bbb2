package delivery

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// laneReceiver answers 503 while down(lane), 200 otherwise.
func laneReceiver(t *testing.T, down func(lane string) bool) *receiver {
	return newReceiver(t, func(_ int, h hit) response {
		if down(h.Lane) {
			return response{status: 503}
		}
		return response{status: 200}
	})
}

func TestFailingLaneHoldsBackOnlyItself(t *testing.T) {
	var aDown atomic.Bool
	aDown.Store(true)
	rx := laneReceiver(t, func(lane string) bool { return lane == "A" && aDown.Load() })
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL))
	h.enqueue(msg("A", 1), msg("A", 2), msg("A", 3), msg("B", 1), msg("B", 2), msg("B", 3))

	h.waitCount("delivered:rx", 3)
	h.waitCount("retried:rx", 1)
	got := delivered(rx.got())
	if !slices.Equal(got["B"], []int{1, 2, 3}) {
		t.Fatalf("lane B delivered %v, want [1 2 3]", got["B"])
	}
	for _, hh := range rx.got() {
		if hh.Lane == "A" && hh.N != 1 {
			t.Fatalf("A%d attempted while A1 fails", hh.N)
		}
	}

	aDown.Store(false)
	h.clock.advanceToTimer(t)
	h.waitCount("delivered:rx", 6)
	if got := delivered(rx.got()); !slices.Equal(got["A"], []int{1, 2, 3}) {
		t.Fatalf("lane A delivered %v, want [1 2 3]", got["A"])
	}
}

func TestUnorderedDeliversPastAFailure(t *testing.T) {
	var first atomic.Bool
	rx := laneReceiver(t, func(string) bool { return first.CompareAndSwap(false, true) })
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Ordered = false; e.MaxConcurrency = 1 }))
	h.enqueue(msg("A", 1), msg("A", 2), msg("A", 3))
	h.waitCount("delivered:rx", 2)
	h.clock.advanceToTimer(t)
	h.waitCount("delivered:rx", 3)
	if got := delivered(rx.got())["A"]; !slices.Equal(got, []int{2, 3, 1}) {
		t.Errorf("unordered delivery %v, want [2 3 1]: the failed one retried last", got)
	}
}

// TestReceiverDownThenBack keeps a receiver down for an hour of fake time
// across many lanes (enough to open the breaker), then brings it back.
func TestReceiverDownThenBack(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rx := laneReceiver(t, func(string) bool { return down.Load() })
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(rx.URL))
	const lanes, perLane = 12, 5
	var msgs []Message
	for n := 1; n <= perLane; n++ {
		for l := range lanes {
			msgs = append(msgs, msg(fmt.Sprintf("L%d", l), n))
		}
	}
	h.enqueue(msgs...)
	start := h.clock.Now()
	breakerOpened := false
	for h.obs.get("delivered:rx") < lanes*perLane {
		if h.clock.Now().Sub(start) > time.Hour {
			down.Store(false)
		}
		if h.clock.Now().Sub(start) > 24*time.Hour {
			t.Fatalf("only %d delivered after a day", h.obs.get("delivered:rx"))
		}
		// Let attempts under way finish before moving time.
		eventually(t, "attempts to finish", func() bool {
			st, _ := h.eng.Stats()
			breakerOpened = breakerOpened || st.Endpoints["rx"].Breaker == BreakerOpen
			_, timer := h.clock.next()
			return st.InFlight == 0 && timer || h.obs.get("delivered:rx") == lanes*perLane
		})
		if h.obs.get("delivered:rx") < lanes*perLane {
			h.clock.advanceToTimer(t)
		}
	}
	if !breakerOpened {
		t.Error("the breaker never opened")
	}
	got := delivered(rx.got())
	want := []int{1, 2, 3, 4, 5}
	for l := range lanes {
		if lane := fmt.Sprintf("L%d", l); !slices.Equal(got[lane], want) {
			t.Errorf("lane %s delivered %v, want %v exactly once each", lane, got[lane], want)
		}
	}
	if st, _ := h.eng.Stats(); st.Endpoints["rx"].Breaker != BreakerClosed || st.Queued != 0 {
		t.Errorf("end state %+v", st)
	}
}
