package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchBody is a ChatVolt AGENT_USER_MESSAGE payload of a typical exchange.
var benchBody = []byte(`{"eventType":"AGENT_USER_MESSAGE","conversationId":"5f2b8c1e9a7d4c3b2a1f0e9d8c7b6a59","agentId":"agent_1","agentName":"Support Bot","channel":"api","conversationStatus":null,"conversationPriority":null,"isAiEnabled":true,"organizationId":null,"createdAt":"2024-10-27T03:33:20.250Z","messageId":"chatcmpl-42","userMessage":"When does my order ship?","agentResponse":"Your order ships tomorrow."}`)

// benchEngines runs fn as a sub-benchmark per store kind, each with a fresh
// engine whose queue limits are out of the way.
func benchEngines(b *testing.B, opts Options, fn func(b *testing.B, eng *Engine)) {
	for _, kind := range []struct {
		name string
		open func() (Store, error)
	}{
		{"memory", func() (Store, error) { return NewMemoryStore(), nil }},
		{"bolt", func() (Store, error) { return OpenBolt(filepath.Join(b.TempDir(), "outbox.db")) }},
	} {
		b.Run(kind.name, func(b *testing.B) {
			store, err := kind.open()
			if err != nil {
				b.Fatal(err)
			}
			opts.MaxQueued, opts.MaxQueuedBytes = 1<<30, 1<<40
			eng, err := New(store, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			fn(b, eng)
		})
	}
}

// BenchmarkEnqueue measures accepting messages, durably for bolt, from
// parallel callers (as the Caddy handlers are) while a receiver drains the
// queue.
func BenchmarkEnqueue(b *testing.B) {
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer rx.Close()
	benchEngines(b, Options{}, func(b *testing.B, eng *Engine) {
		if err := eng.SetEndpoint(Endpoint{Name: "rx", URL: rx.URL, Ordered: true}); err != nil {
			b.Fatal(err)
		}
		enqueueParallel(b, eng, 16, 64) // many handlers at once, so group commits can form
	})
}

// enqueueParallel enqueues b.N messages to endpoint rx from parallelism
// goroutines per CPU, spread over lanes lanes, and returns how many.
func enqueueParallel(b *testing.B, eng *Engine, parallelism, lanes int) int64 {
	var n atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			m := Message{ID: "m" + strconv.FormatInt(i, 10), Endpoint: "rx", Lane: strconv.FormatInt(i%int64(lanes), 10), Body: benchBody}
			if err := eng.Enqueue(context.Background(), m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	return n.Load()
}

// BenchmarkEnqueueOne measures one caller storing the messages of one
// exchange (one per webhook, two here) at a time: the latency a pipeline
// worker waits for, durably for bolt, without concurrent callers to share
// a commit with. The receiver is down, so delivery takes no CPU.
func BenchmarkEnqueueOne(b *testing.B) {
	benchEngines(b, Options{}, func(b *testing.B, eng *Engine) {
		for _, name := range []string{"a", "b"} {
			// Port 1 refuses connections; retries are far away.
			if err := eng.SetEndpoint(Endpoint{Name: name, URL: "http://127.0.0.1:1/", Ordered: true, Retry: []time.Duration{time.Hour}}); err != nil {
				b.Fatal(err)
			}
		}
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			id, lane := "m"+strconv.Itoa(i), strconv.Itoa(i%1000)
			if err := eng.Enqueue(ctx,
				Message{ID: id, Endpoint: "a", Lane: lane, Body: benchBody},
				Message{ID: id, Endpoint: "b", Lane: lane, Body: benchBody}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// countObserver counts deliveries.
type countObserver struct {
	NopObserver
	delivered atomic.Int64
}

func (o *countObserver) Delivered(string, string, time.Duration) { o.delivered.Add(1) }

// BenchmarkDeliver measures the engine alone end to end: b.N messages in
// 1000 lanes enqueued by 16 callers and delivered to a loopback receiver
// answering 204; ns/op is the time per delivered message.
func BenchmarkDeliver(b *testing.B) {
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer rx.Close()
	obs := &countObserver{}
	benchEngines(b, Options{Observer: obs}, func(b *testing.B, eng *Engine) {
		obs.delivered.Store(0)
		if err := eng.SetEndpoint(Endpoint{Name: "rx", URL: rx.URL, Ordered: true}); err != nil {
			b.Fatal(err)
		}
		n := enqueueParallel(b, eng, 8, 1000)
		for obs.delivered.Load() < n {
			time.Sleep(time.Millisecond)
		}
	})
}
