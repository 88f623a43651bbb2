package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// chatRequest is the next chat completion request to url; its last user
// message ends with a token unique in the run, which the backend echoes
// and the receiver reads back from the webhooks.
func (e *env) chatRequest(url string, stream bool) (*http.Request, string) {
	n := e.seq.Add(1)
	conv := n
	if *conversations > 0 {
		conv = n % int64(*conversations)
	}
	tok := fmt.Sprintf("tok-%d", n)
	body := fmt.Sprintf(`{"model":"gpt-test","stream":%t,"user":"visitor-%d","messages":[{"role":"system","content":"You are a helpful shop assistant."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"When does my order ship? %s"}]}`, stream, conv, tok)
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Conversation-Id", fmt.Sprintf("conv-%d", conv))
	return req, tok
}

// loadSpec is one load phase.
type loadSpec struct {
	url     string
	clients int
	d       time.Duration
	limit   int     // stop after this many requests; 0: no limit
	perSec  float64 // requests on a fixed schedule (open loop); 0: as fast as the clients go
}

// sentReq is one successful request: its token, when it was sent and when
// its answer was fully read.
type sentReq struct {
	tok        string
	start, end time.Time
}

// result is one load phase as the clients saw it.
type result struct {
	ok, failed int
	elapsed    time.Duration
	latency    []time.Duration // sorted
	sent       []sentReq
}

func (r result) rps() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) tokens() []string {
	out := make([]string, len(r.sent))
	for i, s := range r.sent {
		out[i] = s.tok
	}
	return out
}

func merge(rs []result) result {
	var out result
	for _, r := range rs {
		out.ok += r.ok
		out.failed += r.failed
		out.elapsed += r.elapsed
		out.latency = append(out.latency, r.latency...)
		out.sent = append(out.sent, r.sent...)
	}
	slices.Sort(out.latency)
	return out
}

// load drives s.url with s.clients clients for s.d or s.limit requests.
// Paced, request i is due at i/perSec from the start and its latency
// counts from then, so that time spent waiting for a free client counts
// as the wait a user would see.
func (e *env) load(s loadSpec) result {
	tr := &http.Transport{MaxIdleConnsPerHost: s.clients, MaxConnsPerHost: s.clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		parts = make([]result, s.clients)
	)
	start := time.Now()
	deadline := start.Add(s.d)
	for c := range parts {
		wg.Go(func() {
			part := &parts[c]
			for {
				i := next.Add(1) - 1
				if s.limit > 0 && i >= int64(s.limit) {
					break
				}
				due := time.Now()
				if s.perSec > 0 {
					due = start.Add(time.Duration(float64(i) * float64(time.Second) / s.perSec))
				}
				if !due.Before(deadline) {
					break
				}
				time.Sleep(time.Until(due))
				req, tok := e.chatRequest(s.url, *stream)
				resp, err := client.Do(req)
				if err != nil {
					part.failed++
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				end := time.Now()
				if err != nil || resp.StatusCode != 200 || !bytes.Contains(b, []byte("tomorrow")) {
					part.failed++
					continue
				}
				e.sent.add(tok, end)
				part.ok++
				part.latency = append(part.latency, end.Sub(due))
				part.sent = append(part.sent, sentReq{tok: tok, start: due, end: end})
			}
		})
	}
	wg.Wait()
	res := merge(parts)
	res.elapsed = time.Since(start)
	return res
}

// streamTiming is what a client saw of one streamed answer.
type streamTiming struct {
	first   time.Duration   // request sent → first chunk read
	gaps    []time.Duration // between consecutive chunks
	transit []time.Duration // backend wrote the chunk → client read it
}

// readStream sends a streaming chat request with the given extra headers
// and reads the answer chunk by chunk; onFirst, if set, runs when the first
// chunk has arrived. It returns the request's token.
func (e *env) readStream(client *http.Client, url string, hdr map[string]string, onFirst func()) (streamTiming, string, error) {
	req, tok := e.chatRequest(url, true)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	var st streamTiming
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return st, tok, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, tok, fmt.Errorf("status %d", resp.StatusCode)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var last time.Time
	for {
		line, err := br.ReadSlice('\n')
		now := time.Now()
		if err != nil {
			return st, tok, fmt.Errorf("stream ended without [DONE]: %v", err)
		}
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		if bytes.HasPrefix(data, []byte("[DONE]")) {
			return st, tok, nil
		}
		if last.IsZero() {
			st.first = now.Sub(t0)
			if onFirst != nil {
				onFirst()
			}
		} else {
			st.gaps = append(st.gaps, now.Sub(last))
		}
		last = now
		if ns := gjson.GetBytes(data, "bench_ns").Int(); ns > 0 {
			st.transit = append(st.transit, now.Sub(time.Unix(0, ns)))
		}
	}
}

// streamLoad is what the clients of one SSE phase saw.
type streamLoad struct {
	streams, failed      int
	first, gaps, transit []time.Duration // sorted
	tokens               []string
}

// streamPhase has s.clients clients read paced streams from s.url, one
// after the other, for s.d.
func (e *env) streamPhase(s loadSpec, n int, every time.Duration) streamLoad {
	tr := &http.Transport{MaxIdleConnsPerHost: s.clients, MaxConnsPerHost: s.clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	hdr := map[string]string{hdrChunks: strconv.Itoa(n), hdrEvery: every.String()}
	var (
		mu  sync.Mutex
		out streamLoad
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(s.d)
	for range s.clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				st, tok, err := e.readStream(client, s.url, hdr, nil)
				mu.Lock()
				if err != nil {
					out.failed++
				} else {
					out.streams++
					out.first = append(out.first, st.first)
					out.gaps = append(out.gaps, st.gaps...)
					out.transit = append(out.transit, st.transit...)
					out.tokens = append(out.tokens, tok)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(out.first)
	slices.Sort(out.gaps)
	slices.Sort(out.transit)
	return out
}

// heldStreams opens n streams to url that the backend holds open after
// their first chunk. It returns once all are open or within has passed,
// with how many are open and a function that waits for all of them to end
// (after backend.release) and returns their tokens.
func (e *env) heldStreams(url string, n int, within time.Duration) (open int, wait func() []string) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: holdLimit + time.Minute}
	var (
		opened atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		toks   []string
	)
	allOpen := make(chan struct{})
	for range n {
		wg.Go(func() {
			_, tok, err := e.readStream(client, url, map[string]string{hdrHold: "1"}, func() {
				if opened.Add(1) == int64(n) {
					close(allOpen)
				}
			})
			if err == nil {
				mu.Lock()
				toks = append(toks, tok)
				mu.Unlock()
			}
		})
	}
	select {
	case <-allOpen:
	case <-time.After(within):
	}
	return int(opened.Load()), func() []string {
		wg.Wait()
		tr.CloseIdleConnections()
		return toks
	}
}
