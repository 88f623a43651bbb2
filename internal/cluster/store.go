package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// opTimeout bounds one request to NATS made for a delivery or the admin.
const opTimeout = 10 * time.Second

// handoverTimeout bounds what a stopping instance does to hand its
// partitions over: stopping happens within a Caddy reload or shutdown,
// which must not hang on a slow NATS.
const handoverTimeout = 2 * time.Second

// Store is a delivery.Store whose pending messages are those this instance
// has pulled from the shared stream and not yet acknowledged, and whose dead
// letters are the shared dead-letter stream. An Engine over it delivers what
// the instance's consumers pull (see Serve): Add takes a pulled message in,
// Delete acknowledges it, Bury publishes it as a dead letter and terminates
// it, Save records its retry schedule in a bucket that whichever instance
// pulls it next resumes. While held, a message's acknowledgement deadline
// is renewed; if the instance dies, it is delivered again elsewhere.
type Store struct {
	c *Cluster

	mu       sync.Mutex
	held     map[uint64]*heldMsg // by stream sequence
	byKey    map[string]uint64
	arriving map[string]jetstream.Msg
	closed   bool

	engine  *delivery.Engine
	serving servings
	stop    chan struct{}
	done    sync.WaitGroup
}

// heldMsg is a pulled message the engine holds.
type heldMsg struct {
	msg       jetstream.Msg
	rec       delivery.Record
	scheduled bool // a schedule is stored for it
}

// schedule is a failed message's retry state as the bucket keeps it.
type schedule struct {
	Attempts   int       `json:"attempts"`
	Next       time.Time `json:"next"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
}

// NewStore returns the instance's shared store; Attach starts it.
func (c *Cluster) NewStore() *Store {
	return &Store{c: c, held: map[uint64]*heldMsg{}, byKey: map[string]uint64{},
		arriving: map[string]jetstream.Msg{}, stop: make(chan struct{}),
		serving: servings{running: map[string][]jetstream.ConsumeContext{}, kick: make(chan struct{}, 1)}}
}

func msgKey(endpoint, id string) string { return endpoint + "\x00" + id }

func schedKey(endpoint, id string) string { return token(endpoint) + "." + token(id) }

// receive hands a pulled message to the engine. One that this instance
// already holds (delivered again after a lapse of its deadline) only
// refreshes the handle that acknowledges it.
func (s *Store) receive(msg jetstream.Msg) {
	m := messageOf(msg.Headers(), msg.Data())
	key := msgKey(m.Endpoint, m.ID)
	s.mu.Lock()
	if seq, ok := s.byKey[key]; ok {
		s.held[seq].msg = msg
		s.mu.Unlock()
		msg.InProgress()
		return
	}
	s.arriving[key] = msg
	s.mu.Unlock()
	err := s.engine.Enqueue(context.Background(), m)
	if err == nil {
		return
	}
	s.mu.Lock()
	_, stillArriving := s.arriving[key]
	delete(s.arriving, key)
	s.mu.Unlock()
	if !stillArriving {
		return // taken in; what failed after is the engine's to handle
	}
	if errors.Is(err, delivery.ErrQueueFull) || errors.Is(err, delivery.ErrClosed) {
		msg.NakWithDelay(time.Second)
		return
	}
	// Not taken in for another reason (the webhook's scheme cannot
	// prepare the body): try again a few times, then give up on it.
	if meta, merr := msg.Metadata(); merr == nil && meta.NumDelivered >= maxRefusals {
		s.c.log.Error("webhook message dropped: it cannot be taken in for delivery", "webhook", m.Endpoint, "id", m.ID, "error", err)
		msg.Term()
		return
	}
	msg.NakWithDelay(5 * time.Second)
}

// maxRefusals is how many times a message the engine refuses (other than
// for a full queue) is pulled again before it is dropped.
const maxRefusals = 10

// redeliveryGrace holds back a message that is delivered again (its
// instance died holding it) so that the rest of what that instance held,
// which comes back within moments but not in stream order, takes its place
// in the lanes first.
const redeliveryGrace = time.Second

// Add takes in pulled messages, resuming the schedule of one that another
// instance had already tried. A record's Seq is its stream sequence, so
// that lanes keep stream order whatever order messages arrive in.
func (s *Store) Add(recs []*delivery.Record) error {
	for _, r := range recs {
		key := msgKey(r.Endpoint, r.ID)
		s.mu.Lock()
		msg := s.arriving[key]
		s.mu.Unlock()
		if msg == nil {
			return fmt.Errorf("cluster: %s of %q was not pulled from the stream", r.ID, r.Endpoint)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("cluster: %s of %q: %w", r.ID, r.Endpoint, err)
		}
		r.Seq = meta.Sequence.Stream
		scheduled := false
		if meta.NumDelivered > 1 {
			scheduled = s.resume(r)
			if grace := time.Now().Add(redeliveryGrace); r.Next.Before(grace) {
				r.Next = grace
			}
		}
		s.mu.Lock()
		delete(s.arriving, key)
		s.held[r.Seq] = &heldMsg{msg: msg, rec: *r, scheduled: scheduled}
		s.byKey[key] = r.Seq
		s.mu.Unlock()
	}
	return nil
}

// resume sets r's schedule from the bucket, if one is stored.
func (s *Store) resume(r *delivery.Record) bool {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	e, err := s.c.sched.Get(ctx, schedKey(r.Endpoint, r.ID))
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			s.c.log.Warn("retry schedule not read: the message starts its retries again", "webhook", r.Endpoint, "id", r.ID, "error", err)
		}
		return false
	}
	var sc schedule
	if json.Unmarshal(e.Value(), &sc) != nil {
		return false
	}
	r.Attempts, r.Next, r.LastStatus, r.LastError = sc.Attempts, sc.Next, sc.LastStatus, sc.LastError
	return true
}

// Save stores a failed message's schedule for whichever instance delivers
// it next.
func (s *Store) Save(rec *delivery.Record) error {
	s.mu.Lock()
	h := s.held[rec.Seq]
	if h == nil {
		s.mu.Unlock()
		return nil
	}
	h.rec.Attempts, h.rec.Next, h.rec.LastStatus, h.rec.LastError = rec.Attempts, rec.Next, rec.LastStatus, rec.LastError
	h.scheduled = true
	s.mu.Unlock()
	v, _ := json.Marshal(schedule{Attempts: rec.Attempts, Next: rec.Next, LastStatus: rec.LastStatus, LastError: rec.LastError})
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := s.c.sched.Put(ctx, schedKey(rec.Endpoint, rec.ID), v)
	return err
}

// take removes a held message.
func (s *Store) take(seq uint64) *heldMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[seq]
	if h != nil {
		delete(s.held, seq)
		delete(s.byKey, msgKey(h.rec.Endpoint, h.rec.ID))
	}
	return h
}

// Delete acknowledges a delivered message, waiting for JetStream to confirm
// in the background.
func (s *Store) Delete(seq uint64, done func(error)) {
	h := s.take(seq)
	if h == nil {
		done(nil)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		err := h.msg.DoubleAck(ctx)
		s.forgetSchedule(ctx, h)
		done(err)
	}()
}

func (s *Store) forgetSchedule(ctx context.Context, h *heldMsg) {
	if h.scheduled {
		s.c.sched.Delete(ctx, schedKey(h.rec.Endpoint, h.rec.ID))
	}
}

// Bury publishes rec as a dead letter, replacing one with the same id, and
// terminates the pulled message. The dead-letter stream's own bound trims
// the oldest, across webhooks; keep is not applied per webhook.
func (s *Store) Bury(rec *delivery.Record, _ int) (int, error) {
	h := s.take(rec.Seq)
	if h == nil {
		return 0, nil
	}
	return 0, s.bury(h, *rec)
}

func (s *Store) bury(h *heldMsg, rec delivery.Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.publishDead(ctx, rec); err != nil {
		// Not acknowledged: it will be delivered again, and tried again.
		return err
	}
	s.forgetSchedule(ctx, h)
	return h.msg.Term()
}

func (s *Store) publishDead(ctx context.Context, rec delivery.Record) error {
	rec.Seq = 0
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = s.c.js.Publish(ctx, s.c.deadSubject(rec.Endpoint, rec.ID), v)
	return err
}

// BuryPending moves held messages to the dead letters as they are.
func (s *Store) BuryPending(seqs []uint64, reason string, at time.Time, _ int) (int, error) {
	var errs []error
	for _, seq := range seqs {
		h := s.take(seq)
		if h == nil {
			continue
		}
		rec := h.rec
		rec.DeadAt, rec.Reason = at, reason
		if err := s.bury(h, rec); err != nil {
			errs = append(errs, err)
		}
	}
	return 0, errors.Join(errs...)
}

// Load returns a held message's record.
func (s *Store) Load(seq uint64) (*delivery.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[seq]; h != nil {
		rec := h.rec
		return &rec, nil
	}
	return nil, delivery.ErrNoPending
}

// Deliver acknowledges a delivered message, as Delete does: the shared
// outbox keeps no delivered history (keep_delivered applies to bbolt).
func (s *Store) Deliver(rec *delivery.Record, _ delivery.Retention, done func(error)) {
	s.Delete(rec.Seq, done)
}

// Scan lists the messages this instance holds (StateQueued) or the shared
// dead letters (StateDead), newest first; the shared outbox keeps no
// delivered ones.
func (s *Store) Scan(state, endpoint string, fn func(*delivery.Record) bool) error {
	var recs []delivery.Record
	switch state {
	case delivery.StateQueued:
		s.mu.Lock()
		for _, h := range s.held {
			if endpoint == "" || h.rec.Endpoint == endpoint {
				recs = append(recs, h.rec)
			}
		}
		s.mu.Unlock()
		slices.SortFunc(recs, func(a, b delivery.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	case delivery.StateDead:
		var err error
		if recs, err = s.DeadLetters(endpoint, 0); err != nil {
			return err
		}
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if !fn(&recs[i]) {
			break
		}
	}
	return nil
}

// Pending returns nothing: what an earlier run held is delivered again by
// the stream.
func (s *Store) Pending() ([]*delivery.Record, error) { return nil, nil }

// DeadLetters lists the shared dead letters of endpoint ("" for all),
// oldest first.
func (s *Store) DeadLetters(endpoint string, limit int) ([]delivery.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	filter := s.deadFilter(endpoint)
	n, err := count(ctx, s.c.dlq, filter)
	if err != nil || n == 0 {
		return nil, err
	}
	if limit > 0 && n > limit {
		n = limit
	}
	cons, err := s.c.dlq.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, err
	}
	out := make([]delivery.Record, 0, n)
	for len(out) < n {
		batch, err := cons.Fetch(n-len(out), jetstream.FetchContext(ctx))
		if err != nil {
			return out, err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			var rec delivery.Record
			if json.Unmarshal(m.Data(), &rec) == nil {
				out = append(out, rec)
			}
		}
		if err := batch.Error(); err != nil {
			return out, err
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

func (s *Store) deadFilter(endpoint string) string {
	if endpoint == "" {
		return s.c.cfg.Prefix + ".dead.>"
	}
	return s.c.cfg.Prefix + ".dead." + token(endpoint) + ".>"
}

// ready waits for the streams to exist, as long as ctx allows.
func (s *Store) ready(ctx context.Context) error {
	select {
	case <-s.c.Ready():
		return nil
	case <-ctx.Done():
		return errors.New("cluster: NATS JetStream is not reachable")
	}
}

// subjects returns the messages per subject of stream matching filter.
func subjects(ctx context.Context, stream jetstream.Stream, filter string) (map[string]uint64, error) {
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	return info.State.Subjects, nil
}

// count returns the messages of stream matching filter.
func count(ctx context.Context, stream jetstream.Stream, filter string) (int, error) {
	per, err := subjects(ctx, stream, filter)
	n := 0
	for _, k := range per {
		n += int(k)
	}
	return n, err
}

// deadMsg returns the stored dead letter of endpoint with id.
func (s *Store) deadMsg(ctx context.Context, endpoint, id string) (*jetstream.RawStreamMsg, delivery.Record, error) {
	var rec delivery.Record
	if err := s.ready(ctx); err != nil {
		return nil, rec, err
	}
	raw, err := s.c.dlq.GetLastMsgForSubject(ctx, s.c.deadSubject(endpoint, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, rec, delivery.ErrNotFound
	}
	if err != nil {
		return nil, rec, err
	}
	if err := json.Unmarshal(raw.Data, &rec); err != nil {
		return nil, rec, fmt.Errorf("cluster: dead letter %s of %q: %w", id, endpoint, err)
	}
	return raw, rec, nil
}

// DeadLetter returns one shared dead letter, or delivery.ErrNotFound.
func (s *Store) DeadLetter(endpoint, id string) (delivery.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, rec, err := s.deadMsg(ctx, endpoint, id)
	return rec, err
}

// Revive publishes a dead letter to the stream again for identity and
// deletes it. It returns the record with Seq 0: whichever instance delivers
// its partition takes it from the stream.
func (s *Store) Revive(endpoint, id, identity string) (*delivery.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	raw, rec, err := s.deadMsg(ctx, endpoint, id)
	if err != nil {
		return nil, err
	}
	rec.Identity = identity
	// A replay is a new publish: the id of the first one may still be in
	// the de-duplication window.
	msgID := fmt.Sprintf("%s.%s.replay%d", token(endpoint), id, raw.Sequence)
	if _, err := s.c.js.PublishMsg(ctx, s.c.message(&rec), jetstream.WithMsgID(msgID)); err != nil {
		return nil, err
	}
	if err := s.c.dlq.DeleteMsg(ctx, raw.Sequence); err != nil {
		return nil, err
	}
	return &delivery.Record{Message: rec.Message}, nil
}

// ReviveAll revives every dead letter of endpoint.
func (s *Store) ReviveAll(endpoint, identity string) ([]*delivery.Record, error) {
	recs, err := s.DeadLetters(endpoint, 0)
	if err != nil {
		return nil, err
	}
	var out []*delivery.Record
	for _, r := range recs {
		rec, err := s.Revive(endpoint, r.ID, identity)
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Forget deletes one shared dead letter.
func (s *Store) Forget(endpoint, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	raw, _, err := s.deadMsg(ctx, endpoint, id)
	if err != nil {
		return err
	}
	return s.c.dlq.DeleteMsg(ctx, raw.Sequence)
}

// ForgetAll deletes every shared dead letter of endpoint.
func (s *Store) ForgetAll(endpoint string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	filter := s.deadFilter(endpoint)
	n, err := count(ctx, s.c.dlq, filter)
	if err != nil || n == 0 {
		return 0, err
	}
	return n, s.c.dlq.Purge(ctx, jetstream.WithPurgeSubject(filter))
}

// Queued returns, per webhook of names, the messages in the shared stream
// that no instance has acknowledged yet: waiting, and held by any instance.
func (s *Store) Queued(names []string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, name := range names {
		for p := range s.c.cfg.Partitions {
			cons, err := s.c.out.Consumer(ctx, s.c.consumerName(name, p))
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				continue
			}
			if err != nil {
				return out, err
			}
			info := cons.CachedInfo()
			out[name] += int(info.NumPending) + info.NumAckPending
		}
	}
	return out, nil
}

// PurgeQueued deletes every message of endpoint from the shared stream and
// returns how many there were.
func (s *Store) PurgeQueued(endpoint string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return 0, err
	}
	filter := s.c.outPrefix(endpoint) + ">"
	n, err := count(ctx, s.c.out, filter)
	if err != nil || n == 0 {
		return 0, err
	}
	return n, s.c.out.Purge(ctx, jetstream.WithPurgeSubject(filter))
}

// DeadCounts returns the shared dead letters per webhook.
func (s *Store) DeadCounts() (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	dead, err := subjects(ctx, s.c.dlq, s.deadFilter(""))
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	prefix := s.c.cfg.Prefix + ".dead."
	for subj, n := range dead {
		tok, _, _ := strings.Cut(strings.TrimPrefix(subj, prefix), ".")
		if name, err := untoken(tok); err == nil {
			counts[name] += int(n)
		}
	}
	return counts, nil
}

// Close stops consuming and hands this instance's partitions over: held
// messages are given back to the stream unacknowledged and the pins
// released, so that another instance delivers them at once rather than
// after the failover time. When NATS is unreachable the handover does not
// happen; the stream delivers them again after the failover time.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	held := s.held
	s.held = map[uint64]*heldMsg{}
	s.mu.Unlock()
	close(s.stop)
	s.done.Wait()
	s.serving.mu.Lock()
	stopped := s.serving.stop(func(string) bool { return true })
	s.serving.mu.Unlock()
	s.handOver(stopped, inStreamOrder(held))
	return nil
}
