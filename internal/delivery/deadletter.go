package delivery

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// DeadLetters returns up to limit dead letters of endpoint, oldest first;
// endpoint "" lists all endpoints, limit <= 0 means no limit.
func (e *Engine) DeadLetters(endpoint string, limit int) ([]Record, error) {
	return e.store.DeadLetters(endpoint, limit)
}

// DeadLetter returns one dead letter, or ErrNotFound.
func (e *Engine) DeadLetter(endpoint, id string) (Record, error) {
	return e.store.DeadLetter(endpoint, id)
}

// Replay queues a dead letter again with a fresh schedule, behind what its
// lane already holds, for the endpoint's current Identity (replaying is how
// an operator sends a message with settings it was not shaped for). Its id
// and body are unchanged. Replays are not held to MaxQueued: they only move
// what MaxDeadLetters already bounds. The endpoint must be configured.
func (e *Engine) Replay(endpoint, id string) error {
	identity, err := e.identityOf(endpoint)
	if err != nil {
		return err
	}
	rec, err := e.store.Revive(endpoint, id, identity)
	if err != nil {
		return err
	}
	e.requeue(rec)
	return nil
}

// ReplayAll replays every dead letter of endpoint, which must be
// configured, or of every configured endpoint when endpoint is "", and
// returns how many.
func (e *Engine) ReplayAll(endpoint string) (int, error) {
	names := []string{endpoint}
	if endpoint == "" {
		names = e.configured()
	}
	n := 0
	for _, name := range names {
		identity, err := e.identityOf(name)
		if err != nil {
			return n, err
		}
		recs, err := e.store.ReviveAll(name, identity)
		if err != nil {
			return n, err
		}
		e.requeue(recs...)
		n += len(recs)
	}
	return n, nil
}

// identityOf returns the Identity of the configured endpoint name.
func (e *Engine) identityOf(name string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.endpoints[name]
	if st == nil || st.cfg == nil {
		return "", fmt.Errorf("%w %q is configured: replay to a configured webhook of the same name, or purge its dead letters", ErrUnknownEndpoint, name)
	}
	return st.cfg.Identity, nil
}

// configured returns the names of the configured endpoints, sorted.
func (e *Engine) configured() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for name, st := range e.endpoints {
		if st.cfg != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// DeleteDeadLetter deletes a dead letter for good, or returns ErrNotFound.
func (e *Engine) DeleteDeadLetter(endpoint, id string) error {
	return e.store.Forget(endpoint, id)
}

// Purged is what Purge deleted.
type Purged struct {
	Queued      int `json:"queued"`
	DeadLetters int `json:"dead_letters"`
}

// Purge deletes every queued message and every dead letter of endpoint,
// for a receiver that must get nothing more (a compromised one, or one
// removed for good). An attempt in flight finishes and its message is then
// deleted whatever the outcome. It fails with ErrUnknownEndpoint for a name
// that is neither configured nor holds anything, and for "", which a
// store may read as every endpoint.
func (e *Engine) Purge(endpoint string) (Purged, error) {
	if endpoint == "" {
		return Purged{}, fmt.Errorf("%w: Purge needs a webhook name", ErrUnknownEndpoint)
	}
	e.mu.Lock()
	st := e.endpoints[endpoint]
	var out []*entry
	schema := ""
	if st != nil {
		out = st.takeAll(ReasonPurged)
		schema = st.schema
		for _, en := range out {
			e.queued--
			e.queuedBytes -= int64(en.size)
		}
		e.obs.QueueDepth(endpoint, schema, st.queued)
	}
	configured := st != nil && st.cfg != nil
	e.mu.Unlock()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	wg.Add(len(out))
	for _, en := range out {
		e.store.Delete(en.seq, func(err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	dead, err := e.store.ForgetAll(endpoint)
	if err != nil {
		errs = append(errs, err)
	}
	p := Purged{Queued: len(out), DeadLetters: dead}
	if !configured && p == (Purged{}) {
		return p, fmt.Errorf("%w %q holds messages: see the stats for the names", ErrUnknownEndpoint, endpoint)
	}
	if p.Queued > 0 {
		e.obs.Dropped(endpoint, schema, ReasonPurged, p.Queued)
	}
	return p, errors.Join(errs...)
}

// requeue puts revived records back in their lanes; those with Seq 0 are
// queued in a shared store, for whichever engine delivers their lane.
func (e *Engine) requeue(recs ...*Record) {
	recs = slices.DeleteFunc(slices.Clone(recs), func(r *Record) bool { return r.Seq == 0 })
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range recs {
		e.queue(r)
	}
	byEndpoint(recs, func(name string, _ int) {
		st := e.endpoints[name]
		e.obs.QueueDepth(name, st.schema, st.queued)
	})
	e.poke()
}
