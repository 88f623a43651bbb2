package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

// replayer runs recorded exchanges through one handler's configuration as
// its pipeline does, for `caddy chat-webhooks try` and rederive. It has a
// conversation memory of its own, carried from exchange to exchange, so
// that replaying leaves the running one alone.
type replayer struct {
	route   *route
	deriver *derive.Deriver
	// enrich runs the handler's user_info lookup; off, events go out
	// without it and nothing is sent over the network.
	enrich bool
	// only restricts the webhooks to the one of that name; "" is all.
	only string
}

func newReplayer(r *route, state *ConversationState, enrich bool, only string) (*replayer, error) {
	cfg := r.config
	cfg.State = nil
	if s := state.withDefaults(); !s.Off {
		cfg.State = convstate.NewMemory(s.Entries, time.Duration(s.TTL))
	}
	d, err := derive.New(cfg)
	if err != nil {
		return nil, err
	}
	return &replayer{route: r, deriver: d, enrich: enrich, only: only}, nil
}

// replayed is what one exchange yields.
type replayed struct {
	// Skipped says why no event came of the exchange; empty when some did.
	Skipped  string
	Problems []string
	Events   []replayedEvent
}

type replayedEvent struct {
	event.Event
	// UserInfoError is why the user_info lookup failed, if it did.
	UserInfoError string
	Messages      []replayedMessage
}

// replayedMessage is an outbox message and the webhook it is for.
type replayedMessage struct {
	webhook *webhook
	message
}

func (p *replayer) wants(ex *capture.Exchange) bool {
	return p.deriver.Wants(ex.Method, ex.Path, ex.RequestHeader)
}

// replay derives, enriches and shapes one exchange. Event ids are derived
// from the exchange, so that replaying it again gives the same ids and
// receivers de-duplicate.
func (p *replayer) replay(ctx context.Context, ex *capture.Exchange) replayed {
	if !p.wants(ex) {
		return replayed{Skipped: fmt.Sprintf("no rule matches %s %s (content type %q)", ex.Method, ex.Path, ex.RequestHeader.Get("Content-Type"))}
	}
	out := p.deriver.Derive(ex)
	res := replayed{Problems: out.Problems}
	if len(out.Events) == 0 {
		res.Skipped = fmt.Sprintf("no event: a rule wants %s %s (content type %q), but none holds for the whole exchange (status %d, response content type %q)",
			ex.Method, ex.Path, ex.RequestHeader.Get("Content-Type"), ex.Status, ex.ResponseHeader.Get("Content-Type"))
	}
	key := exchangeKey(ex)
	for i := range out.Events {
		ev := out.Events[i]
		ev.ID = stableID(key, i)
		re := replayedEvent{}
		if p.enrich {
			enriched, err := p.route.enrich(ctx, ev)
			if err != nil {
				re.UserInfoError = err.Error()
			}
			ev = enriched
		}
		re.Event = ev
		for _, wh := range p.route.webhooks {
			if p.only != "" && wh.endpoint.Name != p.only {
				continue
			}
			for _, m := range wh.messages(&ev, time.Time{}) {
				re.Messages = append(re.Messages, replayedMessage{webhook: wh, message: m})
			}
		}
		res.Events = append(res.Events, re)
	}
	return res
}

// exchangeKey digests what identifies an exchange: its request, response
// and start time.
func exchangeKey(ex *capture.Exchange) []byte {
	h := sha256.New()
	for _, part := range []string{ex.Method, ex.Host, ex.Path, ex.RawQuery, strconv.Itoa(ex.Status)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(ex.Start.UnixNano())))
	for _, body := range [][]byte{ex.RequestBody, ex.ResponseBody} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(body))))
		h.Write(body)
	}
	return h.Sum(nil)
}

// stableID is the id of the i-th event of the exchange with this key, in
// the form of event.NewID.
func stableID(key []byte, i int) string {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte{}, key...), uint64(i)))
	return "evt_" + hex.EncodeToString(sum[:12])
}
