package caddymodule

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// seriesKey is the label values of one series, in the vector's order;
// unused trailing ones are empty.
type seriesKey [3]string

// handles resolves a vector's series once per label values: WithLabelValues
// hashes the values and takes the vector's lock on every call, which the
// event path would pay per message. Label values are few (event types,
// problems, webhooks, reasons), so a miss copies the map and readers never
// lock. A series is created on first use, as with WithLabelValues, so
// /metrics shows the same series.
type handles[V any] struct {
	labels  int
	resolve func(seriesKey) V
	mu      sync.Mutex // serialises misses and deletes
	m       atomic.Pointer[map[seriesKey]V]
}

func newHandles[V any](labels int, with func(...string) (V, error)) *handles[V] {
	return &handles[V]{labels: labels, resolve: func(k seriesKey) V {
		v, err := with(k[:labels]...)
		if err != nil {
			panic(err) // the label count is fixed at each call site
		}
		return v
	}}
}

// get returns the series of k.
func (h *handles[V]) get(k seriesKey) V {
	if m := h.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	m := map[seriesKey]V{}
	if old != nil {
		m = maps.Clone(*old)
	}
	v := h.resolve(k)
	m[k] = v
	h.m.Store(&m)
	return v
}

// delete deletes the series of k from its vector with del (the vector's
// DeleteLabelValues) and drops its handle, so that the next get makes a
// new series. Both happen under the lock, so a get that misses meanwhile
// cannot keep a handle of the deleted series.
func (h *handles[V]) delete(k seriesKey, del func(...string) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.m.Load(); old != nil {
		if _, ok := (*old)[k]; ok {
			m := maps.Clone(*old)
			delete(m, k)
			h.m.Store(&m)
		}
	}
	del(k[:h.labels]...)
}

// metricHandles are the handles of the vectors updated per event or
// message; the others are updated rarely enough for WithLabelValues.
var metricHandles = struct {
	eventsDerived, trafficProblems *handles[prometheus.Counter]
	enqueued, delivered, retried   *handles[prometheus.Counter]
	failed, dropped, deadLettered  *handles[prometheus.Counter]
	latency                        *handles[prometheus.Observer]
	queueDepth, disabled           *handles[prometheus.Gauge]
}{
	eventsDerived:   newHandles(1, metrics.eventsDerived.GetMetricWithLabelValues),
	trafficProblems: newHandles(1, metrics.trafficProblems.GetMetricWithLabelValues),
	enqueued:        newHandles(2, metrics.enqueued.GetMetricWithLabelValues),
	delivered:       newHandles(2, metrics.delivered.GetMetricWithLabelValues),
	retried:         newHandles(2, metrics.retried.GetMetricWithLabelValues),
	failed:          newHandles(3, metrics.failed.GetMetricWithLabelValues),
	dropped:         newHandles(3, metrics.dropped.GetMetricWithLabelValues),
	deadLettered:    newHandles(3, metrics.deadLettered.GetMetricWithLabelValues),
	latency:         newHandles(2, metrics.latency.GetMetricWithLabelValues),
	queueDepth:      newHandles(2, metrics.queueDepth.GetMetricWithLabelValues),
	disabled:        newHandles(2, metrics.disabled.GetMetricWithLabelValues),
}
