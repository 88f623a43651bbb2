package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// caddyProc is the Caddy child process and its admin API.
type caddyProc struct {
	bin, dir, config string
	cmd              *exec.Cmd
	admin            string
	log              *os.File
}

// pinned wraps args in taskset when -caddy-cpus is set; taskset execs, so
// the child's pid is the program's own.
func pinned(args ...string) *exec.Cmd {
	if *caddyCPUs != "" {
		args = append([]string{"taskset", "-c", *caddyCPUs}, args...)
	}
	return exec.Command(args[0], args[1:]...)
}

func (c *caddyProc) start(admin string) error {
	c.admin = admin
	path := filepath.Join(c.dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(c.config), 0o600); err != nil {
		return err
	}
	cmd := pinned(c.bin, "run", "--config", path, "--adapter", "caddyfile")
	var err error
	if c.log, err = os.OpenFile(filepath.Join(c.dir, "caddy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(c.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(c.dir, "config"))
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

// restart stops Caddy and starts it again on the same outbox with the
// configuration it started with.
func (c *caddyProc) restart() error {
	c.stop()
	return c.start(c.admin)
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

// cpu returns the Caddy process's user+system CPU time so far, from
// /proc/<pid>/stat (utime and stime, in clock ticks of 10 ms).
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

// deadLetter is a dead letter as the admin API lists it.
type deadLetter struct {
	Body   json.RawMessage `json:"body"`
	Reason string          `json:"reason"`
}

// deadLetters lists every dead letter of the named webhook.
func (c *caddyProc) deadLetters(webhook string) ([]deadLetter, error) {
	resp, err := http.Get("http://" + c.admin + "/chat_webhooks/dead_letters?webhook=" + url.QueryEscape(webhook))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("dead_letters?webhook=%s: %d %s", webhook, resp.StatusCode, b)
	}
	var out []deadLetter
	return out, json.NewDecoder(resp.Body).Decode(&out)
}
