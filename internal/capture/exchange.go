// Package capture holds what the proxy records of one request and its
// response, the input of derivation.
package capture

import (
	"net/http"
	"time"
)

// Exchange is one finished request/response pair as the proxy saw it. Bodies
// are the captured copies, possibly truncated at the capture cap and possibly
// still content-encoded (the client's Accept-Encoding reaches the upstream).
type Exchange struct {
	Method string
	Host   string
	Path   string
	// RawQuery is the URL's query, parsed only when a rule reads it.
	RawQuery      string
	RequestHeader http.Header
	RequestBody   []byte
	// RequestTruncated reports that the request body was longer than the cap.
	RequestTruncated bool

	// Status is the response status; 0 when no response was written (for
	// example the upstream was down and the error went to Caddy's error route).
	Status            int
	ResponseHeader    http.Header
	ResponseBody      []byte
	ResponseTruncated bool
	// Aborted reports that the response did not finish normally (client gone,
	// upstream stream broken, handler error).
	Aborted bool

	RemoteAddr string
	Start, End time.Time
}
