package caddymodule

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/natstest"
)

// Several Caddy instances sharing one NATS JetStream outbox: instance A runs
// in-process (caddytest, testAdmin, withModulePort), instance B is the
// built binary (procAdmin, procPort), both on an embedded NATS server.

// natsOption is the outbox option of an instance on srv: its own spool,
// shared stream names, and a short failover for tests.
func natsOption(srv *server.Server, spool, stream string) string {
	return fmt.Sprintf(`outbox nats %s {
			stream %s
			partitions 4
			failover 3s
			spool %s
		}`, srv.ClientURL(), stream, spool)
}

// instanceB writes instance B's Caddyfile: like A's, on procAdmin and
// procPort.
func instanceB(t *testing.T, home, appOptions, chat, backend string) string {
	t.Helper()
	config := filepath.Join(home, "Caddyfile")
	cfg := fmt.Sprintf(`{
	admin %s
	http_port %d
	chat_webhooks {
		%s
	}
}
http://localhost:%d {
	chat_webhooks {
		%s
	}
	reverse_proxy %s
}
`, procAdmin, procPort, appOptions, procPort, chat, backend)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return config
}

// A Chatwoot conversation created through instance A and re-prioritised
// through instance B: B's conversation_updated has A's previous value. A
// dead letter made by one instance is listed and replayed through the
// other's admin API.
func TestNATSInstancesShareConversationStateAndDeadLetters(t *testing.T) {
	bin := buildCaddy(t)
	srv := natstest.Start(t, t.TempDir(), -1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":150,"account_id":1,"inbox_id":3,"status":"open","priority":%q}`, gjson.GetBytes(body, "priority").String())
	}))
	defer backend.Close()
	var gone atomic.Bool
	sink := newHookSink(t, func(_ int, r *http.Request) int {
		if gone.Load() {
			return http.StatusGone
		}
		return http.StatusOK
	})
	chat := fmt.Sprintf("source chatwoot\n\t\twebhook %s/hook {\n\t\t\tname crm\n\t\t\tschema voxsig\n\t\t\tsign standard %s\n\t\t}", sink.URL(), sinkSecret)
	home := t.TempDir()
	startCaddyProcess(t, bin, instanceB(t, home, natsOption(srv, filepath.Join(home, "spool.db"), "state"), chat, backend.Listener.Addr().String()), home)
	startChatCaddy(t, testCaddyfile("", natsOption(srv, filepath.Join(t.TempDir(), "spool.db"), "state"), chat,
		"reverse_proxy "+backend.Listener.Addr().String(), ""))

	patch := func(port int, priority string) { patchPriority(t, port, priority) }
	patch(withModulePort, "low")
	sink.waitDistinct(1, 10*time.Second)
	patch(procPort, "high")
	got := sink.waitDistinct(2, 10*time.Second)
	if ch := gjson.GetBytes(got[1].body, "changed_attributes").Raw; !jsonEqual([]byte(ch), []byte(`[{"priority":{"current_value":"high","previous_value":"low"}}]`)) {
		t.Errorf("through B after A: changed_attributes %s, want priority low -> high\n%s", ch, got[1].body)
	}

	gone.Store(true)
	patch(procPort, "urgent")
	var dead []struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	waitUntil(t, 10*time.Second, "A lists the dead letter", func() bool {
		status, b := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/dead_letters?webhook=crm")
		if status != http.StatusOK {
			t.Fatalf("dead_letters: %d %s", status, b)
		}
		decodeJSON(t, b, &dead)
		return len(dead) == 1
	})
	if s := outboxStats(t, procAdmin); s.Endpoints["crm"].DeadLetters != 1 {
		t.Errorf("B's stats: %+v", s.Endpoints["crm"])
	}
	gone.Store(false)
	if status, b := adminRequest(t, testAdmin, http.MethodPost, "/chat_webhooks/replay?webhook=crm&id="+dead[0].ID); status != http.StatusOK {
		t.Fatalf("replay through A: %d %s", status, b)
	}
	got = sink.waitDistinct(3, 10*time.Second)
	if got[2].id != dead[0].ID || gjson.GetBytes(got[2].body, "changed_attributes.0.priority.current_value").String() != "urgent" {
		t.Errorf("replayed %s: %s", got[2].id, got[2].body)
	}
	if s := outboxStats(t, testAdmin); s.Endpoints["crm"].DeadLetters != 0 {
		t.Errorf("dead letters after the replay: %+v", s.Endpoints["crm"])
	}
	if _, b := adminRequest(t, procAdmin, http.MethodGet, "/chat_webhooks/stats"); gjson.GetBytes(b, "nats_spool.forwarded").Int() != 2 {
		t.Errorf("B forwarded two events: %s", b)
	}
}

// checkDuplicatesAreSameMessage fails the test if one webhook-id was accepted with two
// different bodies: a duplicate must be the same message again.
func checkDuplicatesAreSameMessage(t *testing.T, sink *hookSink) {
	t.Helper()
	_, all := sink.snapshot()
	bodies := map[string]string{}
	for _, d := range all {
		if prev, ok := bodies[d.id]; ok && prev != string(d.body) {
			t.Errorf("webhook-id %s accepted with two bodies:\n%s\n%s", d.id, prev, d.body)
		}
		bodies[d.id] = string(d.body)
	}
}

// Traffic of 50 conversations goes round-robin through two instances while
// the receiver refuses everything, so B, pinned on every partition, holds
// all of it. B is SIGKILLed; A takes its partitions over once the failover
// time has passed and the receiver is back: nothing is lost, every
// conversation arrives in order, duplicates only under the same webhook-id.
func TestNATSInstanceKilledMidRunLosesNothing(t *testing.T) {
	bin := buildCaddy(t)
	srv := natstest.Start(t, t.TempDir(), -1)
	backend := newTurnBackend(t)
	up := new(atomic.Bool)
	sink := newSwitchedSink(t, up)
	chat := fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			schema chatvolt
			sign standard %s
			retry 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms 200ms
		}`, sink.URL(), sinkSecret)
	home := t.TempDir()
	b := startCaddyProcess(t, bin, instanceB(t, home, natsOption(srv, filepath.Join(home, "spool.db"), "kill"), chat, backend.Listener.Addr().String()), home)

	var convs []string
	for i := range 50 {
		convs = append(convs, fmt.Sprintf("kill-%02d", i))
	}
	const turns = 5
	ports := []int{procPort, withModulePort}
	round := func(turn int, through func(i int) int) {
		for i, c := range convs {
			mustTurn(t, through(i), c, turnLabel(c, turn))
		}
	}
	round(0, func(int) int { return procPort })
	waitUntil(t, 10*time.Second, "B holds the first round", func() bool { return outboxStats(t, procAdmin).Queued == len(convs) })
	startChatCaddy(t, testCaddyfile("", natsOption(srv, filepath.Join(t.TempDir(), "spool.db"), "kill"), chat,
		"reverse_proxy "+backend.Listener.Addr().String(), ""))
	for turn := 1; turn < 3; turn++ {
		round(turn, func(i int) int { return ports[(i+turn)%2] })
		// B is pinned on every partition: what A spools reaches B too.
		waitUntil(t, 10*time.Second, "B holds every turn so far", func() bool {
			return outboxStats(t, procAdmin).Queued == len(convs)*(turn+1)
		})
	}
	if _, got := sink.snapshot(); len(got) != 0 {
		t.Fatalf("the receiver refuses everything, yet %d deliveries were accepted", len(got))
	}
	// A's stats count what B holds too.
	if _, st := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/stats"); gjson.GetBytes(st, "nats_queued.crm").Int() != int64(len(convs)*3) ||
		gjson.GetBytes(st, "queued").Int() != 0 {
		t.Errorf("A's stats: %s", st)
	}

	b.kill()
	up.Store(true)
	for turn := 3; turn < turns; turn++ {
		round(turn, func(int) int { return withModulePort })
	}
	got := sink.waitDistinct(len(convs)*turns, 30*time.Second)
	checkOrder(t, got, convs, turns)
	checkDuplicatesAreSameMessage(t, sink)
	waitUntil(t, 10*time.Second, "A holds nothing more", func() bool { return outboxStats(t, testAdmin).Queued == 0 })
}

// NATS stops for ten seconds under traffic and comes back: every proxied
// turn is answered as usual meanwhile, and every event is delivered, in
// order, from the spool.
func TestNATSDownForTenSecondsLosesNothing(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, dir, -1)
	port := srv.Addr().(*net.TCPAddr).Port
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	startChatCaddy(t, testCaddyfile("", natsOption(srv, filepath.Join(t.TempDir(), "spool.db"), "outage"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			schema chatvolt
			sign standard %s
		}`, sink.URL(), sinkSecret), "reverse_proxy "+backend.Listener.Addr().String(), ""))

	convs := []string{"outage-a", "outage-b", "outage-c", "outage-d"}
	var turns atomic.Int64
	var slowest atomic.Int64
	stop := make(chan struct{})
	traffic := make(chan error, 1)
	go func() {
		for turn := 0; ; turn++ {
			select {
			case <-stop:
				traffic <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, c := range convs {
				start := time.Now()
				status, err := chatTurn(http.DefaultClient, withModulePort, c, turnLabel(c, turn))
				if err != nil || status != http.StatusOK {
					traffic <- fmt.Errorf("turn %d of %s: status %d, %v", turn, c, status, err)
					return
				}
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
			turns.Store(int64(turn + 1))
		}
	}()
	waitUntil(t, 10*time.Second, "traffic flows to the receiver", func() bool { got, _ := sink.distinct(); return len(got) >= 2*len(convs) })
	srv.Shutdown()
	srv.WaitForShutdown()
	during := turns.Load()
	time.Sleep(10 * time.Second) // the outage under test
	if turns.Load()-during < 20 {
		t.Errorf("only %d rounds of turns were proxied while NATS was down", turns.Load()-during)
	}
	natstest.Start(t, dir, port)
	waitUntil(t, 10*time.Second, "more traffic after NATS is back", func() bool { return turns.Load() > during+40 })
	close(stop)
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}
	n := int(turns.Load()) * len(convs)
	got := sink.waitDistinct(n, 30*time.Second)
	checkOrder(t, got, convs, int(turns.Load()))
	if s := time.Duration(slowest.Load()); s > time.Second {
		t.Errorf("slowest proxied turn took %v", s)
	}
	checkDuplicatesAreSameMessage(t, sink)
}

// The cluster example in the README adapts.
func TestClusterExampleCaddyfileAdapts(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile.cluster.example")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.cluster.example"})
	if err != nil {
		t.Fatalf("Caddyfile.cluster.example: %v", err)
	}
	if kind := gjson.GetBytes(out, "apps.chat_webhooks.outbox.kind").String(); kind != "nats" {
		t.Errorf("outbox kind %q in %s", kind, out)
	}
}

// `caddy validate` of an outbox nats configuration neither connects to NATS
// nor creates the spool.
func TestValidateWithNATSOutboxTouchesNothing(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	spool := filepath.Join(t.TempDir(), "spool.db")
	cfg := "{\n\tadmin off\n\tchat_webhooks {\n\t\t" + natsOption(srv, spool, "validate") + "\n\t}\n}\n" +
		siteConfig(withModulePort, "webhook http://127.0.0.1:9/hook {\n\t\t\tname crm\n\t\t}", "127.0.0.1:9")
	if err := validate(t, cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if v, _ := srv.Varz(nil); v.TotalConnections != 0 {
		t.Errorf("validate made %d connections to NATS", v.TotalConnections)
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("validate created the spool: %v", err)
	}
}

// A reload that adds a webhook keeps the connection and the spool, and the
// instance starts delivering the new webhook's partitions too.
func TestNATSReloadAddsAWebhook(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), -1)
	backend := newTurnBackend(t)
	crm, audit := newHookSink(t, nil), newHookSink(t, nil)
	outbox := natsOption(srv, filepath.Join(t.TempDir(), "spool.db"), "reload")
	hook := func(sink *hookSink, name string) string {
		return fmt.Sprintf("webhook %s/hook {\n\t\t\tname %s\n\t\t\tschema chatvolt\n\t\t}\n\t\t", sink.URL(), name)
	}
	cfg := func(hooks string) string {
		return testCaddyfile("", outbox, "source openai\n\t\t"+hooks, "reverse_proxy "+backend.Listener.Addr().String(), "")
	}
	startChatCaddy(t, cfg(hook(crm, "crm")))
	mustTurn(t, withModulePort, "reload-a", turnLabel("reload-a", 0))
	crm.waitDistinct(1, 10*time.Second)
	if err := reloadCaddy(cfg(hook(crm, "crm") + hook(audit, "audit"))); err != nil {
		t.Fatal(err)
	}
	mustTurn(t, withModulePort, "reload-a", turnLabel("reload-a", 1))
	checkOrder(t, crm.waitDistinct(2, 10*time.Second), []string{"reload-a"}, 2)
	if got := audit.waitDistinct(1, 10*time.Second); gjson.GetBytes(got[0].body, "userMessage").String() != turnLabel("reload-a", 1) {
		t.Errorf("audit got %s", got[0].body)
	}
}
