package caddymodule

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/tidwall/gjson"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const testSecret = "whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI"

// Ports of the Caddy sites under test: one with chat_webhooks, one plain
// reverse_proxy to the same upstream, to compare what clients get.
const (
	withModulePort = 19380
	plainPort      = 19381
)

// chatBackend is a stand-in OpenAI-compatible backend. A streamed answer
// waits on release after its first chunk, so tests can observe streaming.
type chatBackend struct {
	*httptest.Server
	release chan struct{}
}

func newChatBackend(t *testing.T) *chatBackend {
	b := &chatBackend{release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !gjson.GetBytes(body, "stream").Bool() {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"chatcmpl-42","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Your order ships tomorrow."},"finish_reason":"stop"}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		io.WriteString(w, "data: {\"id\":\"chatcmpl-43\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Your order \"}}]}\n\n")
		rc.Flush()
		select {
		case <-b.release:
		case <-time.After(5 * time.Second):
		}
		io.WriteString(w, "data: {\"id\":\"chatcmpl-43\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"ships tomorrow.\"},\"finish_reason\":\"stop\"}]}\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(b.Close)
	return b
}

// received is one webhook request as a receiver got it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP webhook receiver that records what it gets and
// answers with the status its script says.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int // answers for successive requests; then 200
	got      chan received
	hold     chan struct{} // when non-nil, requests wait for it to close
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rcv := &receiver{statuses: statuses, got: make(chan received, 100)}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if rcv.hold != nil {
			<-rcv.hold
		}
		rcv.mu.Lock()
		status := http.StatusOK
		if len(rcv.statuses) > 0 {
			status, rcv.statuses = rcv.statuses[0], rcv.statuses[1:]
		}
		rcv.mu.Unlock()
		rcv.got <- received{header: r.Header.Clone(), body: body}
		w.WriteHeader(status)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

func (rcv *receiver) next(t *testing.T, within time.Duration) received {
	t.Helper()
	select {
	case d := <-rcv.got:
		return d
	case <-time.After(within):
		t.Fatalf("no webhook within %v", within)
		return received{}
	}
}

func (rcv *receiver) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case d := <-rcv.got:
		t.Fatalf("unexpected webhook: %s", d.body)
	case <-time.After(within):
	}
}

// loadCaddy runs real Caddy in-process with a memory outbox: the site on
// withModulePort has a chat_webhooks block holding chat, then the
// directives in rest. Optional more are: global options, further sites,
// chat_webhooks app options.
func loadCaddy(t *testing.T, chat, rest string, more ...string) {
	t.Helper()
	more = append(more, "", "", "")
	globals, sites, appOptions := more[0], more[1], more[2]
	startChatCaddy(t, testCaddyfile(globals, "outbox memory\n\t\t"+appOptions, chat, rest, sites))
}

// startCaddy proxies both test sites to backend: one with chat_webhooks
// (the openai source and webhookBlock), one plain, to compare them.
func startCaddy(t *testing.T, backend string, webhookBlock string) {
	t.Helper()
	loadCaddy(t, `source openai
		agent_id agent_1
		agent_name "Support Bot"
		`+webhookBlock,
		"reverse_proxy "+backend, "",
		fmt.Sprintf("http://localhost:%d {\n\treverse_proxy %s\n}", plainPort, backend))
}

// chatvoltProxy runs Caddy in front of a stand-in chat backend with one
// unsigned chatvolt webhook; released backends answer streams at once.
func chatvoltProxy(t *testing.T, released bool) (*chatBackend, *receiver) {
	t.Helper()
	backend := newChatBackend(t)
	if released {
		close(backend.release)
	}
	rcv := newReceiver(t)
	startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf(`webhook %s/hook {
			schema chatvolt
		}`, rcv.URL))
	return backend, rcv
}

func chatRequest(t *testing.T, port int, stream bool) *http.Response {
	t.Helper()
	body := fmt.Sprintf(`{"model":"gpt-test","stream":%t,"user":"visitor-7","messages":[{"role":"system","content":"You are a helpful shop assistant."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"When does my order ship?"}]}`, stream)
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions", port), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestChatCompletionBecomesSignedChatVoltWebhook(t *testing.T) {
	backend := newChatBackend(t)
	close(backend.release)
	rcv := newReceiver(t)
	startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf(`webhook %s/hook {
			schema chatvolt
			sign standard %s
		}`, rcv.URL, testSecret))

	for _, tc := range []struct {
		name   string
		stream bool
		respID string
	}{
		{"json answer", false, "chatcmpl-42"},
		{"streamed answer", true, "chatcmpl-43"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := chatRequest(t, withModulePort, tc.stream)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			d := rcv.next(t, time.Second)
			wh, err := standardwebhooks.NewWebhook(testSecret)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(d.body, d.header); err != nil {
				t.Errorf("signature does not verify with the Standard Webhooks library: %v", err)
			}
			want := map[string]any{
				"eventType":     "AGENT_USER_MESSAGE",
				"agentId":       "agent_1",
				"agentName":     "Support Bot",
				"channel":       "api",
				"isAiEnabled":   true,
				"messageId":     tc.respID,
				"userMessage":   "When does my order ship?",
				"agentResponse": "Your order ships tomorrow.",
			}
			var got map[string]any
			if err := json.Unmarshal(d.body, &got); err != nil {
				t.Fatalf("payload is not JSON: %v: %s", err, d.body)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, core := range []string{"conversationId", "conversationStatus", "conversationPriority", "organizationId", "createdAt"} {
				if _, ok := got[core]; !ok {
					t.Errorf("core attribute %s missing: %s", core, d.body)
				}
			}
			if id, _ := got["conversationId"].(string); id == "" {
				t.Errorf("conversationId is empty: %s", d.body)
			}
		})
	}
}

func TestOneConversationKeepsOneDerivedID(t *testing.T) {
	_, rcv := chatvoltProxy(t, true)
	var ids []string
	for _, stream := range []bool{false, true, false} {
		resp := chatRequest(t, withModulePort, stream)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ids = append(ids, gjson.GetBytes(rcv.next(t, time.Second).body, "conversationId").String())
	}
	if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("conversation ids of one conversation differ: %q", ids)
	}
}

func TestClientGetsByteIdenticalResponses(t *testing.T) {
	chatvoltProxy(t, true)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%t", stream), func(t *testing.T) {
			read := func(port int) (int, http.Header, []byte) {
				resp := chatRequest(t, port, stream)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				resp.Header.Del("Date")
				return resp.StatusCode, resp.Header, b
			}
			s1, h1, b1 := read(withModulePort)
			s2, h2, b2 := read(plainPort)
			if s1 != s2 || !bytes.Equal(b1, b2) {
				t.Errorf("with module: %d %q\nplain: %d %q", s1, b1, s2, b2)
			}
			if fmt.Sprint(h1) != fmt.Sprint(h2) {
				t.Errorf("headers differ:\nwith module: %v\nplain:       %v", h1, h2)
			}
		})
	}
}

func TestStreamedChunksReachClientBeforeUpstreamFinishes(t *testing.T) {
	backend, rcv := chatvoltProxy(t, false)
	resp := chatRequest(t, withModulePort, true)
	defer resp.Body.Close()
	// The upstream holds the rest of its answer until release is closed, so
	// reading the first chunk proves the module does not buffer the stream.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, "Your order ") {
		t.Errorf("first line %q is not the first chunk", line)
	}
	rcv.none(t, 100*time.Millisecond) // nothing is delivered before the stream ends
	close(backend.release)
	io.Copy(io.Discard, resp.Body)
	if got := gjson.GetBytes(rcv.next(t, time.Second).body, "agentResponse").String(); got != "Your order ships tomorrow." {
		t.Errorf("agentResponse %q, want the reassembled stream", got)
	}
}

func TestReceiverTroubleNeverTouchesTheProxiedRequest(t *testing.T) {
	backend := newChatBackend(t)
	close(backend.release)

	t.Run("receiver hangs", func(t *testing.T) {
		rcv := newReceiver(t)
		rcv.hold = make(chan struct{})
		startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf(`webhook %s/hook {
			schema chatvolt
		}`, rcv.URL))
		for i := 0; i < 3; i++ {
			assertProxiedAnswer(t, i%2 == 1)
		}
		// All three answers arrived while the receiver held its first request.
		close(rcv.hold)
		rcv.next(t, time.Second)
	})

	t.Run("receiver answers 500 then recovers", func(t *testing.T) {
		rcv := newReceiver(t, 500, 500)
		startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf(`webhook %s/hook {
			schema chatvolt
			retry 10ms 10ms 10ms
		}`, rcv.URL))
		assertProxiedAnswer(t, false)
		ids := map[string]bool{}
		for i := 0; i < 3; i++ {
			ids[rcv.next(t, 2*time.Second).header.Get("webhook-id")] = true
		}
		if len(ids) != 1 {
			t.Errorf("retries must keep one webhook-id, got %v", ids)
		}
	})

	t.Run("receiver down", func(t *testing.T) {
		rcv := newReceiver(t)
		url := rcv.URL
		rcv.Close()
		startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf(`webhook %s/hook {
			schema chatvolt
		}`, url))
		assertProxiedAnswer(t, false)
	})
}

// assertProxiedAnswer checks that a chat request through the module gets
// the backend's whole answer.
func assertProxiedAnswer(t *testing.T, stream bool) {
	t.Helper()
	resp := chatRequest(t, withModulePort, stream)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte("ships tomorrow")) {
		t.Fatalf("proxied request: %d %s", resp.StatusCode, b)
	}
}

func TestUpstreamDownYieldsUnansweredMessage(t *testing.T) {
	rcv := newReceiver(t)
	startCaddy(t, "127.0.0.1:1", fmt.Sprintf(`webhook %s/hook {
			schema chatvolt
		}`, rcv.URL))
	resp := chatRequest(t, withModulePort, false)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want Caddy's own 502", resp.StatusCode)
	}
	got := rcv.next(t, time.Second).body
	if e := gjson.GetBytes(got, "eventType").String(); e != "USER_MESSAGE_RECEIVED" {
		t.Errorf("eventType %q, want USER_MESSAGE_RECEIVED: %s", e, got)
	}
	if gjson.GetBytes(got, "agentResponse").Exists() {
		t.Errorf("agentResponse must be absent without an answer: %s", got)
	}
}
