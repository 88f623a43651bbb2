package delivery

import (
	"errors"
	"time"
)

// ErrNotFound is returned for a dead letter or message that does not
// exist.
var ErrNotFound = errors.New("delivery: no such message")

// ErrNoPending is returned by Store.Load for a record that is not pending.
var ErrNoPending = errors.New("delivery: no such pending message")

// ErrClosed is returned by a closed Engine or Store.
var ErrClosed = errors.New("delivery: closed")

// Store keeps pending messages and dead letters. Writes return once they are
// durable (for a persistent store). The Engine is the only writer of a
// Store, and calls it from several goroutines at once.
type Store interface {
	// Add stores new pending records, assigning each a Seq higher than any
	// before, in slice order.
	Add(recs []*Record) error
	// Save updates a pending record's schedule (Attempts, Next, LastStatus,
	// LastError).
	Save(rec *Record) error
	// Delete removes a delivered pending record and calls done once with
	// the result. Unlike the other writes it need not wait to be durable: a
	// persistent store may return once the delete is queued for its next
	// commit, call done from its committer when that commit ends, and
	// commit what is queued on Close. A crash before the commit leaves the
	// record pending, to be delivered again (at least once, same id). done
	// may also run before Delete returns, so the caller must not hold
	// anything done waits for.
	Delete(seq uint64, done func(error))
	// Bury moves a pending record to the dead letters of its endpoint,
	// replacing a dead letter with the same id, then deletes the oldest
	// dead letters of that endpoint until at most keep remain, and returns
	// how many it deleted so.
	Bury(rec *Record, keep int) (trimmed int, err error)
	// BuryPending moves the stored pending records seqs, as they are
	// stored, to the dead letters with reason and time at, trimming each
	// endpoint's dead letters to keep as Bury does; seqs no longer pending
	// are skipped.
	BuryPending(seqs []uint64, reason string, at time.Time, keep int) (trimmed int, err error)
	// Deliver replaces the pending record rec.Seq by rec, delivered
	// (DeliveredAt set), among the delivered messages kept for lookup,
	// then deletes the oldest of those beyond keep, as of rec.DeliveredAt.
	// Like Delete, it may return before the write is durable and call done
	// from its committer.
	Deliver(rec *Record, keep Retention, done func(error))
	// Load returns a pending record with its body and history. The Engine
	// keeps pending records in memory without them and loads each when an
	// attempt is due; ErrNoPending if it is not pending.
	Load(seq uint64) (*Record, error)
	// Scan calls fn with the records in state (StateQueued, StateDelivered
	// or StateDead), of endpoint only if it is not empty, newest (highest
	// Seq) first, until fn returns false; a persistent store may give the
	// dead letters of all endpoints endpoint by endpoint instead. fn may
	// keep the records.
	Scan(state, endpoint string, fn func(*Record) bool) error
	// Pending returns all pending records in Seq order.
	Pending() ([]*Record, error)
	// DeadLetters returns up to limit dead letters of endpoint (all
	// endpoints if empty), oldest first; limit <= 0 means all.
	DeadLetters(endpoint string, limit int) ([]Record, error)
	// DeadLetter returns one dead letter, or ErrNotFound.
	DeadLetter(endpoint, id string) (Record, error)
	// Revive turns a dead letter back into a pending record for identity,
	// with a fresh Seq, no attempts and Next zero, and returns it;
	// ErrNotFound if none. A store shared by several engines returns Seq 0
	// instead: the record is pending there, for whichever engine delivers
	// its lane, and this one does not queue it.
	Revive(endpoint, id, identity string) (*Record, error)
	// ReviveAll revives every dead letter of endpoint for identity.
	ReviveAll(endpoint, identity string) ([]*Record, error)
	// Forget deletes a dead letter; ErrNotFound if none.
	Forget(endpoint, id string) error
	// ForgetAll deletes every dead letter of endpoint and returns how many;
	// the Engine never passes an empty endpoint.
	ForgetAll(endpoint string) (int, error)
	// DeadCounts returns the number of dead letters per endpoint.
	DeadCounts() (map[string]int, error)
	// Close releases the store. Pending records and dead letters stay in a
	// persistent store.
	Close() error
}

// revive resets a dead letter into a fresh pending record for identity; the
// store sets its new Seq.
func revive(rec *Record, identity string) {
	rec.Attempts, rec.Next, rec.LastStatus, rec.LastError = 0, time.Time{}, 0, ""
	rec.DeadAt, rec.Reason, rec.Identity = time.Time{}, "", identity
}
