package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
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
	config := filepath.Join(home, "Caddyfile")
	os.WriteFile(config, []byte(fmt.Sprintf(`{
	admin %s
	http_port %d
	chat_webhooks {
		outbox bbolt %s
	}
}
http://localhost:%d {
	chat_webhooks {
		source openai
		conversation_id request.header.X-Conversation-Id
		webhook %s/hook {
			name crm
			schema chatvolt
			sign standard `+sinkSecret+`
			retry 1s 1s 1s 1s 1s
		}
	}
	reverse_proxy %s
}
`, procAdmin, procPort, filepath.Join(home, "outbox.db"), procPort, sink.URL(), backend.Listener.Addr())), 0o644)

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
