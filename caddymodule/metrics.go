package caddymodule

import (
	"errors"
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
	queueDepth       *prometheus.GaugeVec
	latency          *prometheus.HistogramVec
	journalSkipped   *prometheus.CounterVec
	journalReplayed  prometheus.Counter
	journalTornTails prometheus.Counter
	spooled          prometheus.Gauge
	forwarded        prometheus.Counter
	forwardLag       prometheus.Histogram
	disabled         *prometheus.GaugeVec
}{
	queued:           plainGauge("pipeline_queued", "Exchanges waiting to be turned into events."),
	exchangesDropped: counter("exchanges_dropped_total", "Exchanges not turned into events, by reason.", "reason"),
	trafficProblems: counter("traffic_problems_total",
		"Exchanges whose traffic could not be read in full (not JSON, truncated, undecodable...), by problem.", "problem"),
	eventsDerived:    counter("events_derived_total", "Canonical events derived from traffic, by type.", "type"),
	userInfoFailures: plainCounter("user_info_failures_total", "External user lookups that failed; their events went out without the lookup's data."),
	enqueued:         counter("events_enqueued_total", "Webhook messages stored in the outbox.", "webhook", "schema"),
	delivered:        counter("events_delivered_total", "Webhook messages acknowledged by their receiver.", "webhook", "schema"),
	failed:           counter("events_failed_total", "Failed delivery attempts, by reason.", "webhook", "schema", "reason"),
	retried:          counter("events_retried_total", "Failed messages scheduled for another attempt.", "webhook", "schema"),
	dropped:          counter("events_dropped_total", "Webhook messages discarded without delivery, by reason.", "webhook", "schema", "reason"),
	deadLettered:     counter("events_dead_lettered_total", "Webhook messages moved to the dead letters, by reason.", "webhook", "schema", "reason"),
	queueDepth:       gauges("queue_depth", "Webhook messages waiting in the outbox.", "webhook", "schema"),
	latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "delivery_latency_seconds",
		Help:    "Time from the end of the proxied exchange to the receiver's acknowledgement.",
		Buckets: latencyBuckets,
	}, []string{"webhook", "schema"}),
	journalSkipped: counter("journal_skipped_total",
		"Exchanges not written to the capture journal (full, behind, write_error): a crash before their events are stored loses them.", "reason"),
	journalReplayed:  plainCounter("journal_replayed_total", "Exchanges an earlier process journalled but did not store, derived and stored at start."),
	journalTornTails: plainCounter("journal_torn_tails_total", "Capture journal segments whose torn or corrupt end was skipped at start."),
	spooled:          plainGauge("nats_spooled", "Webhook messages in the local spool waiting to be published to NATS (outbox nats)."),
	forwarded:        plainCounter("nats_forwarded_total", "Webhook messages published from the local spool to NATS (outbox nats)."),
	forwardLag: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "nats_forward_lag_seconds",
		Help:    "Time from the end of the proxied exchange to NATS acknowledging the message (outbox nats).",
		Buckets: latencyBuckets,
	}),
	disabled: gauges("webhook_disabled", "1 while a webhook is disabled because every attempt failed for disable_after.", "webhook", "schema"),
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200}

// plainCounter makes a counter of this module's namespace.
func plainCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help})
}

// plainGauge makes a gauge of this module's namespace.
func plainGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help})
}

// gauges makes a gauge vector of this module's namespace.
func gauges(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}, labels)
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
		metrics.queueDepth, metrics.latency, metrics.journalSkipped, metrics.journalReplayed, metrics.journalTornTails, metrics.spooled, metrics.forwarded, metrics.forwardLag, metrics.disabled}
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

// deliveryObserver turns the delivery engine's events into metrics.
type deliveryObserver struct{}

func (deliveryObserver) Enqueued(webhook, schema string, n int) {
	metricHandles.enqueued.get(seriesKey{webhook, schema}).Add(float64(n))
}

func (deliveryObserver) Delivered(webhook, schema string, latency time.Duration) {
	k := seriesKey{webhook, schema}
	metricHandles.delivered.get(k).Inc()
	metricHandles.latency.get(k).Observe(latency.Seconds())
}

func (deliveryObserver) Failed(webhook, schema, reason string, _ int) {
	metricHandles.failed.get(seriesKey{webhook, schema, reason}).Inc()
}

func (deliveryObserver) Retried(webhook, schema string) {
	metricHandles.retried.get(seriesKey{webhook, schema}).Inc()
}

func (deliveryObserver) Dropped(webhook, schema, reason string, n int) {
	metricHandles.dropped.get(seriesKey{webhook, schema, reason}).Add(float64(n))
}

func (deliveryObserver) DeadLettered(webhook, schema, reason string, n int) {
	metricHandles.deadLettered.get(seriesKey{webhook, schema, reason}).Add(float64(n))
}

func (deliveryObserver) QueueDepth(webhook, schema string, depth int) {
	metricHandles.queueDepth.get(seriesKey{webhook, schema}).Set(float64(depth))
}

// Removed drops the queue depth of a webhook that is gone; its counters
// stay, as Prometheus counters do.
func (deliveryObserver) Removed(webhook, schema string) {
	k := seriesKey{webhook, schema}
	metricHandles.queueDepth.delete(k, metrics.queueDepth.DeleteLabelValues)
	metricHandles.disabled.delete(k, metrics.disabled.DeleteLabelValues)
}

func (deliveryObserver) Disabled(webhook, schema string, disabled bool) {
	v := 0.0
	if disabled {
		v = 1
	}
	metricHandles.disabled.get(seriesKey{webhook, schema}).Set(v)
}
