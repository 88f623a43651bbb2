package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/transform"
)

// presetCase is one entry of transform/testdata/presets/cases.json, the
// specification of what every preset derives; transform's own test reads the
// same file without Caddy.
type presetCase struct {
	Name          string            `json:"name"`
	Method        string            `json:"method"`
	Target        string            `json:"target"`
	RequestType   string            `json:"request_type"`
	RequestHeader map[string]string `json:"request_header"`
	Request       string            `json:"request"`
	Status        int               `json:"status"`
	ResponseType  string            `json:"response_type"`
	Response      string            `json:"response"`
	Cut           string            `json:"cut"`
	Events        []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
}

const presetFixtures = "../transform/testdata/presets"

func presetBody(t *testing.T, s string) []byte {
	if s == "" || strings.HasPrefix(s, "{") {
		return []byte(s)
	}
	b, err := os.ReadFile(filepath.Join(presetFixtures, s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every preset case, sent through real Caddy to a backend that answers with
// the case's response, reaches a real receiver as exactly the case's events
// (in the standard envelope, whose data is the canonical event).
func TestPresetsThroughCaddyYieldExactEvents(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(presetFixtures, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []presetCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var current presetCase
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		c := current
		mu.Unlock()
		body := presetBody(t, c.Response)
		if c.Cut != "" {
			body = body[:bytes.Index(body, []byte(c.Cut))]
		}
		switch {
		case c.ResponseType != "":
			w.Header().Set("Content-Type", c.ResponseType)
		case strings.HasSuffix(c.Response, ".sse"):
			w.Header().Set("Content-Type", "text/event-stream")
		case len(body) > 0:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(c.Status)
		w.Write(body)
	}))
	defer backend.Close()
	rcv := newReceiver(t)
	chat := fmt.Sprintf("source %s\n\t\twebhook %s/hook {\n\t\t\tordering none\n\t\t}", strings.Join(transform.PresetNames(), " "), rcv.URL)
	// The plain port's site has the same module but no upstream, for the
	// cases where the backend is down. Each case stands alone, so no
	// conversation memory carries attributes from one case to the next.
	loadCaddy(t, chat, "reverse_proxy "+backend.Listener.Addr().String(), "",
		fmt.Sprintf("http://localhost:%d {\n\tchat_webhooks {\n\t\t%s\n\t}\n\treverse_proxy 127.0.0.1:1\n}", plainPort, chat),
		"conversation_state off")

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			mu.Lock()
			current = c
			mu.Unlock()
			port := withModulePort
			if c.Status == 0 {
				port = plainPort
			}
			req, _ := http.NewRequest(c.Method, fmt.Sprintf("http://localhost:%d%s", port, c.Target), bytes.NewReader(presetBody(t, c.Request)))
			req.Header.Set("Content-Type", "application/json")
			if c.RequestType != "" {
				req.Header.Set("Content-Type", c.RequestType)
			}
			for k, v := range c.RequestHeader {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			// Deliveries of one exchange may arrive in any order.
			var got []received
			for range c.Events {
				got = append(got, rcv.next(t, 2*time.Second))
			}
			rcv.none(t, 30*time.Millisecond)
			for _, want := range c.Events {
				found := false
				for i, g := range got {
					if g.body != nil && gjson.GetBytes(g.body, "type").String() == want.Type &&
						jsonEqual([]byte(gjson.GetBytes(g.body, "data").Raw), want.Data) {
						got[i].body, found = nil, true
						break
					}
				}
				if !found {
					t.Errorf("no delivery of %s %s", want.Type, want.Data)
				}
			}
			for _, g := range got {
				if g.body != nil {
					t.Errorf("unexpected delivery %s", g.body)
				}
			}
		})
	}
}
