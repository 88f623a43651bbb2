package delivery

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
// lane already holds. Its id and body are unchanged. Replays are not held
// to MaxQueued: they only move what MaxDeadLetters already bounds.
func (e *Engine) Replay(endpoint, id string) error {
	rec, err := e.store.Revive(endpoint, id)
	if err != nil {
		return err
	}
	e.requeue(rec)
	return nil
}

// ReplayAll replays every dead letter of endpoint ("" for all endpoints)
// and returns how many.
func (e *Engine) ReplayAll(endpoint string) (int, error) {
	recs, err := e.store.ReviveAll(endpoint)
	if err != nil {
		return 0, err
	}
	e.requeue(recs...)
	return len(recs), nil
}

// DeleteDeadLetter deletes a dead letter for good, or returns ErrNotFound.
func (e *Engine) DeleteDeadLetter(endpoint, id string) error {
	return e.store.Forget(endpoint, id)
}

// requeue puts revived records back in their lanes.
func (e *Engine) requeue(recs ...*Record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range recs {
		e.queue(r)
	}
	byEndpoint(recs, func(name string, _ int) { e.obs.QueueDepth(name, e.endpoints[name].queued) })
	e.poke()
}
