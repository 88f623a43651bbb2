package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// outboxKind is one outbox the nats scenario compares: bbolt, or the NATS
// outbox on an embedded JetStream of nodes servers with replicas copies.
type outboxKind struct {
	name            string
	nodes, replicas int // nodes 0: bbolt
}

var outboxKinds = []outboxKind{{name: "bbolt"}, {name: "nats 1 node", nodes: 1, replicas: 1}, {name: "nats 3 nodes R3", nodes: 3, replicas: 3}}

// natsScenario runs the delivery phases (saturated, then paced) with each
// outbox in turn, restarting Caddy on it, and prints them side by side.
// Caddy is back on its bbolt outbox afterwards.
func (e *env) natsScenario() error {
	fmt.Printf("\n== nats: delivery with the bbolt outbox, then the NATS outbox on an embedded JetStream (1 node, 3 nodes R3) in this process\n")
	type row struct {
		kind             outboxKind
		saturated, paced deliveryFigures
		publishLag       time.Duration // mean spool -> JetStream of the paced phase
	}
	var rows []row
	// A NATS server stops once Caddy has left it.
	var prev *natsRun
	defer func() {
		e.useOutbox("")
		prev.shutdown()
	}()
	for i, k := range outboxKinds {
		fmt.Printf("-- %s\n", k.name)
		var n *natsRun
		outbox := ""
		if k.nodes > 0 {
			var err error
			if n, err = startNATS(e.dir, k.nodes); err != nil {
				return err
			}
			outbox = n.outbox(fmt.Sprintf("bench%d", i), k.replicas, filepath.Join(e.dir, fmt.Sprintf("spool-%d.db", i)))
		}
		err := e.useOutbox(outbox)
		prev.shutdown()
		prev = n
		if err == nil && n != nil {
			err = e.caddy.waitNATSReady()
		}
		if err != nil {
			return err
		}
		r := row{kind: k, saturated: e.saturatedDelivery()}
		before := e.caddy.metrics()
		r.paced = e.pacedDelivery()
		r.publishLag = meanOf(before, e.caddy.metrics(), "caddy_chat_webhooks_nats_forward_lag_seconds")
		rows = append(rows, r)
	}
	fmt.Printf("\n%-16s | %-48s | %-48s | %s\n", "outbox", fmt.Sprintf("saturated, -c %d", *conc), fmt.Sprintf("paced %d req/s", *rate), "paced publish lag mean")
	for _, r := range rows {
		fmt.Printf("%-16s | %6.0f events/s p50 %12s p99 %12s | %6.0f events/s p50 %12s p99 %12s | %s  lost %d\n", r.kind.name,
			r.saturated.perSec, ms(r.saturated.p50), ms(r.saturated.p99), r.paced.perSec, ms(r.paced.p50), ms(r.paced.p99), ms(r.publishLag), r.saturated.lost+r.paced.lost)
	}
	return nil
}

// meanOf is the mean of histogram family between two scrapes.
func meanOf(before, after map[string]float64, family string) time.Duration {
	n := after[family+"_count"] - before[family+"_count"]
	if n == 0 {
		return 0
	}
	return time.Duration((after[family+"_sum"] - before[family+"_sum"]) / n * float64(time.Second))
}

// useOutbox restarts Caddy with the outbox option outbox (empty: bbolt).
func (e *env) useOutbox(outbox string) error {
	e.caddy.stop()
	e.outbox = outbox
	e.caddy.config = e.caddyfile(0)
	return e.caddy.start(e.adminAddr)
}
