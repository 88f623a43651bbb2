package caddymodule

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// tracerName names this module's spans' instrumentation scope.
const tracerName = "github.com/chatwebhooks/chatwebhooks"

// maxTracestate is the W3C limit on tracestate; a longer one from traffic
// is not passed on.
const maxTracestate = 512

// traceContext is the W3C trace context a batch's messages are sent in.
type traceContext struct {
	parent, state string
	// span says parent is this module's derive span, which the
	// messages' attempts are children of; otherwise parent comes from the
	// request and each message gets a span id of its own.
	span bool
}

// requestTrace is the W3C trace context of a proxied request: the
// client's, or the server span's when Caddy's tracing handler runs before
// this one (it writes it into the request's headers).
func requestTrace(ex *capture.Exchange) traceContext {
	// Canonical names: Get need not make them.
	tc := traceContext{parent: ex.RequestHeader.Get("Traceparent"), state: ex.RequestHeader.Get("Tracestate")}
	if len(tc.state) > maxTracestate {
		tc.state = ""
	}
	return tc
}

// stamp gives m its trace context; nothing when the request had no valid
// one.
func (tc traceContext) stamp(m *delivery.Message) {
	if tc.parent == "" {
		return
	}
	parent := tc.parent
	if !tc.span {
		var ok bool
		if parent, ok = delivery.ChildTraceparent(tc.parent); !ok {
			return
		}
	}
	m.Traceparent, m.Tracestate = parent, tc.state
}

// tracing makes this module's spans with the provider of Caddy's tracing
// handler, learnt from the traced requests it sees (Caddy keeps one
// provider for the process). Until one is seen, and for requests Caddy
// does not trace, messages carry the request's trace context without
// spans.
type tracing struct {
	provider atomic.Pointer[providerRef]
}

type providerRef struct{ tp trace.TracerProvider }

// startDerive starts the span of the derivation of an exchange whose
// request had trace context tc: a real one when Caddy traced the request
// (reqSpan, whose provider makes the span), a no-op one otherwise. It
// returns the span, for the caller to end, and the trace context of the
// exchange's messages.
func (t *tracing) startDerive(tc traceContext, reqSpan trace.Span) (trace.Span, traceContext) {
	sc := reqSpan.SpanContext()
	if !sc.IsValid() || !sc.IsSampled() {
		return trace.SpanFromContext(context.Background()), tc
	}
	tp := reqSpan.TracerProvider()
	t.provider.Store(&providerRef{tp})
	ctx, span := tp.Tracer(tracerName).Start(trace.ContextWithSpanContext(context.Background(), sc), "chat_webhooks derive")
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return span, traceContext{parent: carrier["traceparent"], state: carrier["tracestate"], span: true}
}

// StartAttempt implements delivery.Tracer.
func (t *tracing) StartAttempt(rec *delivery.Record) (string, func(int, string)) {
	ref := t.provider.Load()
	if ref == nil {
		return rec.Traceparent, func(int, string) {}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": rec.Traceparent, "tracestate": rec.Tracestate})
	ctx, span := ref.tp.Tracer(tracerName).Start(ctx, "chat_webhooks deliver",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("chat_webhooks.webhook", rec.Endpoint),
			attribute.String("chat_webhooks.message_id", rec.ID),
			attribute.Int("chat_webhooks.attempt", rec.Attempts+1)))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"], func(status int, class string) {
		if status > 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
		}
		if class != "" {
			span.SetStatus(codes.Error, class)
		}
		span.End()
	}
}
