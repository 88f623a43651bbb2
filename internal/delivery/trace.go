package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// Tracer makes a span of every delivery attempt of a message that carries
// a trace context. The Caddy layer backs it with OpenTelemetry while
// Caddy's tracing runs.
type Tracer interface {
	// StartAttempt starts the span of the next attempt of rec, a child of
	// rec.Traceparent, and returns the traceparent to send (the span's)
	// and a func that ends the span with the attempt's HTTP status (0 if
	// none) and failure class ("" when delivered).
	StartAttempt(rec *Record) (traceparent string, end func(status int, class string))
}

// startAttempt returns the traceparent an attempt of rec sends, and what
// ends its span.
func (e *Engine) startAttempt(rec *Record) (string, func(int, string)) {
	if e.opts.Tracer == nil || rec.Traceparent == "" {
		return rec.Traceparent, func(int, string) {}
	}
	return e.opts.Tracer.StartAttempt(rec)
}

// setTrace sends the attempt's W3C trace context, so that the receiver's
// work joins the trace of the chat request the message came from.
func setTrace(h http.Header, traceparent, tracestate string) {
	if traceparent == "" {
		return
	}
	h["Traceparent"] = []string{traceparent}
	if tracestate != "" {
		h["Tracestate"] = []string{tracestate}
	}
}

// ChildTraceparent returns a W3C traceparent in the same trace as parent
// with a new span id, and false when parent is not a valid version-00
// traceparent (then nothing is propagated: a malformed header from traffic
// must not reach receivers).
func ChildTraceparent(parent string) (string, bool) {
	parts := strings.Split(strings.TrimSpace(parent), "-")
	if len(parts) < 4 || parts[0] == "ff" || len(parts[0]) != 2 || !isHex(parts[0]) ||
		len(parts[1]) != 32 || !isHex(parts[1]) || allZero(parts[1]) ||
		len(parts[2]) != 16 || !isHex(parts[2]) || allZero(parts[2]) ||
		len(parts[3]) != 2 || !isHex(parts[3]) || parts[0] == "00" && len(parts) != 4 {
		return "", false
	}
	var span [8]byte
	for allZero(hex.EncodeToString(span[:])) {
		rand.Read(span[:])
	}
	return "00-" + parts[1] + "-" + hex.EncodeToString(span[:]) + "-" + parts[3], true
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }
