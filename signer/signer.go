// Package signer signs outgoing webhook requests and verifies incoming ones.
//
// It is a plain Go library (standard library only): the delivery engine calls
// a Scheme once per stored message (Prepare) and once per attempt (Sign);
// receivers written in Go call a Verifier.
package signer

import (
	"net/http"
	"time"
)

// Scheme signs webhook requests for one receiver.
type Scheme interface {
	// Prepare returns the body exactly as it must be sent. Most schemes
	// return body unchanged; a scheme whose receivers re-serialise the JSON
	// before checking it returns that serialisation, so that what is signed
	// and what is sent are the same bytes. It is called once, before the
	// message is stored, never per attempt.
	Prepare(body []byte) ([]byte, error)

	// Sign sets the signature headers of one delivery attempt. id is the
	// message id, stable across retries; ts is the attempt's time; body is
	// the exact bytes sent.
	Sign(h http.Header, id string, ts time.Time, body []byte) error
}

// Verifier checks a received webhook.
type Verifier interface {
	// Verify returns nil when the headers carry a valid signature of body.
	Verify(body []byte, h http.Header) error
}
