package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
)

// stateTimeout bounds a conversation-state read or write: they run on the
// pipeline's path from exchange to event, never on the proxied request's,
// but a slow NATS must not hold events back for long.
const stateTimeout = 2 * time.Second

// State is conversation memory shared by every instance through a
// key-value bucket whose keys expire after Config.StateTTL without a write.
// Writes are last-writer-wins: each value is a conversation's full current
// attributes as the latest turn showed them, so a later write is never less
// right than the one it replaces, and a compare-and-set that failed could
// only be retried with the same value.
type State struct {
	c       *Cluster
	local   convstate.Store // this process's memory, kept up to date
	failing atomic.Bool
}

// State returns the shared conversation memory over local, this process's
// memory, which it keeps up to date and falls back on while NATS is
// unreachable.
func (c *Cluster) State(local convstate.Store) *State { return &State{c: c, local: local} }

// Get returns the attributes last recorded by any instance, or, while NATS
// is unreachable, by this one.
func (s *State) Get(key string) []byte {
	if !s.usable() {
		return s.local.Get(key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	e, err := s.c.state.Get(ctx, token(key))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		s.worked()
		return nil
	case err != nil:
		s.failed(err)
		return s.local.Get(key)
	}
	s.worked()
	return e.Value()
}

// Put records attributes here and for every instance.
func (s *State) Put(key string, attrs []byte) {
	s.local.Put(key, attrs)
	if !s.usable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	if _, err := s.c.state.Put(ctx, token(key), attrs); err != nil {
		s.failed(err)
		return
	}
	s.worked()
}

func (s *State) usable() bool { return s.c.isReady() && s.c.Connected() }

func (s *State) failed(err error) {
	if !s.failing.Swap(true) {
		s.c.log.Warn("shared conversation state unavailable: using this instance's memory", "error", err)
	}
}

func (s *State) worked() {
	if s.failing.Swap(false) {
		s.c.log.Info("shared conversation state available again")
	}
}
