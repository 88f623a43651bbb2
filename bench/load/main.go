// Command load is the load and fault harness of chatwebhooks (issue 7). It
// is not run by CI. In one run it starts, on loopback only:
//
//   - a stand-in OpenAI-compatible chat backend,
//   - a stand-in webhook receiver (/chatvolt and /chatzuri), which can be
//     taken down and brought back on the same port,
//   - Caddy, the binary built from ./cmd/caddy, as a child process with two
//     sites proxying to the backend: plain reverse_proxy, and the same with
//     chat_webhooks (source openai; chatvolt signed standard, chatzuri
//     signed chatzuri) and a bbolt outbox,
//
// then runs the scenarios asked for and prints their figures. Every phase
// is bounded in time and count.
//
//	go build -o /tmp/cw-caddy ./cmd/caddy
//	taskset -c 0 go run ./bench/load -caddy /tmp/cw-caddy -caddy-cpus 1 -scenarios all
//
// Scenarios: proxy (plain vs module throughput and latency), delivery
// (events/s end to end, delivery latency), backlog (RSS with 100 000
// events queued while the receiver is down, then the time to drain), and
// the faults outage, reload and kill, each printing events sent, delivered
// (de-duplicated) and lost.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
)

var (
	caddyBin    = flag.String("caddy", "", "Caddy binary built from ./cmd/caddy (default: build one into a temporary directory)")
	caddyCPUs   = flag.String("caddy-cpus", "", "run Caddy under taskset -c with this CPU list, e.g. 1 (pin this harness to the others yourself)")
	scenarios   = flag.String("scenarios", "proxy,delivery", "comma-separated: proxy, delivery, backlog, outage, reload, kill, or all")
	conc        = flag.Int("c", 16, "concurrent clients")
	duration    = flag.Duration("d", 10*time.Second, "duration of one measured load phase")
	rounds      = flag.Int("rounds", 2, "proxy scenario: alternating plain/module rounds")
	rate        = flag.Int("rate", 500, "delivery latency phase and fault scenarios: requests per second (paced)")
	backlogN    = flag.Int("backlog", 50000, "backlog scenario: requests sent while the receiver is down (two events each)")
	backlogRate = flag.Int("backlog-rate", 2000, "backlog scenario: requests per second (paced, so that the pipeline queue does not overflow)")
	workers     = flag.Int("workers", 0, "chat_webhooks workers option (0: Caddy's default, the number of CPUs)")
	stream      = flag.Bool("stream", false, "backend answers as an SSE stream")
	drainWithin = flag.Duration("drain", 3*time.Minute, "how long to wait for the outbox to drain")
	keep        = flag.Bool("keep", false, "keep the temporary directory (config, outbox, Caddy log)")
)

const (
	whsec    = "whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI"
	czSecret = "bench-chatzuri-secret"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// env is everything one run starts.
type env struct {
	dir                   string
	backend               *http.Server
	rx                    *receiver
	caddy                 *caddyProc
	ports                 []int // admin, plain site, module site
	plainURL, moduleURL   string
	adminAddr, backendAdr string
	sent                  *tokenLog
	seq                   atomic.Int64
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
	e := &env{dir: dir, sent: newTokenLog()}
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.backendAdr = backendLn.Addr().String()
	e.backend = &http.Server{Handler: http.HandlerFunc(backend)}
	go e.backend.Serve(backendLn)
	defer e.backend.Close()
	if e.rx, err = newReceiver(e.sent); err != nil {
		return err
	}
	defer e.rx.down()
	if e.ports, err = freePorts(3); err != nil {
		return err
	}
	e.adminAddr = fmt.Sprintf("127.0.0.1:%d", e.ports[0])
	e.plainURL = fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", e.ports[1])
	e.moduleURL = fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", e.ports[2])
	cfg := e.caddyfile(0)
	e.caddy = &caddyProc{bin: bin, dir: dir, config: cfg}
	if err := e.caddy.start(e.adminAddr); err != nil {
		return err
	}
	defer e.caddy.stop()

	printMachine()
	list := strings.Split(*scenarios, ",")
	if *scenarios == "all" {
		list = []string{"proxy", "delivery", "backlog", "outage", "reload", "kill"}
	}
	for _, s := range list {
		var err error
		switch strings.TrimSpace(s) {
		case "proxy":
			err = e.proxyScenario()
		case "delivery":
			err = e.deliveryScenario()
		case "backlog":
			err = e.backlogScenario()
		case "outage":
			err = e.outageScenario()
		case "reload":
			err = e.reloadScenario()
		case "kill":
			err = e.killScenario()
		default:
			err = fmt.Errorf("unknown scenario %q", s)
		}
		if err != nil {
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
	fmt.Printf("# clients %d, phase %s, caddy cpus %q, workers %d, stream %t\n", *conc, *duration, *caddyCPUs, *workers, *stream)
}

// caddyfile is the configuration under test; n varies a header so that a
// reload really changes the configuration.
func (e *env) caddyfile(n int) string {
	w := ""
	if *workers > 0 {
		w = fmt.Sprintf("workers %d", *workers)
	}
	rxURL := "http://" + e.rx.addr
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	log {
		level ERROR
	}
	chat_webhooks {
		outbox bbolt %s
		max_queued 250000
		%s
	}
}
http://127.0.0.1:%d {
	reverse_proxy %s
}
http://127.0.0.1:%d {
	chat_webhooks {
		source openai
		conversation_id request.header.X-Conversation-Id
		agent_id agent_1
		agent_name "Support Bot"
		webhook %s/chatvolt {
			name chatvolt
			schema chatvolt
			sign standard {env.BENCH_WHSEC}
			header X-Config %d
			retry 1s 2s 5s 10s 30s 60s 120s 300s
		}
		webhook %s/chatzuri {
			name chatzuri
			schema chatzuri
			sign chatzuri {env.BENCH_CHATZURI}
			retry 1s 2s 5s 10s 30s 60s 120s 300s
		}
	}
	reverse_proxy %s
}
`, e.ports[0], filepath.Join(e.dir, "outbox.db"), w, e.ports[1], e.backendAdr, e.ports[2], rxURL, n, rxURL, e.backendAdr)
}

// ---------------------------------------------------------------- backend

const (
	sseChunk = "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n"
)

// backend answers chat completions like an OpenAI-compatible server; the
// answer's id carries the question's token.
func backend(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	q := gjson.GetBytes(body, `messages.#(role=="user")#.content|@reverse|0`).String()
	id := "chatcmpl-" + strings.TrimPrefix(lastWord(q), "tok-")
	if gjson.GetBytes(body, "stream").Bool() {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, part := range []string{"Your order ", "ships ", "tomorrow."} {
			fmt.Fprintf(w, sseChunk, id, part)
		}
		io.WriteString(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"object":"chat.completion","created":1730000000,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Your order ships tomorrow."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":6,"total_tokens":37}}`, id)
}

func lastWord(s string) string {
	s = strings.TrimRight(s, "?")
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		return s[i+1:]
	}
	return s
}

// ---------------------------------------------------------------- tokens

// tokenLog remembers when each request's response was fully read, by its
// token, so that the receiver can measure delivery latency on one clock.
type tokenLog struct {
	mu   sync.Mutex
	done map[string]time.Time
}

func newTokenLog() *tokenLog { return &tokenLog{done: map[string]time.Time{}} }

func (l *tokenLog) add(tok string, t time.Time) {
	l.mu.Lock()
	l.done[tok] = t
	l.mu.Unlock()
}

func (l *tokenLog) at(tok string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.done[tok]
	return t, ok
}

// ---------------------------------------------------------------- receiver

// receiver records the webhooks it gets: per path, the distinct tokens
// (from the payload's user message), the distinct webhook-ids, the total,
// and the delivery latency of each first arrival.
type receiver struct {
	addr string
	sent *tokenLog

	mu    sync.Mutex
	ln    net.Listener
	srv   *http.Server
	paths map[string]*received
}

type received struct {
	total   int
	tokens  map[string]bool
	ids     map[string]bool
	latency []time.Duration
	last    time.Time
}

func newReceiver(sent *tokenLog) (*receiver, error) {
	rx := &receiver{sent: sent}
	rx.reset()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rx.addr = ln.Addr().String()
	rx.serve(ln)
	return rx, nil
}

func (rx *receiver) reset() {
	rx.mu.Lock()
	rx.paths = map[string]*received{}
	for _, p := range []string{"/chatvolt", "/chatzuri"} {
		rx.paths[p] = &received{tokens: map[string]bool{}, ids: map[string]bool{}}
	}
	rx.mu.Unlock()
}

func (rx *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(rx.handle)}
	rx.mu.Lock()
	rx.ln, rx.srv = ln, srv
	rx.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: deliveries are refused.
func (rx *receiver) down() {
	rx.mu.Lock()
	srv := rx.srv
	rx.srv = nil
	rx.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (rx *receiver) up() error {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", rx.addr); err == nil {
			rx.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (rx *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	var msg string
	switch r.URL.Path {
	case "/chatvolt":
		msg = gjson.GetBytes(body, "userMessage").String()
	case "/chatzuri":
		msg = gjson.GetBytes(body, "payload.message").String()
	}
	tok := lastWord(msg)
	rx.mu.Lock()
	if p := rx.paths[r.URL.Path]; p != nil {
		p.total++
		p.last = now
		if id := r.Header.Get("Webhook-Id"); id != "" {
			p.ids[id] = true
		}
		if tok != "" && !p.tokens[tok] {
			p.tokens[tok] = true
			if t, ok := rx.sent.at(tok); ok {
				p.latency = append(p.latency, now.Sub(t))
			}
		}
	}
	rx.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// snapshot returns, per path, distinct tokens, total, distinct ids.
func (rx *receiver) snapshot() map[string]received {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	out := map[string]received{}
	for k, p := range rx.paths {
		out[k] = received{total: p.total, tokens: p.tokens, ids: p.ids, latency: slices.Clone(p.latency), last: p.last}
	}
	return out
}

// summary sums up both paths: distinct events, the time of the last
// arrival, and the sorted delivery latencies.
func (rx *receiver) summary() (n int, last time.Time, latency []time.Duration) {
	for _, p := range rx.snapshot() {
		n += len(p.tokens)
		if p.last.After(last) {
			last = p.last
		}
		latency = append(latency, p.latency...)
	}
	slices.Sort(latency)
	return n, last, latency
}

func (rx *receiver) distinct() int {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	n := 0
	for _, p := range rx.paths {
		n += len(p.tokens)
	}
	return n
}

// ---------------------------------------------------------------- caddy

type caddyProc struct {
	bin, dir, config string
	cmd              *exec.Cmd
	admin            string
	log              *os.File
}

func (c *caddyProc) start(admin string) error {
	c.admin = admin
	path := filepath.Join(c.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
		return err
	}
	args := []string{c.bin, "run", "--config", path, "--adapter", "caddyfile"}
	if *caddyCPUs != "" {
		args = append([]string{"taskset", "-c", *caddyCPUs}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var err error
	if c.log, err = os.OpenFile(filepath.Join(c.dir, "caddy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.Env = append(os.Environ(), "BENCH_WHSEC="+whsec, "BENCH_CHATZURI="+czSecret,
		"XDG_DATA_HOME="+filepath.Join(c.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"))
	if err := cmd.Start(); err != nil {
		return err
	}
	c.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + admin + "/config/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("caddy did not start; see %s", filepath.Join(c.dir, "caddy.log"))
}

func (c *caddyProc) stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
	c.log.Close()
}

func (c *caddyProc) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	c.cmd = nil
	c.log.Close()
}

// rssKiB reads the resident set of the Caddy process.
func (c *caddyProc) rssKiB() int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return -1
}

// cpu returns the Caddy process's user+system CPU time so far.
func (c *caddyProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ 100
}

// metrics returns the sum of each chat_webhooks metric family (all labels).
func (c *caddyProc) metrics() map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + c.admin + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "caddy_chat_webhooks_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		name := l[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			labels := name[j:]
			name = name[:j]
			// keep reasons apart for drops, and histogram buckets by le
			for _, key := range []string{"reason=", "le="} {
				if k := strings.Index(labels, key); k >= 0 {
					v := labels[k+len(key):]
					v = v[:strings.IndexAny(v[1:], `"`)+2]
					name += "{" + key + v + "}"
				}
			}
		}
		v, _ := strconv.ParseFloat(l[i+1:], 64)
		out[name] += v
	}
	return out
}

func (c *caddyProc) queueDepth() float64 {
	return c.metrics()["caddy_chat_webhooks_queue_depth"]
}

// reload posts a Caddyfile to the admin API's /load.
func (c *caddyProc) reload(cfg string) error {
	req, _ := http.NewRequest(http.MethodPost, "http://"+c.admin+"/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("/load: %d %s", resp.StatusCode, b)
	}
	return nil
}

// ---------------------------------------------------------------- load

// result is one load phase as the clients saw it.
type result struct {
	ok, failed int
	elapsed    time.Duration
	latency    []time.Duration // sorted
	tokens     []string        // of successful requests through the module
}

func (r result) rps() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// load drives url with conc clients for d, or until limit requests when
// limit > 0; perSec > 0 paces the requests (open loop, shared).
func (e *env) load(url string, conc int, d time.Duration, limit int, perSec int) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var tick <-chan time.Time
	if perSec > 0 {
		t := time.NewTicker(time.Second / time.Duration(perSec))
		defer t.Stop()
		tick = t.C
	}
	var (
		mu     sync.Mutex
		res    result
		issued atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var toks []string
			ok, failed := 0, 0
			for ctx.Err() == nil {
				if limit > 0 && issued.Add(1) > int64(limit) {
					break
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						continue
					}
				}
				n := e.seq.Add(1)
				tok := fmt.Sprintf("tok-%d", n)
				body := fmt.Sprintf(`{"model":"gpt-test","stream":%t,"user":"visitor-%d","messages":[{"role":"system","content":"You are a helpful shop assistant."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?"},{"role":"user","content":"When does my order ship? %s"}]}`, *stream, n%1000, tok)
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Conversation-Id", fmt.Sprintf("conv-%d", n%1000))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed++
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				t1 := time.Now()
				if err != nil || resp.StatusCode != 200 || !bytes.Contains(b, []byte("tomorrow")) {
					failed++
					continue
				}
				e.sent.add(tok, t1)
				ok++
				lat = append(lat, t1.Sub(t0))
				toks = append(toks, tok)
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.latency = append(res.latency, lat...)
			res.tokens = append(res.tokens, toks...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latency)
	return res
}

// waitDrained waits until the receiver holds want distinct events and the
// outbox is empty, or the drain timeout; it returns how long it took.
func (e *env) waitDrained(want int) (time.Duration, bool) {
	start := time.Now()
	last, lastChange := -1, time.Now()
	for time.Since(start) < *drainWithin {
		n := e.rx.distinct()
		if n >= want && e.caddy.queueDepth() == 0 {
			return time.Since(start), true
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		m := e.caddy.metrics()
		// Nothing queued anywhere and nothing arriving: what is missing
		// was dropped (or lost), not late.
		if m["caddy_chat_webhooks_queue_depth"] == 0 && m["caddy_chat_webhooks_pipeline_queued"] == 0 && time.Since(lastChange) > 3*time.Second {
			return lastChange.Sub(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), false
}

// account compares the events sent (two per successful module request)
// with what the receiver got, de-duplicated.
func (e *env) account(name string, sent []string, extra string) {
	snap := e.rx.snapshot()
	fmt.Printf("%s: %s\n", name, extra)
	totalLost := 0
	for _, p := range []string{"/chatvolt", "/chatzuri"} {
		got := snap[p]
		delivered := 0
		for _, t := range sent {
			if got.tokens[t] {
				delivered++
			}
		}
		lost := len(sent) - delivered
		totalLost += lost
		ids := ""
		if p == "/chatvolt" {
			ids = fmt.Sprintf(", distinct webhook-ids %d", len(got.ids))
		}
		fmt.Printf("  %-9s sent %d  delivered %d (received %d, duplicates %d%s)  lost %d\n",
			p, len(sent), delivered, got.total, got.total-len(got.tokens), ids, lost)
	}
	m := e.caddy.metrics()
	fmt.Printf("  lost total %d; exchanges dropped: pipeline_full %.0f, shutting_down %.0f; events dropped %.0f; dead-lettered %.0f\n",
		totalLost, m[`caddy_chat_webhooks_exchanges_dropped_total{reason="pipeline_full"}`],
		m[`caddy_chat_webhooks_exchanges_dropped_total{reason="shutting_down"}`], sumPrefix(m, "caddy_chat_webhooks_events_dropped_total"),
		sumPrefix(m, "caddy_chat_webhooks_events_dead_lettered_total"))
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	s := 0.0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// ---------------------------------------------------------------- scenarios

func (e *env) settle() {
	e.waitDrained(0)
	time.Sleep(500 * time.Millisecond)
}

func (e *env) proxyScenario() error {
	fmt.Printf("\n== proxy: plain reverse_proxy vs the same with chat_webhooks, %d clients, %s per phase\n", *conc, *duration)
	e.load(e.plainURL, *conc, 2*time.Second, 0, 0) // warm up both
	e.load(e.moduleURL, *conc, 2*time.Second, 0, 0)
	e.settle()
	var plain, module []result
	for i := 0; i < *rounds; i++ {
		c0 := e.caddy.cpu()
		p := e.load(e.plainURL, *conc, *duration, 0, 0)
		c1 := e.caddy.cpu()
		e.settle()
		c2 := e.caddy.cpu()
		m := e.load(e.moduleURL, *conc, *duration, 0, 0)
		drainStart := time.Now()
		e.settle()
		c3 := e.caddy.cpu() // delivery after the load included
		fmt.Printf("round %d: plain %8.0f req/s p50 %s p99 %s (failed %d) | module %8.0f req/s p50 %s p99 %s (failed %d); outbox drained %.1fs after\n",
			i+1, p.rps(), ms(pct(p.latency, .5)), ms(pct(p.latency, .99)), p.failed,
			m.rps(), ms(pct(m.latency, .5)), ms(pct(m.latency, .99)), m.failed, time.Since(drainStart).Seconds())
		fmt.Printf("         Caddy CPU per request: plain %.0f µs, module %.0f µs (derive, outbox and two deliveries included)\n",
			float64(c1-c0)/float64(time.Microsecond)/float64(p.ok), float64(c3-c2)/float64(time.Microsecond)/float64(m.ok))
		plain, module = append(plain, p), append(module, m)
	}
	p, m := merge(plain), merge(module)
	fmt.Printf("total:   plain %8.0f req/s p50 %s p99 %s | module %8.0f req/s p50 %s p99 %s\n",
		p.rps(), ms(pct(p.latency, .5)), ms(pct(p.latency, .99)), m.rps(), ms(pct(m.latency, .5)), ms(pct(m.latency, .99)))
	fmt.Printf("ratio module/plain: throughput %.3f, p50 %.3f, p99 %.3f; p99 added %s, p50 added %s\n",
		m.rps()/p.rps(), float64(pct(m.latency, .5))/float64(pct(p.latency, .5)), float64(pct(m.latency, .99))/float64(pct(p.latency, .99)),
		ms(pct(m.latency, .99)-pct(p.latency, .99)), ms(pct(m.latency, .5)-pct(p.latency, .5)))
	return nil
}

func merge(rs []result) result {
	var out result
	for _, r := range rs {
		out.ok += r.ok
		out.failed += r.failed
		out.elapsed += r.elapsed
		out.latency = append(out.latency, r.latency...)
	}
	slices.Sort(out.latency)
	return out
}

func (e *env) deliveryScenario() error {
	fmt.Printf("\n== delivery: end to end with the bbolt outbox\n")
	e.settle()
	// Saturation: as fast as the clients go, then until drained.
	e.rx.reset()
	before := e.caddy.metrics()
	start := time.Now()
	r := e.load(e.moduleURL, *conc, *duration, 0, 0)
	took, ok := e.waitDrained(2 * r.ok)
	n, lastAt, lat := e.rx.summary()
	after := e.caddy.metrics()
	fmt.Printf("saturated: %d requests in %s (%.0f req/s) -> %d events delivered in %.2fs from the first request (%.0f events/s); drained %.2fs after the load (ok=%t)\n",
		r.ok, r.elapsed.Round(time.Millisecond), r.rps(), n, lastAt.Sub(start).Seconds(), float64(n)/lastAt.Sub(start).Seconds(), took.Seconds(), ok)
	fmt.Printf("saturated delivery latency (end of response -> receiver): p50 %s p99 %s (n=%d); pipeline_full drops %.0f\n",
		ms(pct(lat, .5)), ms(pct(lat, .99)), len(lat),
		after[`caddy_chat_webhooks_exchanges_dropped_total{reason="pipeline_full"}`]-before[`caddy_chat_webhooks_exchanges_dropped_total{reason="pipeline_full"}`])
	e.account("saturated accounting", r.tokens, "")

	// Healthy receiver at a paced rate: the latency of one event.
	e.settle()
	e.rx.reset()
	start = time.Now()
	r = e.load(e.moduleURL, *conc, *duration, 0, *rate)
	e.waitDrained(2 * r.ok)
	n, lastAt, lat = e.rx.summary()
	fmt.Printf("paced %d req/s (%d requests, %d events sent, %d delivered in %.2fs: %.0f events/s): delivery latency p50 %s p90 %s p99 %s (n=%d)\n",
		*rate, r.ok, 2*r.ok, n, lastAt.Sub(start).Seconds(), float64(n)/lastAt.Sub(start).Seconds(), ms(pct(lat, .5)), ms(pct(lat, .9)), ms(pct(lat, .99)), len(lat))
	e.account("paced accounting", r.tokens, "")
	m := e.caddy.metrics()
	var buckets []string
	for _, le := range []string{"0.001", "0.0025", "0.005", "0.01", "0.025", "0.1"} {
		k := `caddy_chat_webhooks_delivery_latency_seconds_bucket{le="` + le + `"}`
		buckets = append(buckets, fmt.Sprintf("<=%ss: %.0f", le, m[k]-after[k]))
	}
	fmt.Printf("  caddy_chat_webhooks_delivery_latency_seconds (this phase): %s of %.0f\n", strings.Join(buckets, ", "),
		m["caddy_chat_webhooks_delivery_latency_seconds_count"]-after["caddy_chat_webhooks_delivery_latency_seconds_count"])
	return nil
}

func (e *env) backlogScenario() error {
	fmt.Printf("\n== backlog: %d requests (%d events) while the receiver is down\n", *backlogN, 2**backlogN)
	e.settle()
	time.Sleep(2 * time.Second) // let the idle RSS settle
	idle := e.caddy.rssKiB()
	e.rx.down()
	e.rx.reset()
	start := time.Now()
	r := e.load(e.moduleURL, *conc, 10*time.Minute, *backlogN, *backlogRate)
	// wait until everything is in the outbox
	var depth float64
	for i := 0; i < 600; i++ {
		if depth = e.caddy.queueDepth(); depth >= float64(2*r.ok) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	rss := e.caddy.rssKiB()
	fmt.Printf("sent %d requests in %.1fs; queued %.0f events; RSS idle %.1f MiB, with backlog %.1f MiB: +%.1f MiB\n",
		r.ok, time.Since(start).Seconds(), depth, float64(idle)/1024, float64(rss)/1024, float64(rss-idle)/1024)
	if err := e.rx.up(); err != nil {
		return err
	}
	up := time.Now()
	for time.Since(up) < *drainWithin && e.rx.distinct() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	first := time.Since(up)
	_, ok := e.waitDrained(2 * r.ok)
	fmt.Printf("receiver up: first delivery after %.2fs (breaker cooldown), all delivered %.2fs after up (ok=%t): %.0f events/s once flowing\n",
		first.Seconds(), time.Since(up).Seconds(), ok, float64(2*r.ok)/(time.Since(up)-first).Seconds())
	e.account("backlog accounting", r.tokens, "")
	return nil
}

// faultLoad runs paced load on the module site for d while fault runs.
func (e *env) faultLoad(name string, d time.Duration, fault func() string) error {
	e.settle()
	e.rx.reset()
	done := make(chan result)
	go func() { done <- e.load(e.moduleURL, *conc, d, 0, *rate) }()
	note := fault()
	r := <-done
	took, ok := e.waitDrained(2 * r.ok)
	e.account(name, r.tokens, fmt.Sprintf("%d requests ok, %d failed at the client; %s; drained %.1fs after the load (complete=%t)", r.ok, r.failed, note, took.Seconds(), ok))
	return nil
}

func (e *env) outageScenario() error {
	fmt.Printf("\n== fault: receiver outage and recovery\n")
	return e.faultLoad("outage", 30*time.Second, func() string {
		time.Sleep(5 * time.Second)
		e.rx.down()
		time.Sleep(10 * time.Second)
		if err := e.rx.up(); err != nil {
			return "receiver did not come back: " + err.Error()
		}
		return "receiver down from 5s to 15s of 30s"
	})
}

func (e *env) reloadScenario() error {
	fmt.Printf("\n== fault: config reloads under load\n")
	return e.faultLoad("reload", 20*time.Second, func() string {
		n, failed := 0, 0
		for t := time.Now(); time.Since(t) < 18*time.Second; time.Sleep(time.Second) {
			n++
			if err := e.caddy.reload(e.caddyfile(n)); err != nil {
				failed++
				fmt.Println("  reload:", err)
			}
		}
		return fmt.Sprintf("%d reloads (POST /load), %d failed", n, failed)
	})
}

func (e *env) killScenario() error {
	fmt.Printf("\n== fault: SIGKILL under load, restart on the same outbox\n")
	return e.faultLoad("kill", 20*time.Second, func() string {
		time.Sleep(8 * time.Second)
		e.caddy.kill()
		t := time.Now()
		if err := e.caddy.start(e.caddy.admin); err != nil {
			return "restart failed: " + err.Error()
		}
		return fmt.Sprintf("SIGKILL at 8s, restarted in %.2fs", time.Since(t).Seconds())
	})
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
