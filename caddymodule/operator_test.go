package caddymodule

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// A chat request carrying a W3C trace context, as a traced client or
// Caddy's tracing handler sends it.
const (
	requestTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	requestSpanID  = "00f067aa0ba902b7"
)

// TestDeliveredMessageFoundByEventIDWithItsAttempts proxies a traced turn
// to a receiver that fails once: the delivered message is then listed and
// found by its event id with both attempts and the headers sent, secrets
// masked; the receiver got a traceparent in the request's trace; the stats
// count it; and the retention keeps the newest two of three.
func TestDeliveredMessageFoundByEventIDWithItsAttempts(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	startChatCaddy(t, testCaddyfile("", "outbox bbolt "+filepath.Join(t.TempDir(), "outbox.db")+"\n\t\tkeep_delivered 1h 2",
		fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			schema chatvolt
			sign standard %s
			header Authorization "Bearer crm-token"
			retry 10ms
			rate_limit 100/1s
		}`, sink.URL(), sinkSecret), "reverse_proxy "+backend.Listener.Addr().String(), ""))

	req := turnRequest(withModulePort, "conv-traced", "where is my order?")
	req.Header.Set("traceparent", "00-"+requestTraceID+"-"+requestSpanID+"-01")
	req.Header.Set("tracestate", "vendor=abc")
	if status, err := sendTurn(http.DefaultClient, req); err != nil || status != http.StatusOK {
		t.Fatalf("turn: %d %v", status, err)
	}
	got := sink.waitDistinct(1, 5*time.Second)[0]
	sent := got.header.Get("traceparent")
	parts := strings.Split(sent, "-")
	if len(parts) != 4 || parts[1] != requestTraceID || parts[2] == requestSpanID || got.header.Get("tracestate") != "vendor=abc" {
		t.Errorf("receiver got traceparent %q tracestate %q: want trace %s with a span of its own", sent, got.header.Get("tracestate"), requestTraceID)
	}

	var b []byte
	waitUntil(t, 5*time.Second, "the delivery to be listed", func() bool {
		_, b = adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/messages?state=delivered&webhook=crm&conversation=conv-traced")
		return gjson.GetBytes(b, "messages.#").Int() == 1
	})
	if gjson.GetBytes(b, "messages.0.id").String() != got.id {
		t.Fatalf("messages: %s", b)
	}
	status, b := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/message?id="+url.QueryEscape(got.id))
	m := gjson.GetBytes(b, "0")
	if status != http.StatusOK || m.Get("state").String() != "delivered" || m.Get("webhook").String() != "crm" ||
		m.Get("body.eventType").String() != "AGENT_USER_MESSAGE" || m.Get("traceparent").String() != sent {
		t.Fatalf("message: %d %s", status, b)
	}
	if statuses := m.Get("history.#.status").String(); statuses != "[500,200]" {
		t.Errorf("attempt statuses %s, want [500,200]", statuses)
	}
	if m.Get("history.0.class").String() != "status" || m.Get("history.1.class").Exists() || m.Get("history.1.duration_ns").Int() <= 0 {
		t.Errorf("attempts %s", m.Get("history"))
	}
	for h, want := range map[string]string{"Authorization": "[masked]", "Webhook-Signature": "[masked]", "Webhook-Id": got.id, "Traceparent": sent} {
		if v := m.Get("headers." + h + ".0").String(); v != want {
			t.Errorf("header %s shown as %q, want %q", h, v, want)
		}
	}
	if strings.Contains(string(b), "crm-token") || strings.Contains(string(b), sinkSecret) {
		t.Errorf("a secret is shown: %s", b)
	}
	s := outboxStats(t, testAdmin).Endpoints["crm"]
	if s.Delivered != 1 || s.Failed != 1 || s.Retried != 1 || s.LastSuccess == nil || s.LastFailure == nil || s.RateLimit != "100/1s" {
		t.Errorf("stats %+v: want 1 delivered, 1 failed, 1 retried, both times, rate_limit 100/1s", s)
	}

	// Retention: two more deliveries push the first out.
	mustTurn(t, withModulePort, "conv-2", "second")
	mustTurn(t, withModulePort, "conv-3", "third")
	sink.waitDistinct(3, 5*time.Second)
	waitUntil(t, 5*time.Second, "the first delivery to leave the window of 2", func() bool {
		status, _ := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/message?id="+url.QueryEscape(got.id))
		return status == http.StatusNotFound
	})
	// The two conversations are stored by different pipeline workers, so
	// either may have the higher sequence number: compare as a set.
	_, b = adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/messages?state=delivered")
	kept := gjson.GetBytes(b, "messages.#.conversation").String()
	if kept != `["conv-2","conv-3"]` && kept != `["conv-3","conv-2"]` {
		t.Errorf("kept %s, want the 2 newest (conv-2 and conv-3): %s", kept, b)
	}
	_, b = adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/messages?state=delivered&limit=1")
	first := gjson.GetBytes(b, "messages.0.conversation").String()
	next := gjson.GetBytes(b, "next_before").String()
	_, b = adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/messages?state=delivered&limit=1&before="+next)
	if second := gjson.GetBytes(b, "messages.0.conversation").String(); second == first || second == "" || gjson.GetBytes(b, "next_before").Exists() {
		t.Errorf("second page after %s: %s", first, b)
	}
}

// TestDisabledWebhookKeepsItsMessagesUntilEnabled lets every attempt fail
// past disable_after: the webhook is disabled (stats, metric) with its
// message kept, and POST /chat_webhooks/enable delivers it once the
// receiver is back.
func TestDisabledWebhookKeepsItsMessagesUntilEnabled(t *testing.T) {
	backend := newTurnBackend(t)
	sink, healthy := switchableSink(t, http.StatusServiceUnavailable)
	startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			schema chatvolt
			retry 5ms 5ms 5ms 5ms 5ms 5ms 5ms 5ms
			disable_after 1ms
		}`, sink.URL()), backend.Listener.Addr().String()))
	mustTurn(t, withModulePort, "conv-off", "hello")
	waitUntil(t, 5*time.Second, "crm to be disabled", func() bool {
		return outboxStats(t, testAdmin).Endpoints["crm"].DisabledAt != nil
	})
	s := outboxStats(t, testAdmin).Endpoints["crm"]
	if s.Queued != 1 || s.DeadLetters != 0 || s.FailingSince == nil {
		t.Errorf("disabled webhook's stats %+v: want its message queued", s)
	}
	if m := scrapeMetrics(t, testAdmin); m[`caddy_chat_webhooks_webhook_disabled{schema="chatvolt",webhook="crm"}`] != 1 {
		t.Errorf("webhook_disabled metric not 1")
	}

	healthy.Store(true)
	status, b := adminRequest(t, testAdmin, http.MethodPost, "/chat_webhooks/enable?webhook=crm")
	if status != http.StatusOK || !gjson.GetBytes(b, "was_disabled").Bool() {
		t.Fatalf("enable: %d %s", status, b)
	}
	sink.waitDistinct(1, 5*time.Second)
	waitUntil(t, 5*time.Second, "the queue to drain", func() bool {
		s := outboxStats(t, testAdmin).Endpoints["crm"]
		return s.Queued == 0 && s.DisabledAt == nil && s.Delivered == 1
	})
}

// otlpCollector is a real OTLP/HTTP trace receiver: it keeps the spans
// Caddy's exporter sends.
type otlpCollector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPCollector(t *testing.T) (*otlpCollector, string) {
	c := &otlpCollector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// named returns the spans of trace traceID called name, oldest first.
func (c *otlpCollector) named(traceID, name string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if hex.EncodeToString(s.TraceId) == traceID && s.Name == name {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *tracepb.Span) int { return cmp.Compare(a.StartTimeUnixNano, b.StartTimeUnixNano) })
	return out
}

// TestCaddyTracingRecordsDeriveAndAttemptSpans runs Caddy's tracing handler
// in front of the module, exporting to a real OTLP receiver, with no client
// trace context: Caddy starts the trace (its id in the response), the
// trace holds the derive span, under it one span per delivery attempt with
// its status, and the receiver's traceparent names the attempt that
// reached it. It is the package's only test with tracing: Caddy keeps one
// tracer provider, with its first exporter, while configurations use it.
func TestCaddyTracingRecordsDeriveAndAttemptSpans(t *testing.T) {
	collector, url := newOTLPCollector(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url+"/v1/traces")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
	backend := newTurnBackend(t)
	sink := newHookSink(t, func(n int, _ *http.Request) int {
		if n == 0 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	startChatCaddy(t, testCaddyfile("", "outbox memory", fmt.Sprintf(`source openai
		webhook %s/hook {
			name crm
			retry 10ms
		}`, sink.URL()), "tracing\n\theader X-Trace-Id {http.vars.trace_id}\n\treverse_proxy "+backend.Listener.Addr().String(), ""))
	resp, err := http.DefaultClient.Do(turnRequest(withModulePort, "conv-spans", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	traceID := resp.Header.Get("X-Trace-Id")
	got := sink.waitDistinct(1, 5*time.Second)[0]

	var derive, attempts []*tracepb.Span
	waitUntil(t, 10*time.Second, "a derive span and two attempt spans exported", func() bool {
		derive, attempts = collector.named(traceID, "chat_webhooks derive"), collector.named(traceID, "chat_webhooks deliver")
		return len(derive) == 1 && len(attempts) == 2
	})
	for i, want := range []struct {
		status int64
		failed bool
	}{{http.StatusBadGateway, true}, {http.StatusOK, false}} {
		a := attempts[i]
		if !bytes.Equal(a.ParentSpanId, derive[0].SpanId) || a.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("attempt %d is not a client span under the derive span", i+1)
		}
		attrs := map[string]*commonpb.AnyValue{}
		for _, kv := range a.Attributes {
			attrs[kv.Key] = kv.Value
		}
		if attrs["http.response.status_code"].GetIntValue() != want.status || attrs["chat_webhooks.webhook"].GetStringValue() != "crm" ||
			attrs["chat_webhooks.attempt"].GetIntValue() != int64(i+1) || (a.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR) != want.failed {
			t.Errorf("attempt %d: attributes %v, status %v", i+1, a.Attributes, a.Status)
		}
	}
	if want := "00-" + traceID + "-" + hex.EncodeToString(attempts[1].SpanId) + "-01"; got.header.Get("traceparent") != want {
		t.Errorf("receiver got traceparent %q, want the delivering attempt's %q", got.header.Get("traceparent"), want)
	}
}
