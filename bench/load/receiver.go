package main

import (
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// tokenLog remembers when each request's response was fully read, by its
// token, so that the receiver can measure delivery latency on one clock.
type tokenLog struct {
	mu   sync.Mutex
	done map[string]time.Time
}

func newTokenLog() *tokenLog { return &tokenLog{done: map[string]time.Time{}} }

func (l *tokenLog) add(tok string, t time.Time) {
	l.mu.Lock()
	l.done[tok] = t
	l.mu.Unlock()
}

func (l *tokenLog) at(tok string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.done[tok]
	return t, ok
}

// receiver records the webhooks it gets: per path, the distinct tokens
// (from the payload's user message), the distinct webhook-ids, the total,
// the delivery latency of each first arrival, the first payload (the
// minimal sender's template) and, while checkIdentity is set, each
// delivery whose headers, URL or signature are not those of the
// configuration generation that shaped its payload.
type receiver struct {
	addr          string
	sent          *tokenLog
	checkIdentity atomic.Bool
	verifiers     verifiers

	mu    sync.Mutex
	srv   *http.Server
	paths map[string]*received
}

type received struct {
	total     int
	tokens    map[string]bool
	ids       map[string]bool
	latency   []time.Duration
	last      time.Time
	sample    []byte
	sampleTok string
	mismatch  mismatches
}

// mismatches counts deliveries whose identity is not their payload's.
type mismatches struct {
	any, header, query, signature int
	examples                      []identity // the first few different ones
}

func (m *mismatches) add(id identity) {
	if id.matches() {
		return
	}
	m.any++
	if id.headerGen != id.payloadGen {
		m.header++
	}
	if id.queryGen != id.payloadGen {
		m.query++
	}
	if !id.signed {
		m.signature++
	}
	if len(m.examples) < 3 && !slices.Contains(m.examples, id) {
		m.examples = append(m.examples, id)
	}
}

func newReceiver(sent *tokenLog) (*receiver, error) {
	rx := &receiver{sent: sent}
	rx.reset()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rx.addr = ln.Addr().String()
	rx.serve(ln)
	return rx, nil
}

func (rx *receiver) reset() {
	rx.mu.Lock()
	rx.paths = map[string]*received{}
	for _, w := range webhooks {
		rx.paths[w.path()] = &received{tokens: map[string]bool{}, ids: map[string]bool{}}
	}
	rx.mu.Unlock()
}

func (rx *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(rx.handle)}
	rx.mu.Lock()
	rx.srv = srv
	rx.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: deliveries are refused.
func (rx *receiver) down() {
	rx.mu.Lock()
	srv := rx.srv
	rx.srv = nil
	rx.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (rx *receiver) up() error {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", rx.addr); err == nil {
			rx.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (rx *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	wh, known := webhookAt(r.URL.Path)
	if !known {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	tok := wh.token(body)
	var id identity
	checked := rx.checkIdentity.Load()
	if checked {
		id = rx.verifiers.identify(wh, r, body)
	}
	rx.mu.Lock()
	p := rx.paths[r.URL.Path]
	p.total++
	p.last = now
	if checked {
		p.mismatch.add(id)
	}
	if wid := r.Header.Get("Webhook-Id"); wid != "" {
		p.ids[wid] = true
	}
	if p.sample == nil && tok != "" {
		p.sample, p.sampleTok = body, tok
	}
	if tok != "" && !p.tokens[tok] {
		p.tokens[tok] = true
		if t, ok := rx.sent.at(tok); ok {
			p.latency = append(p.latency, now.Sub(t))
		}
	}
	rx.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// snapshot returns a copy of what each path received.
func (rx *receiver) snapshot() map[string]received {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	out := map[string]received{}
	for k, p := range rx.paths {
		c := *p
		c.tokens, c.ids, c.latency = maps.Clone(p.tokens), maps.Clone(p.ids), slices.Clone(p.latency)
		c.mismatch.examples = slices.Clone(p.mismatch.examples)
		out[k] = c
	}
	return out
}

// summary sums up both paths: distinct events, the time of the last
// arrival, and the sorted delivery latencies.
func (rx *receiver) summary() (n int, last time.Time, latency []time.Duration) {
	for _, p := range rx.snapshot() {
		n += len(p.tokens)
		if p.last.After(last) {
			last = p.last
		}
		latency = append(latency, p.latency...)
	}
	slices.Sort(latency)
	return n, last, latency
}

// distinct is the number of distinct events received on all paths.
func (rx *receiver) distinct() int {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	n := 0
	for _, p := range rx.paths {
		n += len(p.tokens)
	}
	return n
}
