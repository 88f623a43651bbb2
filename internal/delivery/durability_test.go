package delivery

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestPendingSurvivesRestartWithItsSchedule closes the engine while messages
// wait for a retry, reopens the file and checks that they are delivered
// exactly once, in lane order, no earlier than scheduled.
func TestPendingSurvivesRestartWithItsSchedule(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	down := newReceiver(t, answers(response{status: 503}))
	h := newHarness(t, mustOpenBolt(t, path), Options{})
	h.set(endpoint(down.URL))
	h.enqueue(msg("A", 1), msg("A", 2), msg("B", 1), msg("A", 3), msg("B", 2))
	h.waitCount("retried:rx", 2) // both lane heads failed once
	if err := h.eng.Close(); err != nil {
		t.Fatal(err)
	}

	store := mustOpenBolt(t, path)
	pending, err := store.Pending()
	if err != nil || len(pending) != 5 {
		t.Fatalf("reopened store holds %d pending (%v), want 5", len(pending), err)
	}
	if p := pending[0]; p.ID != "msg_A1" || p.Attempts != 1 || !p.Next.Equal(h.clock.Now().Add(5*time.Second)) {
		t.Fatalf("A1 stored as %+v, want 1 attempt, next in 5s", p)
	}

	up := newReceiver(t, answers(response{status: 200}))
	h.start(store, Options{})
	if st, _ := h.eng.Stats(); st.Queued != 5 || len(st.Endpoints) != 0 {
		t.Fatalf("before SetEndpoint: %+v, want 5 waiting and no endpoint", st)
	}
	h.set(endpoint(up.URL))
	if d := h.clock.waitTimer(t); d != 5*time.Second || up.count() != 0 {
		t.Fatalf("after restart: next attempt in %s, %d sent; want the stored schedule kept", d, up.count())
	}
	h.clock.Advance(5 * time.Second)
	h.waitCount("delivered:rx", 5)
	got := delivered(up.got())
	if !slices.Equal(got["A"], []int{1, 2, 3}) || !slices.Equal(got["B"], []int{1, 2}) || up.count() != 5 {
		t.Errorf("delivered %v in %d requests, want A [1 2 3], B [1 2], once each", got, up.count())
	}
	// Deletes of delivered messages are committed by the next group commit
	// at the latest by Close, not when the lane moves on.
	if err := h.eng.Close(); err != nil {
		t.Fatal(err)
	}
	if pending, _ := mustOpenBolt(t, path).Pending(); len(pending) != 0 {
		t.Errorf("%d still pending after delivery and Close", len(pending))
	}
}

const crashEnv = "DELIVERY_CRASH_OUTBOX"

// TestCrashRecovery enqueues in a child process that then kills itself with
// SIGKILL, and delivers from the file it left.
func TestCrashRecovery(t *testing.T) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(t, path)
		return
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}

	rx := newReceiver(t, answers(response{status: 200}))
	h := newHarness(t, mustOpenBolt(t, path), Options{})
	h.set(endpoint(rx.URL))
	h.clock.Advance(time.Minute) // past any retry the child scheduled
	h.waitCount("delivered:rx", 20)
	got := delivered(rx.got())
	for _, lane := range []string{"A", "B"} {
		if !slices.Equal(got[lane], []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("lane %s delivered %v, want 0..9 once each in order", lane, got[lane])
		}
	}
}

// crashChild enqueues 20 messages to an unreachable receiver and dies
// without closing anything, as kill -9 would leave it.
func crashChild(t *testing.T, path string) {
	store, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	// The parent's fake clock starts at the same instant, so the retries
	// scheduled here are a minute away at most there.
	eng, err := New(store, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.SetEndpoint(endpoint("http://127.0.0.1:1/")); err != nil {
		t.Fatal(err)
	}
	for n := range 10 {
		if err := eng.Enqueue(t.Context(), msg("A", n), msg("B", n)); err != nil {
			t.Fatal(err)
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught
}

func TestDeadLettersSurviveRestartAndReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	rx := newReceiver(t, answers(response{status: 500}))
	h := newHarness(t, mustOpenBolt(t, path), Options{})
	noRetry := func(e *Endpoint) { e.Retry = []time.Duration{} }
	h.set(endpoint(rx.URL, noRetry))
	h.enqueue(msg("A", 1), msg("A", 2), msg("A", 3))
	h.waitCount("dead:rx:"+ReasonExhausted, 3)
	h.eng.Close()

	h.start(mustOpenBolt(t, path), Options{})
	h.set(endpoint(rx.URL, noRetry))
	dead, err := h.eng.DeadLetters("rx", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(dead); !slices.Equal(got, []string{"msg_A1", "msg_A2", "msg_A3"}) {
		t.Fatalf("dead letters after restart %v", got)
	}
	if d := dead[0]; d.Attempts != 1 || d.LastStatus != 500 || d.Reason != ReasonExhausted || d.DeadAt.IsZero() {
		t.Errorf("dead letter %+v", d)
	}

	rx.setRespond(answers(response{status: 200}))
	if err := h.eng.Replay("rx", "msg_A2"); err != nil {
		t.Fatal(err)
	}
	h.waitCount("delivered:rx", 1)
	if err := h.eng.DeleteDeadLetter("rx", "msg_A1"); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.DeleteDeadLetter("rx", "msg_A1"); err != ErrNotFound {
		t.Errorf("second delete = %v, want ErrNotFound", err)
	}
	if n, err := h.eng.ReplayAll("rx"); n != 1 || err != nil {
		t.Fatalf("ReplayAll = %d, %v; want 1 (A3)", n, err)
	}
	h.waitCount("delivered:rx", 2)
	if got := delivered(rx.got())["A"]; !slices.Equal(got, []int{2, 3}) {
		t.Errorf("replayed %v, want [2 3]", got)
	}
	for _, hh := range rx.got()[3:] {
		if id := hh.Header.Get("X-Test-Id"); id != "msg_A"+string(rune('0'+hh.N)) {
			t.Errorf("replay sent id %q: want the original id", id)
		}
	}
	if st, _ := h.eng.Stats(); st.Endpoints["rx"].DeadLetters != 0 || st.Queued != 0 {
		t.Errorf("stats after replay %+v", st)
	}
}

func TestDeadLettersAreBounded(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 410}))
	h := newHarness(t, NewMemoryStore(), Options{MaxDeadLetters: 2})
	h.set(endpoint(rx.URL, func(e *Endpoint) { e.Ordered = false }))
	h.enqueue(msg("A", 1), msg("A", 2), msg("A", 3))
	h.waitCount("dead:rx", 3)
	if got := h.obs.get("dropped:rx:" + ReasonDeadLetters); got != 1 {
		t.Errorf("trimmed %d, want 1", got)
	}
	if st, _ := h.eng.Stats(); st.Endpoints["rx"].DeadLetters != 2 {
		t.Errorf("%d dead letters kept, want 2", st.Endpoints["rx"].DeadLetters)
	}
}
