package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/journal"
	"github.com/chatwebhooks/chatwebhooks/signer"
)

// The typical chat exchange of the benchmarks: the request the integration
// tests send and the backend's JSON answer.
const (
	benchRequest = `{"model":"gpt-test","stream":false,"user":"visitor-7","messages":[{"role":"system","content":"You are a helpful shop assistant."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"When does my order ship?"}]}`
	benchAnswer  = `{"id":"chatcmpl-42","object":"chat.completion","created":1730000000,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Your order ships tomorrow."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":6,"total_tokens":37}}`
)

// benchRoute is what Provision builds for `source openai`, agent_id,
// agent_name and the two webhooks of the load harness: chatvolt signed
// standard, chatzuri signed chatzuri.
func benchRoute(b *testing.B) *route {
	deriver, err := derive.New(derive.Config{
		Presets: []string{"openai"},
		Defaults: []derive.Field{
			{To: "agent.id", From: []string{"=agent_1"}},
			{To: "agent.name", From: []string{"=Support Bot"}},
		},
		State: convstate.NewMemory(0, 24*time.Hour),
	})
	if err != nil {
		b.Fatal(err)
	}
	r := &route{deriver: deriver, logger: zap.NewNop()}
	for _, wh := range []Webhook{
		{URL: "http://127.0.0.1:1/chatvolt", Schema: "chatvolt", Sign: &signer.Config{Name: "standard", Secrets: []string{testSecret}}},
		{URL: "http://127.0.0.1:1/chatzuri", Schema: "chatzuri", Sign: &signer.Config{Name: "chatzuri", Secrets: []string{"chatzuri-secret"}}},
	} {
		c, err := wh.compile(caddy.NewReplacer(), nil)
		if err != nil {
			b.Fatal(err)
		}
		r.webhooks = append(r.webhooks, c)
	}
	return r
}

// BenchmarkDeriveShapeSign is the work done for one event of a typical
// chat exchange (one exchange yields one message.replied event): derive,
// shape for the webhook, Prepare once as Enqueue does, and Sign once as
// the first delivery attempt does. "chatvolt" is one webhook; "both" the
// two webhooks of the load harness.
func BenchmarkDeriveShapeSign(b *testing.B) {
	r := benchRoute(b)
	ex := &capture.Exchange{
		Method: "POST", Host: "localhost", Path: "/v1/chat/completions",
		RequestHeader: http.Header{"Content-Type": {"application/json"}}, RequestBody: []byte(benchRequest),
		Status: 200, ResponseHeader: http.Header{"Content-Type": {"application/json"}}, ResponseBody: []byte(benchAnswer),
		Start: time.Now(), End: time.Now(),
	}
	for _, tc := range []struct {
		name     string
		webhooks []*webhook
	}{{"chatvolt", r.webhooks[:1]}, {"both", r.webhooks}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out := r.deriver.Derive(ex)
				if len(out.Events) != 1 {
					b.Fatalf("%d events", len(out.Events))
				}
				for i := range out.Events {
					for _, wh := range tc.webhooks {
						for _, p := range wh.shaper.Shape(&out.Events[i]) {
							body, err := wh.endpoint.Scheme.Prepare(p.Body)
							if err != nil {
								b.Fatal(err)
							}
							if err := wh.endpoint.Scheme.Sign(http.Header{}, out.Events[i].ID, time.Now(), body); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
			}
		})
	}
}

// BenchmarkServeHTTP measures what chat_webhooks adds to a request on the
// proxy path: capture of both bodies, the capture journal's write (as with
// the default durable outbox) and the hand-off to the pipeline queue,
// against the same next handler without it. The queue is drained by a
// goroutine that commits the journal records in batches, as the pipeline's
// workers do, and discards the exchanges, so deriving and delivering (off
// the request path) are not counted; see BenchmarkDeriveShapeSign.
func BenchmarkServeHTTP(b *testing.B) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchAnswer)
		return nil
	})
	rt := &pipeline{queue: make(chan job, 4096), logger: zap.NewNop(), done: make(chan struct{})}
	jn, _, err := journal.Open(b.TempDir(), journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer jn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		var done []journal.Ticket
		for {
			select {
			case j := <-rt.queue:
				metrics.queued.Dec()
				if j.ticket.Valid() {
					done = append(done, j.ticket)
				}
				if len(done) == 64 || len(rt.queue) == 0 {
					jn.Commit(done)
					done = done[:0]
				}
			case <-stop:
				return
			}
		}
	}()
	h := &Handler{MaxCapture: DefaultMaxCapture, route: benchRoute(b), rt: rt}
	for _, tc := range []struct {
		name    string
		journal *journal.Journal
		serve   func(w http.ResponseWriter, r *http.Request) error
	}{
		{"plain", nil, next.ServeHTTP},
		{"module", jn, func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) }},
		{"module_journal_off", nil, func(w http.ResponseWriter, r *http.Request) error { return h.ServeHTTP(w, r, next) }},
		{"module_unwanted_path", jn, func(w http.ResponseWriter, r *http.Request) error {
			r.URL.Path = "/v1/embeddings"
			return h.ServeHTTP(w, r, next)
		}},
	} {
		rt.journal.Store(tc.journal)
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(benchRequest))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				if err := tc.serve(rec, req); err != nil || rec.Code != 200 {
					b.Fatal(err, rec.Code)
				}
			}
		})
	}
	for _, reason := range []string{"full", "behind"} {
		if n := counterValue(metrics.journalSkipped.WithLabelValues(reason)); n > 0 {
			b.Errorf("%v exchanges were not journalled: the journal was %s", n, reason)
		}
	}
}
