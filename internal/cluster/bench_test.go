package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
	"github.com/chatwebhooks/chatwebhooks/internal/natstest"
)

// latencies records each delivery's latency, from Message.Created to the
// receiver's 2xx.
type latencies struct {
	delivery.NopObserver
	mu  sync.Mutex
	all []time.Duration
	n   atomic.Int64
}

func (l *latencies) Delivered(_, _ string, d time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d)
	l.mu.Unlock()
	l.n.Add(1)
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.all)
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(l.all[len(l.all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(l.all[len(l.all)*99/100].Microseconds())/1000, "p99-ms")
}

// enqueuer is what the pipeline hands shaped messages to.
type enqueuer interface {
	Enqueue(context.Context, ...delivery.Message) error
}

// runDeliveries enqueues b.N 1 KiB messages over 64 conversations, in
// batches of 10 as the pipeline's workers make them, perSecond messages a
// second (0: as fast as the outbox takes them), and waits until all are
// delivered.
func runDeliveries(b *testing.B, in enqueuer, obs *latencies, perSecond int) {
	body := []byte(fmt.Sprintf(`{"pad":%q}`, make([]byte, 1000)))
	var tick <-chan time.Time
	if perSecond > 0 {
		t := time.NewTicker(time.Second * 10 / time.Duration(perSecond))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	for i := 0; i < b.N; i += 10 {
		if tick != nil {
			<-tick
		}
		var msgs []delivery.Message
		for j := i; j < min(i+10, b.N); j++ {
			msgs = append(msgs, delivery.Message{ID: fmt.Sprintf("m%d", j), Endpoint: "crm hooks", Identity: "v1", Lane: fmt.Sprintf("c%d", j%64), Body: body})
		}
		if err := in.Enqueue(context.Background(), msgs...); err != nil {
			b.Fatal(err)
		}
	}
	for obs.n.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	obs.report(b, time.Since(start))
}

func benchReceiver(b *testing.B) string {
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.Cleanup(rcv.Close)
	return rcv.URL
}

// The same deliveries through the bbolt outbox, through NATS on one node
// and on three nodes with three replicas: as fast as they go, then at 500
// a second. Run with e.g.
// go test -run - -bench Outbox -benchtime 3000x ./internal/cluster
func BenchmarkOutbox(b *testing.B) {
	for _, rate := range []int{0, 500} {
		name := "max"
		if rate > 0 {
			name = fmt.Sprintf("%d_per_s", rate)
		}
		b.Run("bbolt/"+name, func(b *testing.B) {
			obs := &latencies{}
			store, err := delivery.OpenBolt(filepath.Join(b.TempDir(), "outbox.db"))
			if err != nil {
				b.Fatal(err)
			}
			engine, _ := delivery.New(store, delivery.Options{Observer: obs})
			defer engine.Close()
			engine.Apply([]delivery.Endpoint{endpoint(benchReceiver(b))})
			runDeliveries(b, engine, obs, rate)
		})
		b.Run("nats_R1/"+name, func(b *testing.B) {
			benchNATS(b, []*server.Server{natstest.Start(b, b.TempDir(), -1)}, 1, rate)
		})
		b.Run("nats_R3/"+name, func(b *testing.B) {
			benchNATS(b, natstest.StartCluster(b), 3, rate)
		})
	}
}

func benchNATS(b *testing.B, nodes []*server.Server, replicas, rate int) {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	c, err := Connect(Config{URLs: urls, Replicas: replicas})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-c.Ready():
	case <-time.After(30 * time.Second):
		b.Fatal("streams not created")
	}
	spool, _ := delivery.OpenBolt(filepath.Join(b.TempDir(), "spool.db"))
	fw, _ := c.NewForwarder(spool, 1_000_000, 1<<34, nopForward{})
	obs := &latencies{}
	st := c.NewStore()
	engine, _ := delivery.New(st, delivery.Options{Observer: obs})
	st.Attach(engine)
	in := &instance{c: c, forwarder: fw, engine: engine, store: st}
	defer in.stop()
	engine.Apply([]delivery.Endpoint{endpoint(benchReceiver(b))})
	st.Serve([]string{"crm hooks"})
	for {
		st.serving.mu.Lock()
		n := len(st.serving.running)
		st.serving.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	runDeliveries(b, fw, obs, rate)
}
