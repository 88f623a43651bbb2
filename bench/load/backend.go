package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Request headers that shape a streamed answer.
const (
	hdrChunks = "X-Bench-Chunks" // number of chunks (default 3)
	hdrEvery  = "X-Bench-Every"  // delay between chunks (default none)
	hdrHold   = "X-Bench-Hold"   // "1": after the first chunk, wait for backend.release
)

// sseChunk is one chunk of an OpenAI-compatible stream; bench_ns is when
// the backend wrote it, so that the client can tell the chunk's transit
// time on the one clock they share.
const sseChunk = "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"bench_ns\":%d,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n"

// holdLimit bounds how long a held stream waits for release.
const holdLimit = 2 * time.Minute

// backend answers chat completions like an OpenAI-compatible server; the
// answer's id carries the question's token.
type backend struct {
	mu   sync.Mutex
	hold chan struct{} // closed by release
}

func newBackend() *backend { return &backend{hold: make(chan struct{})} }

// release lets every held stream finish, and holds the next ones again.
func (b *backend) release() {
	b.mu.Lock()
	close(b.hold)
	b.hold = make(chan struct{})
	b.mu.Unlock()
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := gjson.GetBytes(body, `messages.#(role=="user")#.content|@reverse|0`).String()
	id := "chatcmpl-" + strings.TrimPrefix(lastWord(q), "tok-")
	if !gjson.GetBytes(body, "stream").Bool() {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"object":"chat.completion","created":1730000000,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Your order ships tomorrow."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":6,"total_tokens":37}}`, id)
		return
	}
	n, _ := strconv.Atoi(r.Header.Get(hdrChunks))
	n = max(n, 3)
	every, _ := time.ParseDuration(r.Header.Get(hdrEvery))
	b.mu.Lock()
	hold := b.hold
	b.mu.Unlock()
	held := r.Header.Get(hdrHold) == "1"
	// Flushed chunk by chunk only when paced or held: the plain stream
	// goes out in one write, as a fast backend's would.
	flush := every > 0 || held
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	for i := range n {
		part := fmt.Sprintf("part %d ", i)
		switch i {
		case 0:
			part = "Your order ships "
		case n - 1:
			part = "tomorrow."
		}
		fmt.Fprintf(w, sseChunk, id, time.Now().UnixNano(), part)
		if flush {
			rc.Flush()
		}
		if i == 0 && held {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			case <-time.After(holdLimit):
			}
		}
		if every > 0 && i < n-1 {
			time.Sleep(every)
		}
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func lastWord(s string) string {
	s = strings.TrimRight(s, "?")
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		return s[i+1:]
	}
	return s
}
