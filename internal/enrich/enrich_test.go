package enrich

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

// lookupServer is a user lookup service that counts and records requests.
type lookupServer struct {
	*httptest.Server
	requests atomic.Int32
	mu       sync.Mutex
	paths    []string // escaped path and query of each request
	headers  []http.Header
}

func newLookupServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *lookupServer {
	s := &lookupServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.RequestURI())
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func answer(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

func newEnricher(t *testing.T, cfg Config) *Enricher {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func contactEvent(data string) event.Event {
	return event.Event{ID: "evt_1", Type: event.MessageReceived, Time: time.Date(2024, 6, 18, 23, 22, 36, 0, time.UTC), Data: []byte(data)}
}

func TestEnricherFillsTheContact(t *testing.T) {
	srv := newLookupServer(t, answer(`{"id":42,"firstName":"Ana","lastName":"Lima","email":"ana@crm.example","phoneNumber":"+5511999990000","plan":"pro","tags":["vip"],"note":null}`))
	e := newEnricher(t, Config{URL: srv.URL + "/users/{contact.id}?conv={conversation.id}", Header: http.Header{"Authorization": {"Bearer t0ken"}}})
	in := contactEvent(`{"conversation":{"id":"c 1&x=2"},"contact":{"id":"u 1/2?","email":"own@example.com","attributes":{"plan":"free"}},"message":{"content":"hi"}}`)
	orig := string(in.Data)
	out, err := e.Enrich(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"conversation":{"id":"c 1&x=2"},"contact":{"id":"u 1/2?","email":"own@example.com","attributes":{"plan":"free","id":42,"tags":["vip"]},"name":"Ana Lima","phone":"+5511999990000"},"message":{"content":"hi"}}`
	if string(out.Data) != want {
		t.Errorf("data\n got %s\nwant %s", out.Data, want)
	}
	if string(in.Data) != orig {
		t.Errorf("the input event was modified: %s", in.Data)
	}
	if got, want := srv.paths[0], "/users/u%201%2F2%3F?conv=c+1%26x%3D2"; got != want {
		t.Errorf("request %s, want %s", got, want)
	}
	if got := srv.headers[0].Get("Authorization"); got != "Bearer t0ken" {
		t.Errorf("Authorization %q", got)
	}
}

func TestEnricherConfigurableMapping(t *testing.T) {
	srv := newLookupServer(t, answer(`{"data":{"user":{"display":"Bo","mail":"bo@example.com"}}}`))
	e := newEnricher(t, Config{URL: srv.URL + "/u/{contact.id}", Root: "data.user",
		Fields: map[string][]string{"contact.name": {"display"}, "contact.email": {"mail"}}})
	out, err := e.Enrich(context.Background(), contactEvent(`{"contact":{"id":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"contact":{"id":1,"email":"bo@example.com","name":"Bo"}}`; string(out.Data) != want {
		t.Errorf("\n got %s\nwant %s", out.Data, want)
	}
}

func TestEnricherCachesAndCollapsesLookups(t *testing.T) {
	release := make(chan struct{})
	srv := newLookupServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		answer(`{"name":"Ana"}`)(w, r)
	})
	e := newEnricher(t, Config{URL: srv.URL + "/users/{contact.id}", CacheSize: 2})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := e.Enrich(context.Background(), contactEvent(`{"contact":{"id":1}}`)); err != nil || !strings.Contains(string(out.Data), "Ana") {
				t.Errorf("concurrent lookup: %s %v", out.Data, err)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them all wait on the one lookup
	close(release)
	wg.Wait()
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("8 concurrent lookups of one contact made %d requests, want 1", n)
	}
	if _, err := e.Enrich(context.Background(), contactEvent(`{"contact":{"id":1}}`)); err != nil || srv.requests.Load() != 1 {
		t.Errorf("a cached answer was asked again (%d requests, %v)", srv.requests.Load(), err)
	}
	for _, id := range []string{"2", "3", "1"} { // 1 was evicted by 2 and 3
		e.Enrich(context.Background(), contactEvent(`{"contact":{"id":`+id+`}}`))
	}
	if n := srv.requests.Load(); n != 4 {
		t.Errorf("%d requests, want 4: the cache must hold at most 2 answers", n)
	}
}

func TestEnricherFailures(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}
	tests := []struct {
		name   string
		handle func(http.ResponseWriter, *http.Request)
		want   string
	}{
		{"server error", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, "answered 500"},
		{"redirect is not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		}, "answered 302"},
		{"not JSON", answer(`<html>`), "not JSON"},
		{"not an object", answer(`["Ana"]`), "no user object"},
		{"slow server, short timeout", slow, "deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newLookupServer(t, tc.handle)
			e := newEnricher(t, Config{URL: srv.URL + "/users/{contact.id}?token=s3cret", Timeout: 50 * time.Millisecond})
			in := contactEvent(`{"contact":{"id":7}}`)
			start := time.Now()
			out, err := e.Enrich(context.Background(), in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("failure took %v", elapsed)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), srv.URL) {
				t.Errorf("the error leaks the URL: %v", err)
			}
			if string(out.Data) != string(in.Data) {
				t.Errorf("a failed lookup changed the event: %s", out.Data)
			}
			if _, err2 := e.Enrich(context.Background(), in); err2 == nil || srv.requests.Load() != 1 {
				t.Errorf("a recent failure must be remembered: %d requests, error %v", srv.requests.Load(), err2)
			}
		})
	}
}

func TestEnricherRetriesAfterTheFailureTTL(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	srv := newLookupServer(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(503)
			return
		}
		answer(`{"name":"Ana"}`)(w, r)
	})
	e := newEnricher(t, Config{URL: srv.URL + "/users/{contact.id}", FailureTTL: 30 * time.Millisecond})
	if _, err := e.Enrich(context.Background(), contactEvent(`{"contact":{"id":1}}`)); err == nil {
		t.Fatal("want the 503 as an error")
	}
	fail.Store(false)
	time.Sleep(40 * time.Millisecond)
	out, err := e.Enrich(context.Background(), contactEvent(`{"contact":{"id":1}}`))
	if err != nil || !strings.Contains(string(out.Data), `"name":"Ana"`) {
		t.Errorf("after the failure TTL: %s %v", out.Data, err)
	}
}

func TestEnricherSkipsEventsWithoutTheKey(t *testing.T) {
	srv := newLookupServer(t, answer(`{"name":"Ana"}`))
	e := newEnricher(t, Config{URL: srv.URL + "/users/{contact.id}"})
	in := contactEvent(`{"message":{"content":"hi"}}`)
	out, err := e.Enrich(context.Background(), in)
	if err != nil || string(out.Data) != string(in.Data) || srv.requests.Load() != 0 {
		t.Errorf("no contact.id: %s %v, %d requests", out.Data, err, srv.requests.Load())
	}
}

func TestEnricherCallerCanGiveUp(t *testing.T) {
	srv := newLookupServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	e := newEnricher(t, Config{URL: srv.URL + "/users/{contact.id}", Timeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.Enrich(ctx, contactEvent(`{"contact":{"id":1}}`)); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("error %v", err)
	}
}

func TestEnricherConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "https://{contact.id}.crm.example/u"}, "after the host"},
		{Config{URL: "https://crm.example{contact.id}"}, "after the host"},
		{Config{URL: "ftp://crm.example/u/{contact.id}"}, "http"},
		{Config{URL: "crm.example/u/{contact.id}"}, "http"},
		{Config{URL: "https://crm.example/u/{contact.nmae}"}, "unknown event field"},
		{Config{URL: "https://crm.example/u/{contact.id"}, "unclosed"},
		{Config{URL: "https://crm.example/u", Fields: map[string][]string{"conversation.status": {"status"}}}, "contact field"},
		{Config{URL: "https://crm.example/u", Fields: map[string][]string{"contact.attributes": {"x"}}}, "contact field"},
	}
	for _, tc := range tests {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to mention %q", tc.cfg, err, tc.want)
		}
	}
}
