package delivery

import (
	"net/http"
	"time"
)

// Message is one webhook to deliver.
type Message struct {
	// ID identifies the message to the receiver (webhook-id or the scheme's
	// delivery id). It stays the same on every attempt and on replay so
	// that receivers can de-duplicate.
	ID string
	// Endpoint is the Name of the Endpoint to deliver to.
	Endpoint string
	// Identity is the Endpoint.Identity the message was shaped for: it is
	// delivered only with that identity's URL, headers and secrets. Empty
	// means whatever identity the endpoint has when the message is queued.
	Identity string
	// Settings, when the caller has them, is the endpoint of Identity. A
	// message whose Identity is no longer its Name's current one (shaped
	// by the previous configuration just before a reload) is then still
	// accepted and sent with these settings. They are not stored: after a
	// restart such a message becomes a dead letter (ReasonChanged).
	Settings *Endpoint `json:"-"`
	// Lane is the ordering key, e.g. the conversation id. On an ordered
	// endpoint, messages of one lane are delivered one at a time in
	// enqueue order; the empty lane is a lane like any other.
	Lane string
	// Body is the payload. Enqueue replaces it by the scheme's Prepare
	// result; it is then sent byte for byte on every attempt.
	Body []byte
	// Created is when the event happened; delivery latency is measured
	// from it. Zero means the time of Enqueue.
	Created time.Time
	// Conversation is the chat conversation the message is about, for
	// looking messages up; unlike Lane it is set on unordered endpoints too.
	Conversation string
	// Traceparent and Tracestate are the W3C trace context sent with
	// every attempt, so that the receiver's trace joins the chat request's.
	Traceparent, Tracestate string
}

// Record is a Message as the Store keeps it: pending while it has a
// delivery schedule, a dead letter once DeadAt is set.
type Record struct {
	Message
	// Seq orders records: the Store assigns increasing numbers on Add, and
	// lanes deliver in Seq order.
	Seq uint64
	// Attempts is the number of attempts made so far.
	Attempts int
	// Next is when the next attempt is due; zero means at once.
	Next time.Time
	// LastStatus is the HTTP status of the last attempt, 0 if none.
	LastStatus int
	// LastError describes the last failure. It never holds the URL,
	// headers or body.
	LastError string
	// DeadAt is when the record became a dead letter.
	DeadAt time.Time
	// Reason says why it became a dead letter: ReasonGone,
	// ReasonExhausted, ReasonRemoved or ReasonChanged.
	Reason string
	// DeliveredAt is when the receiver acknowledged it; set on the
	// delivered messages kept for lookup (Options.KeepDelivered).
	DeliveredAt time.Time
	// History holds the last attempts, oldest first, at most
	// maxHistory of them.
	History []Attempt
	// SentHeader holds the headers of the last attempt, with every value
	// that may be a secret masked (see maskHeader).
	SentHeader http.Header
}

// State names where a record is: queued (pending), delivered (kept after
// delivery for lookup) or dead (a dead letter).
func (r *Record) State() string {
	switch {
	case !r.DeliveredAt.IsZero():
		return StateDelivered
	case !r.DeadAt.IsZero():
		return StateDead
	}
	return StateQueued
}
