package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// Headers carrying a message's fields through the stream; the data is the
// body.
const (
	hdrID       = "Chat-Webhooks-Id"
	hdrEndpoint = "Chat-Webhooks-Webhook"
	hdrIdentity = "Chat-Webhooks-Identity"
	hdrLane     = "Chat-Webhooks-Lane"
	hdrCreated  = "Chat-Webhooks-Created"
)

// forwardBatch bounds the publishes awaited together.
const forwardBatch = 256

// ForwarderStats is what the spool holds and has done.
type ForwarderStats struct {
	Spooled      int   `json:"spooled"`
	SpooledBytes int64 `json:"spooled_bytes"`
	Forwarded    int64 `json:"forwarded"`
}

// Forwarder is the first durable hop: Enqueue stores messages in a local
// spool (a delivery.Store, normally bbolt) and returns once they are
// durable; a goroutine publishes them to the stream in spool order and
// deletes each once JetStream acknowledges it. Messages wait in the spool
// while NATS is unreachable, up to the limits.
type Forwarder struct {
	c        *Cluster
	spool    delivery.Store
	maxMsgs  int
	maxBytes int64
	obs      ForwardObserver

	mu        sync.Mutex
	queue     []*delivery.Record // spooled, in Seq order
	bytes     int64
	reserved  int // messages being spooled
	forwarded int64
	failing   bool
	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
}

// ForwardObserver hears of what the forwarder does, for metrics.
type ForwardObserver interface {
	// Forwarded reports a message published, lag after it was created.
	Forwarded(lag time.Duration)
	// Spooled reports the messages waiting in the spool after a change.
	Spooled(n int)
	// Refused reports a message of endpoint refused: the spool is full.
	Refused(endpoint string)
}

// NewForwarder starts forwarding from spool, which it owns (Close closes
// it), beginning with what an earlier run left there. maxMsgs and maxBytes
// bound the spool; Enqueue refuses beyond them with delivery.ErrQueueFull.
func (c *Cluster) NewForwarder(spool delivery.Store, maxMsgs int, maxBytes int64, obs ForwardObserver) (*Forwarder, error) {
	pending, err := spool.Pending()
	if err != nil {
		return nil, fmt.Errorf("reading the spool: %w", err)
	}
	f := &Forwarder{c: c, spool: spool, maxMsgs: maxMsgs, maxBytes: maxBytes, obs: obs, queue: pending,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, r := range pending {
		f.bytes += int64(len(r.Body))
	}
	obs.Spooled(len(pending))
	go f.run()
	return f, nil
}

// Tune changes the spool's bounds.
func (f *Forwarder) Tune(maxMsgs int, maxBytes int64) {
	f.mu.Lock()
	f.maxMsgs, f.maxBytes = maxMsgs, maxBytes
	f.mu.Unlock()
}

// Enqueue spools msgs, all or none, and returns once they are durable.
func (f *Forwarder) Enqueue(_ context.Context, msgs ...delivery.Message) error {
	now := time.Now()
	recs := make([]*delivery.Record, len(msgs))
	var size int64
	for i, m := range msgs {
		if m.Created.IsZero() {
			m.Created = now
		}
		recs[i] = &delivery.Record{Message: m}
		size += int64(len(m.Body))
	}
	f.mu.Lock()
	if len(f.queue)+f.reserved+len(recs) > f.maxMsgs || f.bytes+size > f.maxBytes {
		n := len(f.queue)
		f.mu.Unlock()
		for _, m := range msgs {
			f.obs.Refused(m.Endpoint)
		}
		return fmt.Errorf("%w: %d messages wait to be published to NATS", delivery.ErrQueueFull, n)
	}
	f.reserved += len(recs)
	f.bytes += size
	f.mu.Unlock()
	// Concurrent calls share the spool's group commits. Each conversation
	// is enqueued from one goroutine, so its messages reach the queue in
	// order whatever the interleaving of the others.
	err := f.spool.Add(recs)
	f.mu.Lock()
	f.reserved -= len(recs)
	if err != nil {
		f.bytes -= size
		f.mu.Unlock()
		return fmt.Errorf("spooling: %w", err)
	}
	for _, r := range recs {
		i := len(f.queue)
		for i > 0 && f.queue[i-1].Seq > r.Seq {
			i--
		}
		f.queue = slices.Insert(f.queue, i, r)
	}
	n := len(f.queue)
	f.mu.Unlock()
	f.obs.Spooled(n)
	select {
	case f.kick <- struct{}{}:
	default:
	}
	return nil
}

// Stats returns the spool's depth and the messages forwarded so far.
func (f *Forwarder) Stats() ForwarderStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ForwarderStats{Spooled: len(f.queue), SpooledBytes: f.bytes, Forwarded: f.forwarded}
}

func (f *Forwarder) run() {
	defer close(f.done)
	select {
	case <-f.c.Ready():
	case <-f.stop:
		return
	}
	retry := time.NewTicker(250 * time.Millisecond)
	defer retry.Stop()
	for {
		for f.forward() {
		}
		select {
		case <-f.stop:
			return
		case <-f.kick:
		case <-retry.C:
		}
	}
}

// forward publishes the oldest spooled messages and reports whether it
// made progress with more to do.
func (f *Forwarder) forward() bool {
	f.mu.Lock()
	batch := slices.Clone(f.queue[:min(len(f.queue), forwardBatch)])
	f.mu.Unlock()
	if len(batch) == 0 || !f.c.Connected() {
		return false
	}
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	var err error
	for _, r := range batch {
		var fut jetstream.PubAckFuture
		fut, err = f.c.js.PublishMsgAsync(f.c.message(r), jetstream.WithMsgID(token(r.Endpoint)+"."+r.ID))
		if err != nil {
			break
		}
		futures = append(futures, fut)
	}
	// Acknowledged in publish order; stop at the first failure, so that
	// what follows it is published again after it, never before.
	acked := 0
	timeout := time.After(10 * time.Second)
wait:
	for _, fut := range futures {
		select {
		case <-fut.Ok():
			acked++
		case err = <-fut.Err():
			break wait
		case <-timeout:
			err = errors.New("no acknowledgement within 10s")
			break wait
		case <-f.stop:
			err = errors.New("stopping")
			break wait
		}
	}
	now := time.Now()
	for _, r := range batch[:acked] {
		f.spool.Delete(r.Seq, func(error) {})
		f.obs.Forwarded(now.Sub(r.Created))
	}
	done := make(map[uint64]bool, acked)
	for _, r := range batch[:acked] {
		done[r.Seq] = true
	}
	f.mu.Lock()
	// A concurrent Enqueue may have placed a lower Seq among the batch.
	f.queue = slices.DeleteFunc(f.queue, func(r *delivery.Record) bool { return done[r.Seq] })
	for _, r := range batch[:acked] {
		f.bytes -= int64(len(r.Body))
	}
	f.forwarded += int64(acked)
	n := len(f.queue)
	wasFailing := f.failing
	f.failing = err != nil
	f.mu.Unlock()
	f.obs.Spooled(n)
	switch {
	case err != nil && !wasFailing:
		f.c.log.Warn("publishing to NATS failed: messages wait in the local spool", "spooled", n, "error", err)
	case err == nil && wasFailing:
		f.c.log.Info("publishing to NATS works again", "spooled", n)
	}
	return err == nil && acked > 0 && n > 0
}

// message is r as published to the stream.
func (c *Cluster) message(r *delivery.Record) *nats.Msg {
	m := nats.NewMsg(c.outSubject(r.Endpoint, r.Lane))
	m.Header.Set(hdrID, r.ID)
	m.Header.Set(hdrEndpoint, r.Endpoint)
	m.Header.Set(hdrIdentity, r.Identity)
	m.Header.Set(hdrLane, r.Lane)
	m.Header.Set(hdrCreated, strconv.FormatInt(r.Created.UnixNano(), 10))
	m.Data = r.Body
	return m
}

// messageOf reads a message published by message.
func messageOf(h nats.Header, data []byte) delivery.Message {
	ns, _ := strconv.ParseInt(h.Get(hdrCreated), 10, 64)
	return delivery.Message{
		ID: h.Get(hdrID), Endpoint: h.Get(hdrEndpoint), Identity: h.Get(hdrIdentity), Lane: h.Get(hdrLane),
		Body: data, Created: time.Unix(0, ns),
	}
}

// Close stops forwarding and closes the spool; what is not published stays
// in it for the next run.
func (f *Forwarder) Close() error {
	close(f.stop)
	<-f.done
	return f.spool.Close()
}
