package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
	"github.com/chatwebhooks/chatwebhooks/internal/natstest"
)

// sink is a webhook receiver that records every request, and answers
// with what answer says.
type sink struct {
	*httptest.Server
	mu     sync.Mutex
	got    []string // webhook id and body of each accepted request
	tries  map[string]int
	answer func(body string) int
}

func newSink(t *testing.T) *sink {
	s := &sink{answer: func(string) int { return 200 }, tries: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		code := s.answer(string(b))
		s.tries[r.Header.Get("Webhook-Id")]++
		if code == 200 {
			s.got = append(s.got, r.Header.Get("Webhook-Id")+" "+string(b))
		}
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sink) setAnswer(f func(body string) int) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

// attempts returns how many requests carried id.
func (s *sink) attempts(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tries[id]
}

func (s *sink) accepted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// instance is what one Caddy instance runs for outbox nats: a forwarder
// from its spool and an engine over the shared store.
type instance struct {
	c         *Cluster
	forwarder *Forwarder
	engine    *delivery.Engine
	store     *Store
	closed    bool
}

type nopForward struct{}

func (nopForward) Forwarded(time.Duration) {}
func (nopForward) Spooled(int)             {}
func (nopForward) Refused(string)          {}

func startInstance(t *testing.T, srv *server.Server, ep delivery.Endpoint) *instance {
	return startInstanceFailover(t, srv, ep, 3*time.Second)
}

func startInstanceFailover(t *testing.T, srv *server.Server, ep delivery.Endpoint, failover time.Duration) *instance {
	t.Helper()
	c, err := Connect(Config{URLs: []string{srv.ClientURL()}, Partitions: 4, Failover: failover})
	if err != nil {
		t.Fatal(err)
	}
	spool, err := delivery.OpenBolt(filepath.Join(t.TempDir(), "spool.db"))
	if err != nil {
		t.Fatal(err)
	}
	fw, err := c.NewForwarder(spool, 100000, 1<<30, nopForward{})
	if err != nil {
		t.Fatal(err)
	}
	st := c.NewStore()
	engine, err := delivery.New(st, delivery.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Attach(engine)
	if err := engine.Apply([]delivery.Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	st.Serve([]string{ep.Name})
	in := &instance{c: c, forwarder: fw, engine: engine, store: st}
	t.Cleanup(in.stop)
	return in
}

// stop shuts the instance down as Caddy does when it stops.
func (in *instance) stop() {
	if in.closed {
		return
	}
	in.closed = true
	in.forwarder.Close()
	in.engine.Close()
	in.c.Close()
}

// crash ends the instance as a crash would, as far as the others can tell:
// its connection drops first, so it neither acknowledges nor gives back
// anything it holds.
func (in *instance) crash() {
	in.c.nc.Close()
	in.stop()
}

func endpoint(url string, retry ...time.Duration) delivery.Endpoint {
	return delivery.Endpoint{Name: "crm hooks", Identity: "v1", URL: url, Ordered: true, Retry: retry, Timeout: 2 * time.Second}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// send enqueues one turn of a conversation through an instance and waits
// until it is published, as turns of one conversation come seconds apart.
func send(t *testing.T, in *instance, conv string, turn int) {
	t.Helper()
	id := fmt.Sprintf("%s-%03d", conv, turn)
	err := in.forwarder.Enqueue(context.Background(), delivery.Message{
		ID: id, Endpoint: "crm hooks", Identity: "v1", Lane: conv, Body: []byte(`"` + id + `"`)})
	if err != nil {
		t.Fatal(err)
	}
}

func published(ins ...*instance) bool {
	for _, in := range ins {
		if in.forwarder.Stats().Spooled > 0 {
			return false
		}
	}
	return true
}

// checkDelivered asserts that every turn arrived, first deliveries in
// turn order per conversation, and duplicates only with the same id and
// body.
func checkDelivered(t *testing.T, got []string, convs []string, turns int) {
	t.Helper()
	firsts := map[string][]string{}
	seen := map[string]string{}
	for _, g := range got {
		id, body, _ := strings.Cut(g, " ")
		if prev, dup := seen[id]; dup {
			if prev != body {
				t.Errorf("duplicate %s with another body", id)
			}
			continue
		}
		seen[id] = body
		conv, _, _ := strings.Cut(id, "-")
		firsts[conv] = append(firsts[conv], id)
	}
	for _, conv := range convs {
		var want []string
		for i := range turns {
			want = append(want, fmt.Sprintf("%s-%03d", conv, i))
		}
		if !slices.Equal(firsts[conv], want) {
			t.Errorf("conversation %s: got %v, want %v", conv, firsts[conv], want)
		}
	}
}

func conversations(n int) []string {
	var convs []string
	for i := range n {
		convs = append(convs, fmt.Sprintf("c%02d", i))
	}
	return convs
}

// Turns of 50 conversations spread round-robin over two instances reach
// the receiver once each, in order per conversation.
func TestTwoInstancesDeliverEveryConversationInOrder(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	ins := []*instance{startInstance(t, srv, endpoint(rcv.URL)), startInstance(t, srv, endpoint(rcv.URL))}
	convs := conversations(50)
	const turns = 6
	for turn := range turns {
		for i, conv := range convs {
			send(t, ins[(i+turn)%2], conv, turn)
		}
		waitFor(t, 5*time.Second, "the round is published", func() bool { return published(ins...) })
	}
	waitFor(t, 10*time.Second, "every turn is delivered", func() bool { return len(rcv.accepted()) >= len(convs)*turns })
	checkDelivered(t, rcv.accepted(), convs, turns)
}

// An instance that dies holding messages, some of them waiting for a
// retry, hands them to the other after the failover time: nothing is lost,
// order holds, and the retry schedule goes on where it was.
func TestDeadInstancesPartitionsFailOverInOrder(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	rcv.setAnswer(func(string) int { return 503 })
	ep := endpoint(rcv.URL, 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond, time.Hour)
	a := startInstance(t, srv, ep)
	convs := conversations(20)
	const turns = 3
	for turn := range turns {
		for _, conv := range convs {
			send(t, a, conv, turn)
		}
	}
	waitFor(t, 5*time.Second, "A holds every message", func() bool {
		s, _ := a.engine.Stats()
		return published(a) && s.Queued == len(convs)*turns
	})
	// B starts while A is pinned on every partition, and waits.
	b := startInstance(t, srv, ep)
	waitFor(t, 5*time.Second, "A has retried", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		keys, _ := a.c.sched.ListKeys(ctx)
		n := 0
		for range keys.Keys() {
			n++
		}
		return n >= 5 // the breaker opens after 10 failures
	})
	a.crash()
	rcv.setAnswer(func(string) int { return 200 })
	waitFor(t, 15*time.Second, "B delivers every turn", func() bool { return len(rcv.accepted()) >= len(convs)*turns })
	checkDelivered(t, rcv.accepted(), convs, turns)
	waitFor(t, 5*time.Second, "B holds nothing more", func() bool { s, _ := b.engine.Stats(); return s.Queued == 0 })
}

// A message that fails on one instance goes on with its retry schedule on
// the next: the attempts made before count toward the configured number.
func TestRetryScheduleContinuesOnTheNextInstance(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	rcv.setAnswer(func(string) int { return 503 })
	ep := endpoint(rcv.URL, 600*time.Millisecond, 600*time.Millisecond, 600*time.Millisecond, 600*time.Millisecond)
	a := startInstance(t, srv, ep)
	// B runs before anything is sent (A, started first, holds the
	// partitions), so that A dies right after its third attempt: started
	// only then, on a loaded machine B could take long enough for A to
	// make all five.
	b := startInstance(t, srv, ep)
	send(t, a, "c00", 0)
	waitFor(t, 10*time.Second, "A tried three times", func() bool { return rcv.attempts("c00-000") >= 3 })
	if s, _ := a.engine.Stats(); s.Queued != 1 {
		t.Fatalf("A holds %d messages, want the one it is trying", s.Queued)
	}
	a.crash()
	made := rcv.attempts("c00-000")
	if made >= 5 {
		t.Fatalf("A made all %d attempts before it was stopped: nothing left to continue", made)
	}
	waitFor(t, 15*time.Second, "B dead-letters it", func() bool { d, _ := b.engine.DeadLetters("", 0); return len(d) == 1 })
	if got := rcv.attempts("c00-000"); got != 5 {
		t.Errorf("%d attempts in all (%d on A), want the 5 the schedule allows", got, made)
	}
	d, _ := b.engine.DeadLetter("crm hooks", "c00-000")
	if d.Attempts != 5 || d.Reason != delivery.ReasonExhausted || d.LastStatus != 503 {
		t.Errorf("dead letter %+v", d)
	}
}

// An instance that stops gives back what it holds and releases its pins:
// another instance delivers it at once, well before the failover time.
func TestStoppingInstanceHandsItsPartitionsOver(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	rcv.setAnswer(func(string) int { return 503 })
	// Held messages keep their schedule: the first retry is due 2s after
	// A's attempt, whoever makes it.
	ep := endpoint(rcv.URL, 2*time.Second)
	a := startInstanceFailover(t, srv, ep, time.Minute)
	convs := conversations(8)
	for turn := range 3 {
		for _, conv := range convs {
			send(t, a, conv, turn)
		}
	}
	waitFor(t, 5*time.Second, "A holds every message", func() bool {
		s, _ := a.engine.Stats()
		return published(a) && s.Queued == len(convs)*3
	})
	b := startInstanceFailover(t, srv, ep, time.Minute)
	rcv.setAnswer(func(string) int { return 200 })
	a.stop()
	waitFor(t, 10*time.Second, "B delivers every turn", func() bool { return len(rcv.accepted()) >= len(convs)*3 })
	checkDelivered(t, rcv.accepted(), convs, 3)
	waitFor(t, 5*time.Second, "B holds nothing more", func() bool { s, _ := b.engine.Stats(); return s.Queued == 0 })
}

// An instance whose configuration no longer has a webhook stops delivering
// it and releases its partitions: an instance that still has it takes new
// messages at once, not after the failover time.
func TestInstanceDroppingAWebhookReleasesItsPartitions(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	a := startInstanceFailover(t, srv, endpoint(rcv.URL), time.Minute)
	send(t, a, "c00", 0)
	waitFor(t, 10*time.Second, "A delivers", func() bool { return len(rcv.accepted()) == 1 })
	b := startInstanceFailover(t, srv, endpoint(rcv.URL), time.Minute)
	a.engine.Apply(nil)
	a.store.Serve(nil)
	waitFor(t, 5*time.Second, "A consumes nothing", func() bool {
		a.store.serving.mu.Lock()
		defer a.store.serving.mu.Unlock()
		return len(a.store.serving.running) == 0
	})
	for turn := 1; turn < 4; turn++ {
		send(t, b, "c00", turn)
	}
	waitFor(t, 10*time.Second, "B delivers the new turns", func() bool { return len(rcv.accepted()) == 4 })
	checkDelivered(t, rcv.accepted(), []string{"c00"}, 4)
}

// A message the receiver refuses for good becomes a dead letter that every
// instance lists, and that one instance replays to the receiver.
func TestDeadLettersAreSharedAndReplayableFromAnyInstance(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	rcv.setAnswer(func(body string) int {
		if strings.Contains(body, "c01-001") {
			return 410
		}
		return 200
	})
	a := startInstance(t, srv, endpoint(rcv.URL))
	b := startInstance(t, srv, endpoint(rcv.URL))
	for turn := range 3 {
		send(t, a, "c01", turn)
	}
	var dead []delivery.Record
	waitFor(t, 10*time.Second, "one dead letter, seen from both instances", func() bool {
		da, _ := a.engine.DeadLetters("", 0)
		db, _ := b.engine.DeadLetters("crm hooks", 0)
		dead = db
		return len(da) == 1 && len(db) == 1
	})
	if dead[0].ID != "c01-001" || dead[0].Reason != delivery.ReasonGone || dead[0].LastStatus != 410 {
		t.Fatalf("dead letter %+v", dead[0])
	}
	if s, _ := b.engine.Stats(); s.Endpoints["crm hooks"].DeadLetters != 1 {
		t.Errorf("stats from B: %+v", s.Endpoints)
	}
	rcv.setAnswer(func(string) int { return 200 })
	if err := b.engine.Replay("crm hooks", "c01-001"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the replay is delivered", func() bool { return len(rcv.accepted()) == 3 })
	if got := rcv.accepted(); !strings.HasPrefix(got[2], "c01-001 ") {
		t.Errorf("accepted %v", got)
	}
	if n, _ := a.engine.DeadLetters("", 0); len(n) != 0 {
		t.Errorf("dead letters after replay: %v", n)
	}
}

// Purging a webhook deletes its messages from the shared stream, whichever
// instance would have delivered them.
func TestPurgeQueuedEmptiesTheWebhooksShareOfTheStream(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	a := startInstance(t, srv, endpoint(rcv.URL))
	a.store.Serve(nil) // delivers nothing: what is published stays in the stream
	waitFor(t, 5*time.Second, "A consumes nothing", func() bool {
		a.store.serving.mu.Lock()
		defer a.store.serving.mu.Unlock()
		return len(a.store.serving.running) == 0
	})
	for turn := range 5 {
		send(t, a, "c07", turn)
	}
	waitFor(t, 5*time.Second, "published", func() bool { return published(a) })
	for _, want := range []int{5, 0} {
		if n, err := a.store.PurgeQueued("crm hooks"); n != want || err != nil {
			t.Errorf("purged %d, %v; want %d", n, err, want)
		}
	}
	if len(rcv.accepted()) != 0 {
		t.Errorf("delivered %v", rcv.accepted())
	}
}

// Messages spooled while NATS is down are published once it is back.
func TestSpoolHoldsMessagesWhileNATSIsDown(t *testing.T) {
	dir := t.TempDir()
	opts := &server.Options{JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	srv.ReadyForConnections(10 * time.Second)
	port := srv.Addr().(interface{ String() string }).String()
	rcv := newSink(t)
	a := startInstance(t, srv, endpoint(rcv.URL))
	send(t, a, "c00", 0)
	waitFor(t, 10*time.Second, "the first turn is delivered", func() bool { return len(rcv.accepted()) == 1 })
	srv.Shutdown()
	srv.WaitForShutdown()
	for turn := 1; turn < 20; turn++ {
		send(t, a, "c00", turn)
	}
	if s := a.forwarder.Stats(); s.Spooled != 19 {
		t.Fatalf("spooled %d", s.Spooled)
	}
	_, p, _ := strings.Cut(port, ":")
	opts2 := *opts
	fmt.Sscan(p, &opts2.Port)
	srv2, err := server.NewServer(&opts2)
	if err != nil {
		t.Fatal(err)
	}
	go srv2.Start()
	srv2.ReadyForConnections(10 * time.Second)
	t.Cleanup(srv2.Shutdown)
	waitFor(t, 20*time.Second, "every turn is delivered", func() bool { return len(rcv.accepted()) >= 20 })
	checkDelivered(t, rcv.accepted(), []string{"c00"}, 20)
}

// Conversation state written through one instance is read by another.
func TestConversationStateIsShared(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	rcv := newSink(t)
	a := startInstance(t, srv, endpoint(rcv.URL))
	b := startInstance(t, srv, endpoint(rcv.URL))
	<-a.c.Ready()
	<-b.c.Ready()
	sa, sb := a.c.State(mapState{}), b.c.State(mapState{})
	sa.Put("chatwoot 42", []byte(`{"priority":"low"}`))
	if got := string(sb.Get("chatwoot 42")); got != `{"priority":"low"}` {
		t.Errorf("B reads %q", got)
	}
	if got := sb.Get("chatwoot 43"); got != nil {
		t.Errorf("unknown conversation: %q", got)
	}
}

type mapState map[string][]byte

func (m mapState) Get(k string) []byte    { return m[k] }
func (m mapState) Put(k string, v []byte) { m[k] = v }

// With three replicas on a three-node cluster, losing one node loses
// nothing: what was published before goes on being delivered, in order.
func TestThreeReplicasSurviveALostNode(t *testing.T) {
	nodes := natstest.StartCluster(t)
	rcv := newSink(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	c, err := Connect(Config{URLs: urls, Replicas: 3, Partitions: 2, Failover: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	spool, _ := delivery.OpenBolt(filepath.Join(t.TempDir(), "spool.db"))
	fw, err := c.NewForwarder(spool, 1000, 1<<20, nopForward{})
	if err != nil {
		t.Fatal(err)
	}
	st := c.NewStore()
	engine, _ := delivery.New(st, delivery.Options{})
	st.Attach(engine)
	in := &instance{c: c, forwarder: fw, engine: engine, store: st}
	t.Cleanup(in.stop)
	select {
	case <-c.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("R3 streams not created: no meta leader?")
	}
	rcv.setAnswer(func(string) int { return 503 })
	engine.Apply([]delivery.Endpoint{endpoint(rcv.URL, 500*time.Millisecond)})
	st.Serve([]string{"crm hooks"})
	for turn := range 10 {
		send(t, in, "c00", turn)
	}
	waitFor(t, 10*time.Second, "published to three replicas", func() bool { return published(in) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.out.Info(ctx)
	if err != nil || info.Config.Replicas != 3 || info.State.Msgs != 10 {
		t.Fatalf("stream: %+v, %v", info, err)
	}
	for _, n := range nodes {
		if n.ClientURL() != c.nc.ConnectedUrl() {
			n.Shutdown()
			break
		}
	}
	rcv.setAnswer(func(string) int { return 200 })
	for turn := 10; turn < 20; turn++ {
		send(t, in, "c00", turn)
	}
	waitFor(t, 20*time.Second, "every turn is delivered", func() bool { return len(rcv.accepted()) >= 20 })
	checkDelivered(t, rcv.accepted(), []string{"c00"}, 20)
}
