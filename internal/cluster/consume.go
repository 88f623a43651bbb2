package cluster

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// priorityGroup is the one pinned group of every consumer: the instance
// pinned on a partition delivers all of it.
const priorityGroup = "deliver"

// maxAckPending bounds the messages of one partition an instance holds,
// retrying ones included. A receiver that fails broadly stops its
// partitions' pulls here, and the stream keeps the rest.
const maxAckPending = 1000

// servings are the consumers an instance runs, per webhook. want has its
// own lock so that Serve, called from Caddy's Start, never waits for
// consumers being created.
type servings struct {
	wantMu  sync.Mutex
	want    []string
	mu      sync.Mutex
	running map[string][]jetstream.ConsumeContext
	kick    chan struct{}
}

// Attach starts feeding pulled messages to e, an Engine over s, and
// renewing the deadlines of what it holds. Serve says which webhooks.
func (s *Store) Attach(e *delivery.Engine) {
	s.engine = e
	s.done.Add(2)
	go s.reconcile()
	go s.renew()
}

// Serve makes names the webhooks this instance delivers: it consumes every
// partition of each, and stops consuming the others. Consumers are created
// once NATS is reachable, and again if creating them fails.
func (s *Store) Serve(names []string) {
	s.serving.wantMu.Lock()
	s.serving.want = slices.Clone(names)
	s.serving.wantMu.Unlock()
	select {
	case s.serving.kick <- struct{}{}:
	default:
	}
}

func (s *Store) reconcile() {
	defer s.done.Done()
	select {
	case <-s.c.Ready():
	case <-s.stop:
		return
	}
	retry := time.NewTicker(5 * time.Second)
	defer retry.Stop()
	for {
		s.apply()
		select {
		case <-s.stop:
			return
		case <-s.serving.kick:
		case <-retry.C:
		}
	}
}

// apply starts and stops consumers to match the wanted webhooks.
func (s *Store) apply() {
	sv := &s.serving
	sv.wantMu.Lock()
	want := sv.want
	sv.wantMu.Unlock()
	sv.mu.Lock()
	defer sv.mu.Unlock()
	removed := sv.stop(func(name string) bool { return !slices.Contains(want, name) })
	// What this instance holds of a removed webhook stays with its engine,
	// which moves it to the dead letters once the configuration is final.
	s.handOver(removed, nil)
	for _, name := range want {
		if sv.running[name] != nil {
			continue
		}
		ccs, err := s.consume(name)
		if err != nil {
			s.c.log.Warn("not consuming a webhook's partitions yet; retrying", "webhook", name, "error", err)
			continue
		}
		sv.running[name] = ccs
	}
}

// consume creates and pulls every partition consumer of one webhook.
func (s *Store) consume(name string) ([]jetstream.ConsumeContext, error) {
	cfg := s.c.cfg
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var ccs []jetstream.ConsumeContext
	stop := func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}
	for p := range cfg.Partitions {
		part := strconv.Itoa(p)
		cons, err := s.c.js.CreateOrUpdateConsumer(ctx, cfg.Prefix+"_out", jetstream.ConsumerConfig{
			Durable:        s.c.consumerName(name, p),
			FilterSubject:  s.c.outPrefix(name) + part + ".>",
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        cfg.ackWait(),
			MaxDeliver:     -1,
			MaxAckPending:  maxAckPending,
			PriorityGroups: []string{priorityGroup},
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PinnedTTL:      cfg.Failover,
		})
		if err != nil {
			stop()
			return nil, err
		}
		cc, err := cons.Consume(s.receive,
			jetstream.PullPriorityGroup(priorityGroup),
			jetstream.PullExpiry(cfg.pullExpiry()),
			jetstream.PullMaxMessages(100),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				s.c.log.Debug("pulling from NATS", "webhook", name, "partition", part, "error", err)
			}))
		if err != nil {
			stop()
			return nil, err
		}
		ccs = append(ccs, cc)
	}
	return ccs, nil
}

// stop stops the consumers of the webhooks which picks and returns those
// webhooks with their stopped consumers; sv.mu is held.
func (sv *servings) stop(which func(name string) bool) map[string][]jetstream.ConsumeContext {
	out := map[string][]jetstream.ConsumeContext{}
	for name, ccs := range sv.running {
		if !which(name) {
			continue
		}
		for _, cc := range ccs {
			cc.Stop()
		}
		out[name] = ccs
		delete(sv.running, name)
	}
	return out
}

// handOver lets other instances take over the partitions of stopped
// consumers at once rather than after the failover time. It waits until
// the subscriptions are gone and the server has seen it, so that no waiting
// pull of this instance can take the pin again; then it gives back held
// messages unacknowledged, in stream order, and releases the pins. It does
// nothing while disconnected (the pins then expire) and is bounded by
// handoverTimeout: it runs within a Caddy reload or shutdown.
func (s *Store) handOver(stopped map[string][]jetstream.ConsumeContext, held []jetstream.Msg) {
	if len(stopped) == 0 || !s.c.isReady() || !s.c.Connected() {
		return
	}
	timeout := time.After(handoverTimeout)
	for _, ccs := range stopped {
		for _, cc := range ccs {
			select {
			case <-cc.Closed():
			case <-timeout:
				return
			}
		}
	}
	if s.c.nc.FlushTimeout(handoverTimeout) != nil {
		return
	}
	for _, m := range held {
		m.Nak()
	}
	ctx, cancel := context.WithTimeout(context.Background(), handoverTimeout)
	defer cancel()
	for name := range stopped {
		for p := range s.c.cfg.Partitions {
			s.c.out.UnpinConsumer(ctx, s.c.consumerName(name, p), priorityGroup)
		}
	}
}

// renew tells JetStream, a few times per acknowledgement deadline, that
// every held message is still being worked on, in flight or waiting for its
// next attempt: they are delivered again elsewhere only if this instance
// stops renewing.
func (s *Store) renew() {
	defer s.done.Done()
	tick := time.NewTicker(s.c.cfg.ackWait() / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		// In stream order, so that if this instance dies its messages'
		// deadlines lapse in that order too.
		s.mu.Lock()
		msgs := inStreamOrder(s.held)
		s.mu.Unlock()
		for _, m := range msgs {
			m.InProgress()
		}
	}
}

// inStreamOrder lists the pulled messages of held by stream sequence.
func inStreamOrder(held map[uint64]*heldMsg) []jetstream.Msg {
	msgs := make([]jetstream.Msg, 0, len(held))
	for _, seq := range slices.Sorted(maps.Keys(held)) {
		msgs = append(msgs, held[seq].msg)
	}
	return msgs
}
