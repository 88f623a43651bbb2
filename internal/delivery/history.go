package delivery

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Record states, as Record.State and Query.State name them.
const (
	StateQueued    = "queued"
	StateDelivered = "delivered"
	StateDead      = "dead"
)

const (
	// maxHistory is how many attempts a record keeps: the first failures
	// of a long outage say less than the last ones.
	maxHistory = 10
	// maxResponseKept is how much of a receiver's answer an attempt keeps:
	// enough for an error message, little enough to keep many.
	maxResponseKept = 1024
)

// Attempt is one delivery attempt as a record keeps it.
type Attempt struct {
	// At is when the attempt started.
	At time.Time `json:"at"`
	// Duration runs from the start to the end of the response (or the
	// failure).
	Duration time.Duration `json:"duration_ns"`
	// Status is the HTTP status answered, 0 if none.
	Status int `json:"status,omitempty"`
	// Class is the failure reason (ReasonStatus, ReasonTimeout...), empty
	// when the attempt delivered the message.
	Class string `json:"class,omitempty"`
	// Error describes the failure without URL, headers or body.
	Error string `json:"error,omitempty"`
	// Response is the start of the response body, at most maxResponseKept
	// bytes.
	Response string `json:"response,omitempty"`
}

// addAttempt appends a to r's history, forgetting the oldest beyond
// maxHistory.
func (r *Record) addAttempt(a Attempt) {
	r.History = append(r.History, a)
	if n := len(r.History) - maxHistory; n > 0 {
		r.History = slices.Delete(r.History, 0, n)
	}
}

// shownHeaders are the headers whose values an operator may see: they
// carry ids, times and trace context, never a credential. Every other
// value (Authorization, signatures, static headers that may hold tokens)
// is masked.
var shownHeaders = map[string]bool{
	"Content-Type": true, "User-Agent": true, "Webhook-Id": true, "Webhook-Timestamp": true,
	"X-Chatwoot-Delivery": true, "Traceparent": true, "Tracestate": true,
}

// masked replaces the value of a header that may be a secret.
const masked = "[masked]"

// maskHeader returns a copy of h in which only shownHeaders keep their
// values.
func maskHeader(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if shownHeaders[http.CanonicalHeaderKey(k)] {
			out[k] = slices.Clone(vs)
			continue
		}
		out[k] = slices.Repeat([]string{masked}, len(vs))
	}
	return out
}

// Retention bounds the delivered messages kept for lookup. A delivered
// message is kept while it is younger than Age and among the newest Count
// and Bytes (the sum of their stored sizes); the oldest go first.
type Retention struct {
	Age   time.Duration
	Count int
	Bytes int64
}

// DefaultRetention keeps a small recent window: an hour, 1000 messages,
// 16 MiB.
func DefaultRetention() Retention {
	return Retention{Age: time.Hour, Count: 1000, Bytes: 16 << 20}
}

// off reports whether nothing is kept.
func (k Retention) off() bool { return k.Age <= 0 || k.Count <= 0 || k.Bytes <= 0 }

// expired reports whether a message delivered at at is past k's age at now.
func (k Retention) expired(at, now time.Time) bool { return now.Sub(at) >= k.Age }

// Query selects records for Engine.Messages.
type Query struct {
	// State is StateQueued, StateDelivered or StateDead.
	State string
	// Endpoint, if set, selects one endpoint's records.
	Endpoint string
	// Conversation, if set, selects one conversation's records.
	Conversation string
	// Before, if not zero, selects records with a lower Seq: the Seq of
	// the last record of a page gives the next page.
	Before uint64
	// Limit bounds the answer; default and maximum 1000.
	Limit int
}

// maxQueryLimit bounds one page of Messages.
const maxQueryLimit = 1000

// matches reports whether r is selected by q, State aside.
func (q Query) matches(r *Record) bool {
	return (q.Endpoint == "" || r.Endpoint == q.Endpoint) &&
		(q.Conversation == "" || r.Conversation == q.Conversation) &&
		(q.Before == 0 || r.Seq < q.Before)
}

// Messages returns records of q.State, newest (highest Seq) first.
// Delivered messages past the retention are not returned even if the
// store has not trimmed them yet.
func (e *Engine) Messages(q Query) ([]Record, error) {
	if q.Limit <= 0 || q.Limit > maxQueryLimit {
		q.Limit = maxQueryLimit
	}
	e.mu.Lock()
	keep := e.opts.KeepDelivered
	e.mu.Unlock()
	now := e.clock.Now()
	var out []Record
	err := e.store.Scan(q.State, q.Endpoint, func(r *Record) bool {
		if q.matches(r) && (q.State != StateDelivered || !keep.expired(r.DeliveredAt, now)) {
			out = append(out, *r)
		}
		return true
	})
	slices.SortFunc(out, newestFirst)
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, err
}

// newestFirst orders records by descending Seq.
func newestFirst(a, b Record) int { return cmp.Compare(b.Seq, a.Seq) }

// Message returns every stored record with id, in any state and of any
// endpoint (one event goes to several webhooks under the same id), newest
// first; ErrNotFound if there is none.
func (e *Engine) Message(id string) ([]Record, error) {
	var out []Record
	for _, state := range []string{StateQueued, StateDelivered, StateDead} {
		err := e.store.Scan(state, "", func(r *Record) bool {
			if r.ID == id {
				out = append(out, *r)
			}
			return true
		})
		if err != nil {
			return out, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	slices.SortFunc(out, newestFirst)
	return out, nil
}
