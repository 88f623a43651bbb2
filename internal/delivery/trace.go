package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// setTrace sends the message's W3C trace context, so that the receiver's
// work joins the trace of the chat request the message came from.
func setTrace(h http.Header, rec *Record) {
	if rec.Traceparent == "" {
		return
	}
	h.Set("traceparent", rec.Traceparent)
	if rec.Tracestate != "" {
		h.Set("tracestate", rec.Tracestate)
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
