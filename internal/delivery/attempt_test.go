package delivery

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/signer"
)

// TestAttemptOutcomes drives one message through a receiver's answers and
// checks every wait between attempts and how it ends.
func TestAttemptOutcomes(t *testing.T) {
	ok := response{status: 200}
	s500 := response{status: 500}
	tests := []struct {
		name       string
		ep         func(*Endpoint)
		answers    []response // the last repeats
		wantDelays []time.Duration
		wantFail   string // reason of the first failure
		wantDead   string // "" = delivered
	}{
		{name: "5xx then success", answers: []response{s500, ok},
			wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonStatus},
		{name: "429 Retry-After seconds is waited", answers: []response{{status: 429, header: map[string]string{"Retry-After": "120"}}, ok},
			wantDelays: []time.Duration{2 * time.Minute}, wantFail: ReasonStatus},
		{name: "503 Retry-After date is waited", answers: []response{{status: 503, header: map[string]string{"Retry-After": newFakeClock().now.Add(time.Hour).Format(http.TimeFormat)}}, ok},
			wantDelays: []time.Duration{time.Hour}, wantFail: ReasonStatus},
		{name: "Retry-After shorter than the schedule waits the schedule", answers: []response{{status: 503, header: map[string]string{"Retry-After": "1"}}, ok},
			wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonStatus},
		{name: "Retry-After ignored on 500", answers: []response{{status: 500, header: map[string]string{"Retry-After": "120"}}, ok},
			wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonStatus},
		{name: "410 dead-letters without retries", answers: []response{{status: 410}},
			wantFail: ReasonGone, wantDead: ReasonGone},
		{name: "3xx is a failure and not followed", answers: []response{{status: 302, header: map[string]string{"Location": "/elsewhere"}}, ok},
			wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonRedirect},
		{name: "timeout is a failure", ep: func(e *Endpoint) { e.Timeout = 50 * time.Millisecond },
			answers: []response{{status: 200, delay: 5 * time.Second}, ok}, wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonTimeout},
		{name: "expect_body match delivers", ep: func(e *Endpoint) { e.ExpectBody = `{"status":"accepted"}` },
			answers: []response{{status: 200, body: `{"status":"accepted","id":7}`}}},
		{name: "expect_body mismatch is a failure", ep: func(e *Endpoint) { e.ExpectBody = `{"status":"accepted"}` },
			answers:    []response{{status: 200, body: `{"status":"queued"}`}, {status: 202, body: `{"status":"accepted"}`}},
			wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonBody},
		{name: "expect_body on a non-JSON body is a failure", ep: func(e *Endpoint) { e.ExpectBody = `{"ok":true}` },
			answers:    []response{{status: 200, body: `OK`}, {status: 200, body: `{"ok":true}`}},
			wantDelays: []time.Duration{5 * time.Second}, wantFail: ReasonBody},
		{name: "retry off dead-letters after one attempt", ep: func(e *Endpoint) { e.Retry = []time.Duration{} },
			answers: []response{s500}, wantFail: ReasonStatus, wantDead: ReasonExhausted},
		{name: "custom schedule then dead letter", ep: func(e *Endpoint) { e.Retry = []time.Duration{time.Second, time.Minute} },
			answers: []response{s500}, wantDelays: []time.Duration{time.Second, time.Minute}, wantFail: ReasonStatus, wantDead: ReasonExhausted},
		{name: "default schedule: 8 attempts then dead letter", answers: []response{s500},
			wantDelays: DefaultRetry(), wantFail: ReasonStatus, wantDead: ReasonExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rx := newReceiver(t, answers(tt.answers...))
			h := newHarness(t, NewMemoryStore(), Options{})
			ep := endpoint(rx.URL)
			if tt.ep != nil {
				tt.ep(&ep)
			}
			h.set(ep)
			h.enqueue(msg("A", 1))
			for i, want := range tt.wantDelays {
				h.waitCount("retried:rx", i+1)
				if got := h.clock.advanceToTimer(t); got != want {
					t.Fatalf("wait before attempt %d = %s, want %s", i+2, got, want)
				}
			}
			attempts := len(tt.wantDelays) + 1
			if tt.wantDead != "" {
				h.waitCount("dead:rx:"+tt.wantDead, 1)
				dl, err := h.eng.DeadLetter("rx", "msg_A1")
				if err != nil {
					t.Fatal(err)
				}
				if dl.Attempts != attempts || dl.Reason != tt.wantDead || dl.LastError == "" {
					t.Errorf("dead letter = %d attempts, reason %q, error %q", dl.Attempts, dl.Reason, dl.LastError)
				}
			} else {
				h.waitCount("delivered:rx", 1)
			}
			if tt.wantFail != "" && h.obs.get("failed:rx:"+tt.wantFail) == 0 {
				t.Errorf("no failure with reason %s", tt.wantFail)
			}
			hits := rx.got()
			if len(hits) != attempts {
				t.Errorf("receiver got %d requests, want %d", len(hits), attempts)
			}
			for _, hh := range hits {
				if hh.Path != "/" {
					t.Errorf("request to %s: a redirect was followed", hh.Path)
				}
			}
			if st, _ := h.eng.Stats(); st.Queued != 0 || st.QueuedBytes != 0 {
				t.Errorf("queue not empty at the end: %+v", st)
			}
		})
	}
}

func TestTLSVerifiedByDefaultAndConfigurable(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	h := newHarness(t, NewMemoryStore(), Options{})
	h.set(endpoint(srv.URL, func(e *Endpoint) { e.Retry = []time.Duration{} }))
	h.enqueue(msg("A", 1))
	h.waitCount("failed:rx:"+ReasonTLS, 1)

	h.set(endpoint(srv.URL, func(e *Endpoint) { e.TLS = srv.Client().Transport.(*http.Transport).TLSClientConfig }))
	h.enqueue(msg("A", 2))
	h.waitCount("delivered:rx", 1)
}

func TestSigningIsFreshPerAttemptWithAStableID(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 500}, response{status: 204}))
	h := newHarness(t, NewMemoryStore(), Options{})
	scheme := &testScheme{}
	h.set(endpoint(rx.URL, func(e *Endpoint) {
		e.Scheme = scheme
		e.Header = http.Header{"X-Tenant": {"acme\r\nX-Injected: 1"}, "content-type": {"application/vnd.test+json"}}
	}))
	m := msg("A", 1)
	m.Body = []byte(`{ "lane" : "A", "n" : 1 }`)
	h.enqueue(m)
	h.waitCount("retried:rx", 1)
	h.clock.advanceToTimer(t)
	h.waitCount("delivered:rx", 1)

	hits := rx.got()
	if len(hits) != 2 {
		t.Fatalf("%d requests, want 2", len(hits))
	}
	if n := scheme.prepared.Load(); n != 1 {
		t.Errorf("Prepare called %d times, want once", n)
	}
	for i, hh := range hits {
		if string(hh.Body) != `{"lane":"A","n":1}` {
			t.Errorf("attempt %d body %q, want the prepared body", i+1, hh.Body)
		}
		id, ts := hh.Header.Get("X-Test-Id"), hh.Header.Get("X-Test-Timestamp")
		if id != m.ID {
			t.Errorf("attempt %d id %q, want %q", i+1, id, m.ID)
		}
		if hh.Header.Get("X-Test-Signature") != testSignature(id, ts, hh.Body) {
			t.Errorf("attempt %d: signature does not verify", i+1)
		}
		if got := hh.Header.Get("X-Tenant"); strings.ContainsAny(got, "\r\n") || hh.Header.Get("X-Injected") != "" {
			t.Errorf("attempt %d: header injection: %q", i+1, got)
		}
		if ct := hh.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/vnd.test+json" {
			t.Errorf("Content-Type %q, want the static header to replace the default", ct)
		}
	}
	if a, b := hits[0].Header.Get("X-Test-Timestamp"), hits[1].Header.Get("X-Test-Timestamp"); a == b {
		t.Errorf("both attempts signed with timestamp %s; want a fresh one per attempt", a)
	}
}

// TestStandardWebhooksReceiverAccepts delivers with the real Standard
// Webhooks scheme, on the wall clock, to a receiver that verifies.
func TestStandardWebhooksReceiverAccepts(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	scheme, err := signer.NewStandard(secret)
	if err != nil {
		t.Fatal(err)
	}
	rx := newReceiver(t, func(_ int, h hit) response {
		if scheme.Verify(h.Body, h.Header) != nil {
			return response{status: 401}
		}
		return response{status: 200}
	})
	obs := newRecorder()
	eng, err := New(NewMemoryStore(), Options{Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.SetEndpoint(Endpoint{Name: "rx", URL: rx.URL, Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Enqueue(t.Context(), msg("A", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery", func() bool { return obs.get("delivered:rx")+obs.get("failed:rx") > 0 })
	if obs.get("delivered:rx") != 1 {
		t.Fatalf("receiver rejected the signature: %+v", rx.got())
	}
	if id := rx.got()[0].Header.Get("webhook-id"); id != "msg_A1" {
		t.Errorf("webhook-id %q, want the message id", id)
	}
}
