package delivery

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkEnqueue measures accepting messages, durably for bolt, from
// parallel callers (as the Caddy handlers are) while a receiver drains the
// queue.
func BenchmarkEnqueue(b *testing.B) {
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer rx.Close()
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
			eng, err := New(store, Options{MaxQueued: 1 << 30, MaxQueuedBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			if err := eng.SetEndpoint(Endpoint{Name: "rx", URL: rx.URL, Ordered: true}); err != nil {
				b.Fatal(err)
			}
			body := []byte(`{"event":"message.received","conversation":{"id":42},"message":{"content":"hello"}}`)
			var n atomic.Int64
			b.SetParallelism(16) // many handlers at once, so group commits can form
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					m := Message{ID: "m" + strconv.FormatInt(i, 10), Endpoint: "rx", Lane: strconv.FormatInt(i%64, 10), Body: body}
					if err := eng.Enqueue(b.Context(), m); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
