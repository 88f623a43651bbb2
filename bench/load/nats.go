package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/natstest"
)

// natsRun is embedded NATS JetStream started in this process through
// natstest, which is written for tests: it stands in for their testing.TB.
// Fatal panics with a natsFailure that startNATS recovers into an error,
// TempDir makes directories under the run's, and Cleanup collects what
// shutdown runs.
type natsRun struct {
	testing.TB // nil: natstest calls only the methods below
	dir        string
	urls       []string
	cleanups   []func()
}

type natsFailure struct{ msg string }

func (n *natsRun) Helper() {}

func (n *natsRun) Fatal(args ...any) { panic(natsFailure{fmt.Sprint(args...)}) }

func (n *natsRun) TempDir() string {
	d, err := os.MkdirTemp(n.dir, "nats-")
	if err != nil {
		n.Fatal(err)
	}
	return d
}

func (n *natsRun) Cleanup(f func()) { n.cleanups = append(n.cleanups, f) }

// startNATS runs one JetStream server (nodes 1) or a cluster of three
// (nodes 3) on loopback, storing under dir.
func startNATS(dir string, nodes int) (n *natsRun, err error) {
	n = &natsRun{dir: dir}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(natsFailure)
			if !ok {
				panic(r)
			}
			n.shutdown()
			n, err = nil, fmt.Errorf("embedded NATS: %s", f.msg)
		}
	}()
	switch nodes {
	case 1:
		n.urls = []string{natstest.Start(n, n.TempDir(), -1).ClientURL()}
	case 3:
		for _, s := range natstest.StartCluster(n) {
			n.urls = append(n.urls, s.ClientURL())
		}
	default:
		return nil, fmt.Errorf("embedded NATS: 1 or 3 nodes, not %d", nodes)
	}
	return n, nil
}

// shutdown stops the servers, last started first; nil has none.
func (n *natsRun) shutdown() {
	if n == nil {
		return
	}
	for i := len(n.cleanups) - 1; i >= 0; i-- {
		n.cleanups[i]()
	}
	n.cleanups = nil
}

// outbox is the chat_webhooks outbox option of an instance on these
// servers, spooling to spool, with streams of the given replicas under
// stream, and the shortest failover the module allows, so that a killed
// instance's partitions move within the phase.
func (n *natsRun) outbox(stream string, replicas int, spool string) string {
	return fmt.Sprintf(`outbox nats %s {
			stream %s
			partitions 16
			replicas %d
			failover 3s
			spool %s
		}`, strings.Join(n.urls, " "), stream, replicas, spool)
}

// waitNATSReady waits until Caddy's NATS outbox has its streams: until
// then it spools locally and keeps conversation state in its own memory,
// which a measurement must not mistake for the NATS outbox at work. A
// JetStream cluster elects its leaders for a few seconds after it starts.
// The admin API's stats hold the shared queue counts once the streams
// exist, and say why not before (each request waits up to 10s for them).
func (c *caddyProc) waitNATSReady() error {
	var why string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + c.admin + "/chat_webhooks/stats")
		if err != nil {
			why = err.Error()
			continue
		}
		var st struct {
			Queued map[string]int `json:"nats_queued"`
			Error  string         `json:"nats_error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		switch {
		case err != nil:
			why = err.Error()
		case st.Error != "":
			why = st.Error
		case st.Queued != nil:
			return nil
		}
	}
	return fmt.Errorf("the NATS outbox of %s is not ready after 60s: %s", c.admin, why)
}
