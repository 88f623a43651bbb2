package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "caddy"
const metricsSubsystem = "chat_webhooks"

// metrics are created once per process and registered into every
// configuration's registry, so counters survive reloads as the pipeline does.
var metrics = struct {
	queued           prometheus.Gauge
	exchangesDropped *prometheus.CounterVec
	trafficProblems  *prometheus.CounterVec
	eventsDerived    *prometheus.CounterVec
	userInfoFailures prometheus.Counter
	enqueued         *prometheus.CounterVec
	delivered        *prometheus.CounterVec
	failed           *prometheus.CounterVec
	retried          *prometheus.CounterVec
	dropped          *prometheus.CounterVec
	deadLettered     *prometheus.CounterVec
	queueDepth       *queueDepths
	latency          *prometheus.HistogramVec
}{
	queued: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "pipeline_queued",
		Help: "Exchanges waiting to be turned into events.",
	}),
	exchangesDropped: counter("exchanges_dropped_total", "Exchanges not turned into events, by reason.", "reason"),
	trafficProblems: counter("traffic_problems_total",
		"Exchanges whose traffic could not be read in full (not JSON, truncated, undecodable...), by problem.", "problem"),
	eventsDerived: counter("events_derived_total", "Canonical events derived from traffic, by type.", "type"),
	userInfoFailures: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "user_info_failures_total",
		Help: "External user lookups that failed; their events went out without the lookup's data.",
	}),
	enqueued:     counter("events_enqueued_total", "Webhook messages stored in the outbox.", "webhook", "schema"),
	delivered:    counter("events_delivered_total", "Webhook messages acknowledged by their receiver.", "webhook", "schema"),
	failed:       counter("events_failed_total", "Failed delivery attempts, by reason.", "webhook", "schema", "reason"),
	retried:      counter("events_retried_total", "Failed messages scheduled for another attempt.", "webhook", "schema"),
	dropped:      counter("events_dropped_total", "Webhook messages discarded without delivery, by reason.", "webhook", "schema", "reason"),
	deadLettered: counter("events_dead_lettered_total", "Webhook messages moved to the dead letters, by reason.", "webhook", "schema", "reason"),
	queueDepth: &queueDepths{
		desc: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "queue_depth"),
			"Webhook messages waiting in the outbox.", []string{"webhook", "schema"}, nil),
		depth: map[string]int{},
	},
	latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "delivery_latency_seconds",
		Help:    "Time from the end of the proxied exchange to the receiver's acknowledgement.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200},
	}, []string{"webhook", "schema"}),
}

// counter makes a counter vector of this module's namespace.
func counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help,
	}, labels)
}

func collectors() []prometheus.Collector {
	return []prometheus.Collector{metrics.queued, metrics.exchangesDropped, metrics.trafficProblems, metrics.eventsDerived, metrics.userInfoFailures,
		metrics.enqueued, metrics.delivered, metrics.failed, metrics.retried, metrics.dropped, metrics.deadLettered,
		metrics.queueDepth, metrics.latency}
}

// registerMetrics adds the collectors to a configuration's registry; a
// registry that already has them (several handlers) is fine.
func registerMetrics(reg *prometheus.Registry) {
	if reg == nil {
		return
	}
	for _, c := range collectors() {
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			panic(err)
		}
	}
}

// webhookSchemas maps webhook names to their schema, for the labels of the
// delivery events that carry only the webhook's name.
var webhookSchemas sync.Map

func schemaOf(webhook string) string {
	s, _ := webhookSchemas.Load(webhook)
	name, _ := s.(string)
	return name
}

// deliveryObserver turns the delivery engine's events into metrics.
type deliveryObserver struct{}

func (deliveryObserver) Enqueued(webhook string, n int) {
	metrics.enqueued.WithLabelValues(webhook, schemaOf(webhook)).Add(float64(n))
}

func (deliveryObserver) Delivered(webhook, schema string, latency time.Duration) {
	metrics.delivered.WithLabelValues(webhook, schema).Inc()
	metrics.latency.WithLabelValues(webhook, schema).Observe(latency.Seconds())
}

func (deliveryObserver) Failed(webhook, schema, reason string, _ int) {
	metrics.failed.WithLabelValues(webhook, schema, reason).Inc()
}

func (deliveryObserver) Retried(webhook, schema string) {
	metrics.retried.WithLabelValues(webhook, schema).Inc()
}

func (deliveryObserver) Dropped(webhook, reason string, n int) {
	metrics.dropped.WithLabelValues(webhook, schemaOf(webhook), reason).Add(float64(n))
}

func (deliveryObserver) DeadLettered(webhook, schema, reason string) {
	metrics.deadLettered.WithLabelValues(webhook, schema, reason).Inc()
}

func (deliveryObserver) QueueDepth(webhook string, depth int) {
	metrics.queueDepth.set(webhook, depth)
}

// queueDepths is the queue_depth gauge. Its schema label is looked up when
// scraped, not when the depth changes: messages left in the outbox by an
// earlier run are counted when the engine starts, before any handler has
// said which schema their webhook uses. A gauge vector set then would keep
// a series with an empty schema at that first depth for good.
type queueDepths struct {
	desc  *prometheus.Desc
	mu    sync.Mutex
	depth map[string]int
}

func (q *queueDepths) set(webhook string, depth int) {
	q.mu.Lock()
	q.depth[webhook] = depth
	q.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (q *queueDepths) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

// Collect implements prometheus.Collector.
func (q *queueDepths) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	depths := make(map[string]int, len(q.depth))
	for k, v := range q.depth {
		depths[k] = v
	}
	q.mu.Unlock()
	for webhook, depth := range depths {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(depth), webhook, schemaOf(webhook))
	}
}
