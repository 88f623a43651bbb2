package caddymodule

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The observer resolves each webhook's series once; a webhook removed and
// configured again must still show its gauges, not update series the
// removal deleted.
func TestObserverGaugesOfARemovedWebhookComeBackWhenItReportsAgain(t *testing.T) {
	const name, schema = "removed-and-back", "chatvolt"
	obs := deliveryObserver{}
	// expect checks both gauges of the webhook; nil wants them absent.
	expect := func(stage string, depth, disabled *float64) {
		t.Helper()
		for _, g := range []struct {
			metric string
			vec    *prometheus.GaugeVec
			want   *float64
		}{{"queue_depth", metrics.queueDepth, depth}, {"webhook_disabled", metrics.disabled, disabled}} {
			v, ok := gaugeOf(t, g.vec, name, schema)
			switch {
			case g.want == nil && ok:
				t.Errorf("%s: %s is still exported (%v)", stage, g.metric, v)
			case g.want != nil && (!ok || v != *g.want):
				t.Errorf("%s: %s = %v (present %t), want %v", stage, g.metric, v, ok, *g.want)
			}
		}
	}
	value := func(v float64) *float64 { return &v }

	obs.QueueDepth(name, schema, 3)
	obs.Disabled(name, schema, true)
	expect("configured", value(3), value(1))
	obs.Removed(name, schema)
	expect("removed", nil, nil)
	obs.QueueDepth(name, schema, 5)
	obs.Disabled(name, schema, false)
	expect("configured again", value(5), value(0))
}

// gaugeOf reads the exported series of a webhook from vec, without
// creating it as WithLabelValues would.
func gaugeOf(t *testing.T, vec *prometheus.GaugeVec, webhook, schema string) (float64, bool) {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() {
		vec.Collect(ch)
		close(ch)
	}()
	var (
		value float64
		found bool
	)
	for m := range ch {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		labels := map[string]string{}
		for _, l := range out.Label {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["webhook"] == webhook && labels["schema"] == schema {
			value, found = out.Gauge.GetValue(), true
		}
	}
	return value, found
}
