package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxResponseBytes bounds what is read of a receiver's response: enough for
// an acknowledgement, and draining it lets the connection be reused.
const maxResponseBytes = 64 << 10

// outcome is the result of one attempt.
type outcome struct {
	status     int
	reason     string // empty when delivered
	detail     string // for Record.LastError and logs: no URL, headers or body
	retryAfter time.Duration
	took       time.Duration // real time: it measures a socket
	response   string        // the start of the response body, for the history
	header     http.Header   // what was sent, masked
}

func (o outcome) ok() bool { return o.reason == "" }

// send makes one signed attempt to deliver rec with the trace context
// traceparent. now is the attempt's signing time.
func send(ctx context.Context, c *endpointConfig, rec *Record, traceparent string, now time.Time) outcome {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, o := request(ctx, c, rec, traceparent, now)
	if req != nil {
		o = exchange(c, req, now)
		o.header = maskHeader(req.Header)
	}
	o.took = time.Since(start)
	return o
}

// request builds the signed request of an attempt, or says why it cannot.
func request(ctx context.Context, c *endpointConfig, rec *Record, traceparent string, now time.Time) (*http.Request, outcome) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(rec.Body))
	if err != nil {
		return nil, outcome{reason: ReasonRequest, detail: "building request: " + errorText(err)}
	}
	if err := attemptHeader(req.Header, &c.Endpoint, rec.ID, now, rec.Body); err != nil {
		return nil, outcome{reason: ReasonSign, detail: "signing: " + err.Error()}
	}
	setTrace(req.Header, traceparent, rec.Tracestate)
	return req, outcome{}
}

// exchange sends req and classifies the answer.
func exchange(c *endpointConfig, req *http.Request, now time.Time) outcome {
	resp, err := c.client.Do(req)
	if err != nil {
		return failure(err, c.Timeout)
	}
	defer resp.Body.Close()
	if c.expect != nil {
		body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		o := classify(c, resp, body, readErr, now)
		o.response = kept(body)
		return o
	}
	buf := startPool.Get().(*[maxResponseKept]byte)
	defer startPool.Put(buf)
	o := classify(c, resp, nil, nil, now)
	o.response = kept(buf[:readStart(resp.Body, buf[:])])
	return o
}

// startPool holds buffers for the start of responses, which is all an
// attempt keeps when it does not check an acknowledgement.
var startPool = sync.Pool{New: func() any { return new([maxResponseKept]byte) }}

// readStart reads the start of a response body into buf and drains the
// rest, up to maxResponseBytes, so that the connection can be reused.
func readStart(r io.Reader, buf []byte) int {
	n, err := io.ReadFull(r, buf)
	if err == nil {
		io.CopyN(io.Discard, r, maxResponseBytes-int64(len(buf)))
	}
	return n
}

// kept is the start of a response as the history keeps it.
func kept(body []byte) string {
	return strings.ToValidUTF8(string(body[:min(len(body), maxResponseKept)]), "")
}

// classify turns a response into an outcome.
func classify(c *endpointConfig, resp *http.Response, body []byte, readErr error, now time.Time) outcome {
	st := resp.StatusCode
	switch {
	case st >= 200 && st < 300:
		if c.expect != nil && (readErr != nil || !bodyMatches(c.expect, body)) {
			return outcome{status: st, reason: ReasonBody, detail: fmt.Sprintf("HTTP %d without the expected acknowledgement", st)}
		}
		return outcome{status: st}
	case st == http.StatusGone:
		return outcome{status: st, reason: ReasonGone, detail: "HTTP 410 Gone: the receiver asks not to retry"}
	case st >= 300 && st < 400:
		return outcome{status: st, reason: ReasonRedirect, detail: fmt.Sprintf("HTTP %d redirect, not followed", st)}
	}
	o := outcome{status: st, reason: ReasonStatus, detail: fmt.Sprintf("HTTP %d", st)}
	if st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable {
		o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return o
}

// attemptHeader sets the headers of one attempt to deliver body as message
// id at now; only signing can fail.
func attemptHeader(h http.Header, ep *Endpoint, id string, now time.Time, body []byte) error {
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	for k, vs := range ep.Header {
		h[k] = slices.Clone(vs) // the signer may append; ep.Header is shared
	}
	if ep.Scheme != nil {
		if err := ep.Scheme.Sign(h, id, now, body); err != nil {
			return err
		}
	}
	// Receivers de-duplicate by id: a delivery whose scheme sends none (no
	// signature, or a scheme without an id header) carries the standard one.
	if !hasID(h) {
		h["Webhook-Id"] = []string{id}
	}
	cleanHeader(h)
	return nil
}

// Preview returns the body and headers that an attempt at now to deliver
// body as message id would send, without sending anything: the scheme's
// Prepare and Sign applied as Enqueue and an attempt apply them.
func (ep Endpoint) Preview(id string, now time.Time, body []byte) ([]byte, http.Header, error) {
	if ep.Scheme != nil {
		var err error
		if body, err = ep.Scheme.Prepare(body); err != nil {
			return nil, nil, err
		}
	}
	h := http.Header{}
	if err := attemptHeader(h, &ep, id, now, body); err != nil {
		return nil, nil, err
	}
	return body, h, nil
}

// idHeaders carry a delivery's id in the built-in schemes; with an hmac
// scheme, webhook-id is sent beside its own id header, if any. They are
// canonical keys, read without canonicalising them at every attempt.
var idHeaders = []string{"Webhook-Id", "X-Chatwoot-Delivery"}

func hasID(h http.Header) bool {
	for _, k := range idHeaders {
		if vs := h[k]; len(vs) > 0 && vs[0] != "" {
			return true
		}
	}
	return false
}

// failure classifies a transport error.
func failure(err error, timeout time.Duration) outcome {
	var (
		denied    *DeniedAddressError
		netErr    net.Error
		opErr     *net.OpError
		dnsErr    *net.DNSError
		certErr   *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		alert     tls.AlertError
		recErr    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &denied):
		return outcome{reason: ReasonDenied, detail: denied.Error()}
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return outcome{reason: ReasonTimeout, detail: fmt.Sprintf("no response within %s", timeout)}
	case errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) ||
		errors.As(err, &alert) || errors.As(err, &recErr) ||
		// An alert from the receiver, e.g. "certificate required" in mTLS.
		errors.As(err, &opErr) && opErr.Op == "remote error":
		return outcome{reason: ReasonTLS, detail: errorText(err)}
	case errors.As(err, &dnsErr) || errors.As(err, &opErr) && opErr.Op == "dial":
		return outcome{reason: ReasonConnect, detail: errorText(err)}
	}
	return outcome{reason: ReasonRequest, detail: errorText(err)}
}

// errorText drops the *url.Error wrapper, whose text repeats the URL and so
// possibly a secret in its path or query.
func errorText(err error) string {
	var u *url.Error
	if errors.As(err, &u) {
		err = u.Err
	}
	return err.Error()
}

// bodyMatches reports whether the JSON object body has every member of
// want with an equal value.
func bodyMatches(want map[string]any, body []byte) bool {
	var got map[string]any
	if json.Unmarshal(body, &got) != nil {
		return false
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || !reflect.DeepEqual(gv, v) {
			return false
		}
	}
	return true
}
