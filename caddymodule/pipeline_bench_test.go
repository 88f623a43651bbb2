package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// BenchmarkPipelineExchange measures the pipeline's work for one finished
// exchange, from the hand-off on the request path to its messages stored
// in the engine's memory outbox: the sequencer (derive, shard), the
// shard's worker (metrics, shaping for the two webhooks of the load
// harness, trace context) and the engine's Enqueue. Each exchange is its
// own of 1024 conversations, as under the load harness. The webhooks allow
// one attempt an hour, so delivery stays out of the figure; see
// BenchmarkDeriveShapeSign for the derive and shape share.
func BenchmarkPipelineExchange(b *testing.B) {
	r := benchRoute(b)
	a := &App{
		webhooks: map[string]*webhook{},
		routes:   []*route{r},
		opts:     delivery.Options{Observer: deliveryObserver{}, MaxQueued: 1 << 30, MaxQueuedBytes: 1 << 40},
	}
	for _, wh := range r.webhooks {
		wh.endpoint.RateLimit, wh.endpoint.RatePeriod = 1, time.Hour
		a.webhooks[wh.endpoint.Name] = wh
	}
	exchanges := make([]*capture.Exchange, 1024)
	for i := range exchanges {
		exchanges[i] = &capture.Exchange{
			Method: "POST", Host: "localhost", Path: "/v1/chat/completions",
			RequestHeader: http.Header{"Content-Type": {"application/json"}, "X-Conversation-Id": {fmt.Sprintf("conv-%d", i)}},
			RequestBody:   []byte(benchRequest),
			Status:        200, ResponseHeader: http.Header{"Content-Type": {"application/json"}}, ResponseBody: []byte(benchAnswer),
			Start: time.Now(), End: time.Now(),
		}
	}
	noSpan := trace.SpanFromContext(context.Background())
	b.ReportAllocs()
	enqueued := counterValue(metrics.enqueued.WithLabelValues(r.webhooks[0].endpoint.Name, "chatvolt"))
	dropped := counterValue(metrics.exchangesDropped.WithLabelValues("pipeline_full")) + counterValue(metrics.exchangesDropped.WithLabelValues("shard_full"))
	// A queue and shards that hold every exchange: submit never drops,
	// however far the sequencer runs ahead of the workers.
	rt := newPipeline(Outbox{Kind: "memory"}, 2*b.N+64, 2, zap.NewNop())
	if err := rt.activate(a); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		rt.submit(r, exchanges[i%len(exchanges)], noSpan)
	}
	if err := rt.Destruct(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n := counterValue(metrics.exchangesDropped.WithLabelValues("pipeline_full")) + counterValue(metrics.exchangesDropped.WithLabelValues("shard_full")) - dropped; n > 0 {
		b.Fatalf("%v exchanges dropped", n)
	}
	if n := counterValue(metrics.enqueued.WithLabelValues(r.webhooks[0].endpoint.Name, "chatvolt")) - enqueued; n != float64(b.N) {
		b.Fatalf("%v chatvolt messages stored, want %d", n, b.N)
	}
}
