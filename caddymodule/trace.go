package caddymodule

import (
	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
	"github.com/chatwebhooks/chatwebhooks/transform"
)

// maxTracestate is the W3C limit on tracestate; a longer one from traffic
// is not passed on.
const maxTracestate = 512

// traceContext is the W3C trace context of a proxied chat request: the
// client's traceparent, or the server span's when Caddy's tracing handler
// runs before this one (it writes its span into the request headers).
type traceContext struct {
	parent, state string
}

func traceOf(ex *transform.Exchange) traceContext {
	tc := traceContext{parent: ex.RequestHeader.Get("traceparent"), state: ex.RequestHeader.Get("tracestate")}
	if len(tc.state) > maxTracestate {
		tc.state = ""
	}
	return tc
}

// stamp gives m a traceparent of its own in the request's trace, so that
// the receiver's spans join it; nothing when the request had no valid
// trace context.
func (tc traceContext) stamp(m *delivery.Message) {
	child, ok := delivery.ChildTraceparent(tc.parent)
	if !ok {
		return
	}
	m.Traceparent, m.Tracestate = child, tc.state
}
