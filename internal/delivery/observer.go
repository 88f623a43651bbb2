package delivery

import "time"

// Observer receives the engine's events, for metrics. Calls are made
// synchronously from the engine's goroutines, sometimes while it holds its
// lock: implementations must be fast and must not call back into the Engine.
// Reasons are short, fixed strings (see the Reason constants) so that they
// can be used as metric labels.
type Observer interface {
	// Enqueued reports n messages durably accepted for endpoint.
	Enqueued(endpoint, schema string, n int)
	// Delivered reports a 2xx acknowledgement; latency runs from
	// Message.Created to the acknowledgement.
	Delivered(endpoint, schema string, latency time.Duration)
	// Failed reports one failed attempt; status is the HTTP status, or 0
	// when no response was received.
	Failed(endpoint, schema, reason string, status int)
	// Retried reports that a failed message was scheduled for another attempt.
	Retried(endpoint, schema string)
	// Dropped reports n messages discarded without delivery (queue full,
	// Prepare failed, oldest dead letters trimmed, purged).
	Dropped(endpoint, schema, reason string, n int)
	// DeadLettered reports n messages moved to the dead letters; reason is
	// ReasonGone, ReasonExhausted, ReasonRemoved or ReasonChanged.
	DeadLettered(endpoint, schema, reason string, n int)
	// QueueDepth reports the number of pending messages of endpoint after
	// every change.
	QueueDepth(endpoint, schema string, depth int)
	// Removed reports that endpoint is no longer configured: its series
	// can go.
	Removed(endpoint, schema string)
	// Disabled reports that endpoint was disabled (Endpoint.DisableAfter)
	// or, with disabled false, re-enabled by Engine.Enable.
	Disabled(endpoint, schema string, disabled bool)
}

// NopObserver ignores every event. Embed it in an Observer to stay
// source-compatible when methods are added.
type NopObserver struct{}

// Enqueued does nothing.
func (NopObserver) Enqueued(string, string, int) {}

// Delivered does nothing.
func (NopObserver) Delivered(string, string, time.Duration) {}

// Failed does nothing.
func (NopObserver) Failed(string, string, string, int) {}

// Retried does nothing.
func (NopObserver) Retried(string, string) {}

// Dropped does nothing.
func (NopObserver) Dropped(string, string, string, int) {}

// DeadLettered does nothing.
func (NopObserver) DeadLettered(string, string, string, int) {}

// QueueDepth does nothing.
func (NopObserver) QueueDepth(string, string, int) {}

// Removed does nothing.
func (NopObserver) Removed(string, string) {}

// Disabled does nothing.
func (NopObserver) Disabled(string, string, bool) {}

// Reasons passed to Observer.Failed, Dropped and DeadLettered, and stored in
// Record.Reason for dead letters.
const (
	ReasonStatus      = "status"            // a non-2xx response other than below
	ReasonRedirect    = "redirect"          // a 3xx response; never followed
	ReasonGone        = "gone"              // 410 Gone: dead-lettered without retries
	ReasonTimeout     = "timeout"           // no complete response within Endpoint.Timeout
	ReasonConnect     = "connect"           // DNS or TCP connection failure
	ReasonDenied      = "denied_address"    // DenyPrivate refused the resolved address
	ReasonTLS         = "tls"               // TLS handshake or certificate failure
	ReasonBody        = "unexpected_body"   // 2xx whose body lacks Endpoint.ExpectBody
	ReasonSign        = "sign"              // the Scheme failed to sign
	ReasonRequest     = "request"           // any other transport failure
	ReasonExhausted   = "exhausted"         // dead-lettered after the last scheduled attempt
	ReasonRemoved     = "webhook_removed"   // dead-lettered: its endpoint is no longer configured
	ReasonChanged     = "webhook_changed"   // dead-lettered: no endpoint of the identity it was shaped for
	ReasonPurged      = "purged"            // deleted by Engine.Purge
	ReasonQueueFull   = "queue_full"        // Enqueue refused: MaxQueued or MaxQueuedBytes reached
	ReasonPrepare     = "prepare"           // Enqueue refused: the Scheme's Prepare failed
	ReasonDeadLetters = "dead_letter_limit" // oldest dead letter deleted: MaxDeadLetters reached
)
