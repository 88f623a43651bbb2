package caddymodule

import (
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
	"github.com/chatwebhooks/chatwebhooks/internal/har"
)

// maxRederiveBody bounds the HAR file one rederive request may post.
const maxRederiveBody = 256 << 20

// rederived is what POST /chat_webhooks/rederive answers.
type rederived struct {
	Entries  int             `json:"entries"`
	Events   int             `json:"events"`
	Enqueued int             `json:"enqueued"`
	Skipped  int             `json:"skipped"`
	Failed   []rederiveError `json:"failed,omitempty"`
}

type rederiveError struct {
	Entry int    `json:"entry"`
	Error string `json:"error"`
}

// serveRederive derives the events of a posted HAR file with the running
// configuration and enqueues them for its webhooks, or for the one named.
// Each entry goes to the first handler whose rules want it; conversations
// are remembered across the file's entries, apart from the live memory.
// Event ids come from the entries, so posting a file twice gives receivers
// the same webhook ids to de-duplicate.
func serveRederive(w http.ResponseWriter, r *http.Request, a *App, engine *delivery.Engine, webhook string) error {
	if webhook != "" && a.webhooks[webhook] == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no webhook named %q in the running configuration", webhook)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRederiveBody))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the HAR file: %v", err)}
	}
	entries, err := har.Parse(body)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	replayers := make([]*replayer, len(a.routes))
	for i, rt := range a.routes {
		if replayers[i], err = newReplayer(rt, a.ConversationState, true, webhook); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
	}
	res := rederived{Entries: len(entries)}
	var msgs []delivery.Message
	for i := range entries {
		ex, err := entries[i].Exchange()
		if err != nil {
			res.Failed = append(res.Failed, rederiveError{Entry: i + 1, Error: err.Error()})
			continue
		}
		var rp *replayer
		for _, candidate := range replayers {
			if candidate.wants(ex) {
				rp = candidate
				break
			}
		}
		if rp == nil {
			res.Skipped++
			continue
		}
		out := rp.replay(r.Context(), ex)
		if len(out.Events) == 0 {
			res.Skipped++
		}
		for _, ev := range out.Events {
			res.Events++
			for _, m := range ev.Messages {
				msgs = append(msgs, m.Message)
			}
		}
	}
	for len(msgs) > 0 {
		n := min(len(msgs), maxStoreBatch)
		if err := engine.Enqueue(r.Context(), msgs[:n]...); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("after %d messages: %v", res.Enqueued, err)}
		}
		res.Enqueued += n
		msgs = msgs[n:]
	}
	return reply(w, res, nil)
}
