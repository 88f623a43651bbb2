package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/presetcases"
)

// Every preset case of internal/derive/testdata/presets/cases.json, sent through
// real Caddy to a backend that answers with the case's response, reaches a
// real receiver as exactly the case's events (in the standard envelope,
// whose data is the canonical event). Cases of one exchange run without
// conversation memory, so none carries attributes into the next; cases of
// several steps run after a reload that turns the memory on.
func TestPresetsThroughCaddyYieldExactEvents(t *testing.T) {
	cases := presetcases.Load(t)
	var mu sync.Mutex
	var current presetcases.Exchange
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		x := current
		mu.Unlock()
		if ct := x.ResponseContentType(); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(x.Status)
		w.Write(x.ResponseBody(t))
	}))
	defer backend.Close()
	rcv := newReceiver(t)
	chat := fmt.Sprintf("source %s\n\t\twebhook %s/hook {\n\t\t\tordering none\n\t\t}", strings.Join(derive.PresetNames(), " "), rcv.URL)
	// The plain port's site has the same module but no upstream, for the
	// exchanges where the backend is down.
	load := func(state string) {
		loadCaddy(t, chat, "reverse_proxy "+backend.Listener.Addr().String(), "",
			fmt.Sprintf("http://localhost:%d {\n\tchat_webhooks {\n\t\t%s\n\t}\n\treverse_proxy 127.0.0.1:1\n}", plainPort, chat),
			"conversation_state "+state)
	}
	send := func(t *testing.T, x presetcases.Exchange) {
		mu.Lock()
		current = x
		mu.Unlock()
		port := withModulePort
		if x.Status == 0 {
			port = plainPort
		}
		req, _ := http.NewRequest(x.Method, fmt.Sprintf("http://localhost:%d%s", port, x.Target), bytes.NewReader(x.RequestBody(t)))
		req.Header.Set("Content-Type", x.RequestContentType())
		for k, v := range x.RequestHeader {
			req.Header.Set(k, v)
		}
		resp, err := turnClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		expectDeliveries(t, rcv, x.Events)
	}
	for _, stateful := range []bool{false, true} {
		load(map[bool]string{false: "off", true: "1000 1h"}[stateful])
		for _, c := range cases {
			if c.Stateful() != stateful {
				continue
			}
			t.Run(c.Name, func(t *testing.T) {
				for _, x := range c.Exchanges() {
					send(t, x)
				}
			})
		}
	}
}

// expectDeliveries receives exactly the events of one exchange, in the
// standard envelope, in any order.
func expectDeliveries(t *testing.T, rcv *receiver, events []presetcases.Event) {
	t.Helper()
	var got []received
	for range events {
		got = append(got, rcv.next(t, 2*time.Second))
	}
	rcv.none(t, 30*time.Millisecond)
	for _, want := range events {
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
}
