package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/journal"
)

// loadClients send turns of their own conversations through Caddy until
// stopped, and remember which ones got their whole answer.
type loadClients struct {
	mu       sync.Mutex
	answered map[string]bool
	next     map[string]int
	changed  chan struct{}
}

func newLoadClients() *loadClients {
	return &loadClients{answered: map[string]bool{}, next: map[string]int{}, changed: make(chan struct{}, 1)}
}

// run sends turns of convs, one client per conversation, until stop is
// closed; a turn that fails (Caddy was killed) ends that client.
func (l *loadClients) run(convs []string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, conv := range convs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				l.mu.Lock()
				label := turnLabel(conv, l.next[conv])
				l.next[conv]++
				l.mu.Unlock()
				status, err := chatTurn(client, procPort, conv, label)
				if err != nil {
					return
				}
				if status == http.StatusOK {
					l.mu.Lock()
					l.answered[label] = true
					l.mu.Unlock()
					select {
					case l.changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	return &wg
}

func (l *loadClients) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answered)
}

// Caddy killed with SIGKILL in the middle of continuous traffic, with no
// pause before the kill, loses no exchange whose client got its answer:
// every one of them reaches the receiver after the restart, under one
// webhook-id however often it is delivered. Three kills in a row, the
// later ones while the earlier ones' exchanges may still be replayed.
func TestSIGKILLUnderLoadLosesNoAnsweredExchange(t *testing.T) {
	bin := buildCaddy(t)
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	home := t.TempDir()
	config := writeProcConfig(t, home, `source openai
		conversation_id request.header.X-Conversation-Id
		webhook `+sink.URL()+`/hook {
			name crm
			schema chatvolt
			sign standard `+sinkSecret+`
			retry 1s 1s 1s 1s 1s
		}`, backend)

	load := newLoadClients()
	const kills, perRound = 3, 150
	for round := range kills {
		proc := startCaddyProcess(t, bin, config, home)
		stop := make(chan struct{})
		var convs []string
		for c := range 4 {
			convs = append(convs, fmt.Sprintf("kill%d-%d", round, c))
		}
		clients := load.run(convs, stop)
		want := (round + 1) * perRound
		deadline := time.After(20 * time.Second)
		for load.count() < want {
			select {
			case <-load.changed:
			case <-deadline:
				t.Fatalf("round %d: %d exchanges answered within 20s, want %d", round, load.count(), want)
			}
		}
		proc.kill()
		close(stop)
		clients.Wait()
	}
	startCaddyProcess(t, bin, config, home)

	answered := load.count()
	ids := map[string]map[string]bool{} // userMessage → webhook-ids
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, got := sink.snapshot()
		clear(ids)
		for _, d := range got {
			msg := gjson.GetBytes(d.body, "userMessage").String()
			if ids[msg] == nil {
				ids[msg] = map[string]bool{}
			}
			ids[msg][d.id] = true
		}
		missing = missing[:0]
		for label := range load.answered {
			if ids[label] == nil {
				missing = append(missing, label)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("%d of %d answered exchanges never reached the receiver: %q", len(missing), answered, missing)
	}
	for msg, set := range ids {
		if len(set) != 1 {
			t.Errorf("%q was delivered under %d webhook-ids %v: a replay must name it as the first delivery did", msg, len(set), keys(set))
		}
	}
	m := scrapeMetrics(t, procAdmin)
	t.Logf("%d exchanges answered across %d kills; the last start replayed %v from the journal",
		answered, kills, m["caddy_chat_webhooks_journal_replayed_total"])
}

// handlerRouteKey is the route key the chat_webhooks handler of a
// Caddyfile gets when it provisions.
func handlerRouteKey(t *testing.T, cfg string) uint64 {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	handlers := chatHandlers(adapted)
	if len(handlers) != 1 {
		t.Fatalf("%d chat_webhooks handlers, want 1", len(handlers))
	}
	var h Handler
	if err := json.Unmarshal(handlers[0], &h); err != nil {
		t.Fatalf("handler JSON %s: %v", handlers[0], err)
	}
	key, err := routeKey(&h)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// openAITurn is a finished OpenAI chat completion exchange of conversation
// conv, as the handler captures it.
func openAITurn(conv, msg string) capture.Exchange {
	now := time.Now()
	return capture.Exchange{
		Method: "POST", Host: fmt.Sprintf("localhost:%d", withModulePort), Path: "/v1/chat/completions",
		RequestHeader:  http.Header{"Content-Type": {"application/json"}, "X-Conversation-Id": {conv}},
		RequestBody:    []byte(`{"model":"gpt-test","messages":[{"role":"user","content":"` + msg + `"}]}`),
		Status:         200,
		ResponseHeader: http.Header{"Content-Type": {"application/json"}},
		ResponseBody: []byte(`{"id":"chatcmpl-` + msg + `","object":"chat.completion","model":"gpt-test",` +
			`"choices":[{"index":0,"message":{"role":"assistant","content":"re: ` + msg + `"},"finish_reason":"stop"}]}`),
		RemoteAddr: "127.0.0.1:40000",
		Start:      now.Add(-50 * time.Millisecond),
		End:        now,
	}
}

// At start, the exchanges a killed process journalled but did not mark
// stored are derived and delivered, under the event ids their journal
// origin gives them; marked ones are not; ones of a handler configuration
// that is gone are dropped and counted; a torn end is skipped and counted.
func TestStartReplaysWhatTheJournalHoldsUncommitted(t *testing.T) {
	sink := newHookSink(t, nil)
	outbox := filepath.Join(t.TempDir(), "outbox.db")
	cfg := chatConfig(outbox, `source openai
		conversation_id request.header.X-Conversation-Id
		webhook `+sink.URL()+`/hook {
			name crm
			schema chatvolt
			sign standard `+sinkSecret+`
		}`, "127.0.0.1:9")
	key := handlerRouteKey(t, cfg)

	jn, _, err := journal.Open(journalDir(outbox), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tickets []journal.Ticket
	for i, k := range []uint64{key, key, key, key + 1} {
		ex := openAITurn("replayed", fmt.Sprintf("turn-%d", i))
		tk, err := jn.Append(k, &ex)
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	if err := jn.Commit(tickets[1:2]); err != nil {
		t.Fatal(err)
	}
	jn.Close()
	segs, _ := filepath.Glob(filepath.Join(journalDir(outbox), "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("journal segments %v, want one", segs)
	}
	// A frame torn where the records end: its header not yet written, part
	// of its payload written.
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	copy(data[len(bytes.TrimRight(data, "\x00"))+8:], "X\x07\x01")
	if err := os.WriteFile(segs[0], data, 0o600); err != nil {
		t.Fatal(err)
	}

	replayed := counterValue(metrics.journalReplayed)
	torn := counterValue(metrics.journalTornTails)
	orphaned := counterValue(metrics.exchangesDropped.WithLabelValues("handler_changed"))
	startChatCaddy(t, cfg)

	got := sink.waitDistinct(2, 5*time.Second)
	want := map[string]string{
		"turn-0": eventID(tickets[0].Origin(), 0),
		"turn-2": eventID(tickets[2].Origin(), 0),
	}
	for _, d := range got {
		msg := gjson.GetBytes(d.body, "userMessage").String()
		if want[msg] == "" || d.id != want[msg] {
			t.Errorf("delivered %q under webhook-id %q; want exactly %v", msg, d.id, want)
		}
		delete(want, msg)
	}
	for name, c := range map[string]struct {
		got, before, want float64
	}{
		"journal_replayed_total":                     {counterValue(metrics.journalReplayed), replayed, 2},
		"journal_torn_tails_total":                   {counterValue(metrics.journalTornTails), torn, 1},
		`exchanges_dropped_total{"handler_changed"}`: {counterValue(metrics.exchangesDropped.WithLabelValues("handler_changed")), orphaned, 1},
	} {
		if c.got-c.before != c.want {
			t.Errorf("%s grew by %v, want %v", name, c.got-c.before, c.want)
		}
	}
	// What is left is the new run's segment in use and the one made ready
	// after it.
	waitUntil(t, 5*time.Second, "the earlier run's segment deleted", func() bool {
		left, _ := filepath.Glob(filepath.Join(journalDir(outbox), "*.seg"))
		return len(left) == 2 && !slices.Contains(left, segs[0])
	})
}

// The journal lives beside a durable outbox and is opened when the
// configuration starts; journal off, or an outbox in memory, has none.
func TestJournalIsBesideADurableOutboxUnlessOff(t *testing.T) {
	for _, tc := range []struct {
		name, options string
		want          bool
	}{
		{"bbolt", "", true},
		{"journal off", "journal off", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outbox := filepath.Join(t.TempDir(), "outbox.db")
			startChatCaddy(t, testCaddyfile("", "outbox bbolt "+outbox+"\n\t\t"+tc.options, "source openai", "respond 200", ""))
			_, err := os.Stat(journalDir(outbox))
			if exists := err == nil; exists != tc.want {
				t.Errorf("journal directory exists: %t, want %t (%v)", exists, tc.want, err)
			}
		})
	}
}
