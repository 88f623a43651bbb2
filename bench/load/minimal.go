package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The minimal sender is the yardstick of the module's delivery cost: the
// least work a durable, signed webhook needs per event. It runs as this
// binary re-executed with minimalSenderEnv set to its minimalSpec, so that
// it is pinned like Caddy and its CPU time is its own.
const minimalSenderEnv = "BENCH_MINIMAL_SENDER"

// maxGroup bounds the messages one bbolt commit carries.
const maxGroup = 1024

// minimalSpec is what the minimal sender is asked to send.
type minimalSpec struct {
	URL     string `json:"url"` // the receiver
	Events  int    `json:"events"`
	Clients int    `json:"clients"` // concurrent POSTs, each on a kept-alive connection
	DB      string `json:"db"`
	Secret  string `json:"secret"` // Standard Webhooks whsec_ secret
	Prefix  string `json:"prefix"` // tokens are Prefix + sequence number
	// PerSec, if not zero, paces the events on a fixed schedule, as they
	// would arrive from traffic; zero sends them as fast as they go.
	PerSec   float64           `json:"per_sec,omitempty"`
	Payloads []payloadTemplate `json:"payloads"`
}

// payloadTemplate is a payload the module delivered, split at its token.
type payloadTemplate struct {
	Path  string   `json:"path"`
	Parts []string `json:"parts"`
}

// minimalResult is what the minimal sender reports on its stdout.
type minimalResult struct {
	Sent          int `json:"sent"`
	Failed        int `json:"failed"`
	PutCommits    int `json:"put_commits"`
	DeleteCommits int `json:"delete_commits"`
}

type outMsg struct {
	id, path string
	body     []byte
}

var outboxBucket = []byte("outbox")

// runMinimalSender is the child's whole life: for each event it stores
// the payload in bbolt (grouped commits), signs it (HMAC-SHA256, Standard
// Webhooks), POSTs it and deletes it (grouped commits).
func runMinimalSender(specJSON string) error {
	var s minimalSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		return err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.Secret, "whsec_"))
	if err != nil {
		return err
	}
	db, err := bolt.Open(s.DB, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(outboxBucket)
		return err
	}); err != nil {
		return err
	}
	in, toSend, sent := make(chan *outMsg, 256), make(chan *outMsg, 256), make(chan *outMsg, 256)
	go func() {
		start := time.Now()
		for i := range s.Events {
			if s.PerSec > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(float64(i) / s.PerSec * float64(time.Second)))))
			}
			p := s.Payloads[i%len(s.Payloads)]
			tok := s.Prefix + strconv.Itoa(i)
			in <- &outMsg{id: "msg_" + tok, path: p.Path, body: []byte(strings.Join(p.Parts, tok))}
		}
		close(in)
	}()
	var res minimalResult
	var storeErr error
	go func() {
		res.PutCommits, storeErr = commitGroups(db, in, 0, func(b *bolt.Bucket, m *outMsg) error {
			return b.Put([]byte(m.id), m.body)
		}, func(m *outMsg) { toSend <- m })
		close(toSend)
	}()
	var failed atomic.Int64
	var wg sync.WaitGroup
	tr := &http.Transport{MaxIdleConnsPerHost: s.Clients, MaxConnsPerHost: s.Clients}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range s.Clients {
		wg.Go(func() {
			mac := hmac.New(sha256.New, key)
			for m := range toSend {
				if !post(client, mac, s.URL, m) {
					failed.Add(1)
				}
				sent <- m
			}
		})
	}
	go func() { wg.Wait(); close(sent) }()
	var deleteErr error
	res.DeleteCommits, deleteErr = commitGroups(db, sent, deleteLinger, func(b *bolt.Bucket, m *outMsg) error {
		return b.Delete([]byte(m.id))
	}, func(*outMsg) {})
	if err := errors.Join(storeErr, deleteErr); err != nil {
		return err
	}
	res.Sent, res.Failed = s.Events-int(failed.Load()), int(failed.Load())
	return json.NewEncoder(os.Stdout).Encode(res)
}

// deleteLinger is how long a delete commit waits for more deletes, which
// nothing waits for (the module's outbox does the same).
const deleteLinger = 5 * time.Millisecond

// commitGroups applies each message of ch to the outbox bucket, as many
// per commit as are waiting when a commit starts or, with linger, come
// within linger of the first, then hands each on.
func commitGroups(db *bolt.DB, ch <-chan *outMsg, linger time.Duration, apply func(*bolt.Bucket, *outMsg) error, then func(*outMsg)) (commits int, err error) {
	for m := range ch {
		group := []*outMsg{m}
		var timeout <-chan time.Time
		if linger > 0 {
			timeout = time.After(linger)
		}
	fill:
		for len(group) < maxGroup {
			var more *outMsg
			var ok bool
			if timeout == nil {
				select {
				case more, ok = <-ch:
				default:
					break fill
				}
			} else {
				select {
				case more, ok = <-ch:
				case <-timeout:
					break fill
				}
			}
			if !ok {
				break fill
			}
			group = append(group, more)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(outboxBucket)
			for _, m := range group {
				if err := apply(b, m); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return commits, err
		}
		commits++
		for _, m := range group {
			then(m)
		}
	}
	return commits, nil
}

// post signs m as Standard Webhooks does and POSTs it, retrying a few
// times; it reports whether the receiver took it.
func post(client *http.Client, mac hash.Hash, url string, m *outMsg) bool {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac.Reset()
	mac.Write([]byte(m.id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(m.body)
	sig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for attempt := range 5 {
		req, _ := http.NewRequest(http.MethodPost, url+m.path, bytes.NewReader(m.body))
		req.Header["Content-Type"] = []string{"application/json"}
		req.Header["Webhook-Id"] = []string{m.id}
		req.Header["Webhook-Timestamp"] = []string{ts}
		req.Header["Webhook-Signature"] = []string{sig}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond << attempt)
	}
	return false
}

// minimalRun is one run of the minimal sender as the harness saw it.
type minimalRun struct {
	minimalResult
	delivered    int
	elapsed, cpu time.Duration
}

// runMinimal has the minimal sender send events copies of the payloads
// the receiver last got from the module, to the same receiver, perSec a
// second (0: as fast as it can), and measures its CPU time (user+system of
// the whole process, from wait4).
func (e *env) runMinimal(events int, perSec float64) (minimalRun, error) {
	var run minimalRun
	snap := e.rx.snapshot()
	spec := minimalSpec{URL: "http://" + e.rx.addr, Events: events, Clients: *conc, PerSec: perSec,
		DB: filepath.Join(e.dir, fmt.Sprintf("minimal-%d.db", time.Now().UnixNano())), Secret: webhooks[0].secret(0), Prefix: "tok-min"}
	for _, w := range webhooks {
		p := snap[w.path()]
		if p.sample == nil {
			return run, fmt.Errorf("the receiver has no %s payload to copy yet", w.name)
		}
		spec.Payloads = append(spec.Payloads, payloadTemplate{Path: w.path(), Parts: strings.Split(string(p.sample), p.sampleTok)})
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return run, err
	}
	self, err := os.Executable()
	if err != nil {
		return run, err
	}
	cmd := pinned(self)
	cmd.Env = append(os.Environ(), minimalSenderEnv+"="+string(specJSON))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	e.rx.reset()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return run, fmt.Errorf("minimal sender: %v", err)
	}
	run.elapsed = time.Since(start)
	run.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err := json.Unmarshal(out.Bytes(), &run.minimalResult); err != nil {
		return run, fmt.Errorf("minimal sender said %q: %v", out.String(), err)
	}
	run.delivered = e.rx.distinct()
	return run, nil
}
