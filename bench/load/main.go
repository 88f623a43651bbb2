// Command load is the load and fault harness of chatwebhooks. It is not run
// by CI. In one run it starts, on loopback only:
//
//   - a stand-in OpenAI-compatible chat backend, which can also stream
//     paced SSE chunks or hold streams open,
//   - a stand-in webhook receiver (/chatvolt and /chatzuri), which can be
//     taken down and brought back on the same port,
//   - Caddy, the binary built from ./cmd/caddy, as a child process with two
//     sites proxying to the backend: plain reverse_proxy, and the same with
//     chat_webhooks (source openai; chatvolt signed standard, chatzuri
//     signed chatzuri) and a bbolt outbox,
//   - for the proxy scenario, a minimal sender: this binary re-executed as
//     a child process, pinned like Caddy, that stores, signs, POSTs and
//     deletes events with the least work an event needs,
//
// then runs the scenarios asked for and prints their figures. Every phase
// is bounded in time and count.
//
//	go build -o /tmp/cw-caddy ./cmd/caddy
//	taskset -c 0 go run ./bench/load -caddy /tmp/cw-caddy -caddy-cpus 1 -scenarios all
//
// Scenarios: proxy (plain vs module with the outbox drained, Caddy CPU per
// delivered event against the minimal sender's), paced (latency at a
// fraction of the plain site's capacity), sse (first-chunk and inter-chunk
// latency of a paced stream), streams (RSS per 1 000 open streams),
// delivery (events/s end to end, delivery latency), backlog (RSS with
// events queued while the receiver is down, then the time to drain), and
// the faults outage, reload (a storm of reloads that change the webhooks)
// and kill, each printing events sent, delivered (de-duplicated) and lost;
// nats (the delivery phases with bbolt, then the NATS outbox on an
// embedded JetStream of one node and of three with R3, side by side) and
// nats-kill (two instances on one NATS, one SIGKILLed under load).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

var (
	caddyBin      = flag.String("caddy", "", "Caddy binary built from ./cmd/caddy (default: build one into a temporary directory)")
	caddyCPUs     = flag.String("caddy-cpus", "", "run Caddy and the minimal sender under taskset -c with this CPU list, e.g. 1 (pin this harness to the others yourself)")
	scenarios     = flag.String("scenarios", "proxy,delivery", "comma-separated: proxy, paced, sse, streams, delivery, backlog, outage, reload, kill, nats, nats-kill, or all")
	conc          = flag.Int("c", 16, "concurrent clients (and minimal sender connections)")
	duration      = flag.Duration("d", 10*time.Second, "duration of one measured load phase")
	rounds        = flag.Int("rounds", 2, "proxy and paced scenarios: alternating plain/module rounds")
	conversations = flag.Int("conversations", 0, "distinct conversations the requests cycle through (0: every request its own)")
	rate          = flag.Int("rate", 500, "delivery latency phase and fault scenarios: requests per second (paced)")
	pacedFrac     = flag.Float64("paced-frac", 0.5, "paced scenario: rate as a fraction of the plain site's capacity measured in this run")
	pacedConc     = flag.Int("paced-c", 128, "paced scenario: clients available to keep the schedule")
	chunks        = flag.Int("chunks", 20, "sse scenario: chunks per streamed answer")
	chunkEvery    = flag.Duration("chunk-every", 10*time.Millisecond, "sse scenario: the backend's delay between chunks")
	streamsOpen   = flag.Int("streams", 1000, "streams scenario: streams held open at once")
	backlogN      = flag.Int("backlog", 50000, "backlog scenario: requests sent while the receiver is down (two events each)")
	backlogRate   = flag.Int("backlog-rate", 2000, "backlog scenario: requests per second (paced, so that the pipeline queue does not overflow)")
	stormFor      = flag.Duration("storm", 20*time.Second, "reload scenario: how long the paced load runs while the configuration is reloaded")
	reloadEvery   = flag.Duration("reload-every", time.Second, "reload scenario: time between reloads")
	kills         = flag.Int("kills", 1, "kill scenario: SIGKILLs in a row under the same load, each followed at once by a restart")
	workers       = flag.Int("workers", 0, "chat_webhooks workers option (0: Caddy's default, the number of CPUs)")
	noJournal     = flag.Bool("no-journal", false, "run the module with journal off (no capture journal), to measure what the journal costs")
	stream        = flag.Bool("stream", false, "backend answers as an SSE stream")
	drainWithin   = flag.Duration("drain", 3*time.Minute, "how long to wait for the outbox to drain")
	keep          = flag.Bool("keep", false, "keep the temporary directory (config, outbox, Caddy log)")
)

// allScenarios is the order -scenarios all runs them in: the fault
// scenarios last, since they leave dead letters and restarts behind.
var allScenarios = []string{"proxy", "paced", "sse", "streams", "delivery", "backlog", "outage", "reload", "kill", "nats", "nats-kill"}

func main() {
	if spec := os.Getenv(minimalSenderEnv); spec != "" {
		if err := runMinimalSender(spec); err != nil {
			fmt.Fprintln(os.Stderr, "minimal sender:", err)
			os.Exit(1)
		}
		return
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "cw-load-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Println("# temporary directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := *caddyBin
	if bin == "" {
		bin = filepath.Join(dir, "caddy")
		fmt.Println("# building Caddy:", bin)
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/caddy (run from the repository root): %v", err)
		}
	}
	e, err := startEnv(dir, bin)
	if err != nil {
		return err
	}
	defer e.close()

	printMachine()
	list := strings.Split(*scenarios, ",")
	if *scenarios == "all" {
		list = allScenarios
	}
	runs := map[string]func() error{
		"proxy": e.proxyScenario, "paced": e.pacedScenario, "sse": e.sseScenario, "streams": e.streamsScenario,
		"delivery": e.deliveryScenario, "backlog": e.backlogScenario,
		"outage": e.outageScenario, "reload": e.reloadScenario, "kill": e.killScenario,
		"nats": e.natsScenario, "nats-kill": e.natsKillScenario,
	}
	for _, s := range list {
		s = strings.TrimSpace(s)
		scenario := runs[s]
		if scenario == nil {
			return fmt.Errorf("unknown scenario %q; known: %s", s, strings.Join(allScenarios, ", "))
		}
		if err := scenario(); err != nil {
			return fmt.Errorf("%s: %v", s, err)
		}
	}
	return nil
}

func printMachine() {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("# machine: %s; load average %s", model, load)
	fmt.Printf("# clients %d, phase %s, caddy cpus %q, workers %d, stream %t, conversations %d (0: one per request), journal %t\n",
		*conc, *duration, *caddyCPUs, *workers, *stream, *conversations, !*noJournal)
}
