package delivery

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkBacklogMemory measures the heap the engine holds for a backlog:
// 100 000 messages of a typical ChatVolt body (each its own slice, as in
// Caddy) queued in a bolt outbox while the receiver is down. heapMiB is the
// heap in use after GC, above what it was before enqueueing.
func BenchmarkBacklogMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		store, err := OpenBolt(filepath.Join(b.TempDir(), "outbox.db"))
		if err != nil {
			b.Fatal(err)
		}
		before := heapInUse()
		eng, err := New(store, Options{MaxQueued: 1 << 30, MaxQueuedBytes: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		// Port 1 refuses connections; the retry is far away.
		if err := eng.SetEndpoint(Endpoint{Name: "a", URL: "http://127.0.0.1:1/", Ordered: true, Retry: []time.Duration{time.Hour}}); err != nil {
			b.Fatal(err)
		}
		batch := make([]Message, 0, 100)
		for i := range n {
			batch = append(batch, Message{
				ID:       "msg_" + strconv.Itoa(i) + "_2b8c1e9a7d4c3b2a1f0e9d8c",
				Endpoint: "a",
				Lane:     "5f2b8c1e9a7d4c3b2a1f" + strconv.Itoa(i),
				Body:     append([]byte(nil), benchBody...),
			})
			if len(batch) == cap(batch) {
				if err := eng.Enqueue(context.Background(), batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		batch = nil
		if s, _ := eng.Stats(); s.Queued != n {
			b.Fatalf("queued %d, want %d", s.Queued, n)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/(1<<20), "heapMiB")
		b.ReportMetric(float64(after-before)/n, "B/queued")
		runtime.KeepAlive(eng)
		eng.Close()
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
