package caddymodule

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// validate adapts a Caddyfile and runs Caddy's own validation on it, as
// `caddy validate` does: provision, then clean up without starting.
func validate(t *testing.T, cfg string) error {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		return err
	}
	return validateJSON(adapted)
}

func validateJSON(cfg []byte) error {
	var c caddy.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	return caddy.Validate(&c)
}

// siteConfig is a site on port whose chat_webhooks block derives from the
// openai source and holds webhooks, proxying to backend.
func siteConfig(port int, webhooks, backend string) string {
	return fmt.Sprintf(`http://localhost:%d {
	chat_webhooks {
		source openai
		%s
	}
	reverse_proxy %s
}
`, port, webhooks, backend)
}

func TestTwoSitesKeepTheirOwnWebhooks(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	hook := func(tenant, token string) string {
		return fmt.Sprintf(`webhook %s/in?tenant=%s {
			header Authorization "Bearer %s"
			header X-Tenant %s
		}`, sink.URL(), tenant, token, tenant)
	}
	be := backend.Listener.Addr().String()
	startChatCaddy(t, testCaddyfile("", "outbox memory", "source openai\n"+hook("alpha", "alpha-token"),
		"reverse_proxy "+be, siteConfig(plainPort, hook("beta", "beta-token"), be)))

	mustTurn(t, withModulePort, "conv-alpha", "to alpha")
	mustTurn(t, plainPort, "conv-beta", "to beta")
	got := sink.waitDistinct(2, 5*time.Second)
	for _, d := range got {
		want := "alpha"
		if strings.Contains(string(d.body), "to beta") {
			want = "beta"
		}
		if d.query != "tenant="+want || d.header.Get("Authorization") != "Bearer "+want+"-token" || d.header.Get("X-Tenant") != want {
			t.Errorf("%s's event arrived with query %q, Authorization %q, X-Tenant %q", want, d.query, d.header.Get("Authorization"), d.header.Get("X-Tenant"))
		}
	}
	names := outboxStats(t, testAdmin).Endpoints
	if len(names) != 2 {
		t.Errorf("stats list %v, want two webhooks", keys(names))
	}
}

func TestTwoDifferentWebhooksCannotShareAName(t *testing.T) {
	named := func(url string) string { return "webhook " + url + " {\n\t\t\tname crm\n\t\t}" }
	tests := []struct {
		name, sites string
		wantErr     bool
	}{
		{"same name, other URL", siteConfig(withModulePort, named("https://a.example/in"), "127.0.0.1:9") +
			siteConfig(plainPort, named("https://b.example/in"), "127.0.0.1:9"), true},
		{"one block with two", siteConfig(withModulePort, named("https://a.example/in")+"\n"+named("https://a.example/in?x=1"), "127.0.0.1:9"), true},
		{"the same webhook in two sites", siteConfig(withModulePort, named("https://a.example/in"), "127.0.0.1:9") +
			siteConfig(plainPort, named("https://a.example/in"), "127.0.0.1:9"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validate(t, "{\n\tadmin off\n\tchat_webhooks {\n\t\toutbox memory\n\t}\n}\n"+tt.sites)
			if tt.wantErr != (err != nil) {
				t.Fatalf("validate = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), `"crm"`) || !strings.Contains(err.Error(), "give each its own name")) {
				t.Errorf("error %q should name the webhook and say what to do", err)
			}
		})
	}
}

func TestRejectedReloadChangesNothing(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	t.Setenv("CW_TEST_BAD_WHSEC", "not-a-webhook-secret")
	config := func(path, header, extra string) string {
		return chatConfig("", fmt.Sprintf(`source openai
		webhook %s/%s {
			name rx
			header X-Config %s
			sign standard `+sinkSecret+`
		}
		%s`, sink.URL(), path, header, extra), backend.Listener.Addr().String())
	}
	startChatCaddy(t, config("A", "a", ""))
	bad := config("B", "b", "webhook "+sink.URL()+"/other {\n\t\t\tsign standard {env.CW_TEST_BAD_WHSEC}\n\t\t}")
	if err := reloadCaddy(bad); err == nil || !strings.Contains(err.Error(), "sign") {
		t.Fatalf("reload with a bad secret = %v, want it refused", err)
	}
	mustTurn(t, withModulePort, "after-rejected-reload", "still A?")
	d := sink.waitDistinct(1, 5*time.Second)[0]
	if d.path != "/A" || d.header.Get("X-Config") != "a" {
		t.Errorf("after a rejected reload the event went to %s with X-Config %q, want /A with a", d.path, d.header.Get("X-Config"))
	}
}

func TestRemovedWebhookGetsNothingAndItsQueueBecomesDeadLetters(t *testing.T) {
	backend := newTurnBackend(t)
	kept := newHookSink(t, nil)
	gone := newHookSink(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
	webhook := func(name string, sink *hookSink) string {
		return fmt.Sprintf(`webhook %s/hook {
			name %s
			sign standard `+sinkSecret+`
			retry 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms 50ms
		}`, sink.URL(), name)
	}
	outbox := filepath.Join(t.TempDir(), "outbox.db")
	config := func(webhooks ...string) string {
		return testCaddyfile("", "outbox bbolt "+outbox+"\n\t\tbreaker {\n\t\t\tmin_requests 1000\n\t\t}",
			"source openai\n"+strings.Join(webhooks, "\n"), "reverse_proxy "+backend.Listener.Addr().String(), "")
	}
	startChatCaddy(t, config(webhook("kept", kept), webhook("gone", gone)))
	for i := range 3 {
		mustTurn(t, withModulePort, fmt.Sprintf("removal-%d", i), "hello")
	}
	kept.waitDistinct(3, 5*time.Second)
	waitUntil(t, 5*time.Second, "gone retrying", func() bool { n, _ := gone.snapshot(); return n >= 6 })

	if err := reloadCaddy(config(webhook("kept", kept))); err != nil {
		t.Fatal(err)
	}
	before, _ := gone.snapshot()
	mustTurn(t, withModulePort, "removal-after", "hello again")
	kept.waitDistinct(4, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // six retry periods
	if after, _ := gone.snapshot(); after != before {
		t.Errorf("the removed webhook got %d more requests after the reload", after-before)
	}
	// An attempt in flight at the reload ends as a dead letter too.
	dead := waitDeadLetters(t, "gone", 3)
	waitUntil(t, 5*time.Second, "the last attempt to end", func() bool { return outboxStats(t, testAdmin).Queued == 0 })
	stats := outboxStats(t, testAdmin)
	if _, listed := stats.Endpoints["gone"]; listed || stats.OrphanedDeadLetters["gone"] != 3 {
		t.Errorf("stats %+v: want gone unlisted, with 3 orphaned dead letters", stats)
	}
	if len(dead) != 3 || dead[0].Reason != delivery.ReasonRemoved || dead[2].Reason != delivery.ReasonRemoved {
		t.Fatalf("dead letters of gone: %+v, want 3 with reason %s", dead, delivery.ReasonRemoved)
	}

	if out, err := runChatWebhooks(t, "replay", "--webhook", "nosuch", "--address", testAdmin); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("replay --webhook nosuch = %q, %v; want a 404 error", out, err)
	}
	out, err := runChatWebhooks(t, "purge", "--webhook", "gone", "--address", testAdmin)
	if err != nil || gjson.Get(out, "dead_letters").Int() != 3 {
		t.Fatalf("purge = %s, %v; want 3 dead letters deleted", out, err)
	}
	if stats := outboxStats(t, testAdmin); len(stats.OrphanedDeadLetters) != 0 {
		t.Errorf("after purge: %+v", stats)
	}
}

// fileDigest is the SHA-256 of a file's bytes.
func fileDigest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestValidateOpensNothingAndStartsNothing(t *testing.T) {
	sink := newHookSink(t, nil)
	outbox := filepath.Join(t.TempDir(), "outbox.db")
	// An outbox left with a pending message for the webhook below.
	store, err := delivery.OpenBolt(outbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Add([]*delivery.Record{{Message: delivery.Message{ID: "left", Endpoint: "rx", Body: []byte(`{}`)}}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	cfg := chatConfig(outbox, `source openai
		webhook `+sink.URL()+`/hook {
			name rx
		}`, "127.0.0.1:9")
	before := fileDigest(t, outbox)
	if err := validate(t, strings.Replace(cfg, "admin "+testAdmin, "admin off", 1)); err != nil {
		t.Fatalf("validate: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // time enough for a wrongly started engine to send
	if n, _ := sink.snapshot(); n != 0 || fileDigest(t, outbox) != before {
		t.Fatalf("validate sent %d webhooks or changed the outbox", n)
	}

	// With a Caddy running on the same outbox, validating takes no lock.
	startChatCaddy(t, cfg)
	sink.waitDistinct(1, 5*time.Second)
	start := time.Now()
	if err := validate(t, strings.Replace(cfg, "admin "+testAdmin, "admin off", 1)); err != nil {
		t.Fatalf("validate beside a running Caddy: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("validate beside a running Caddy took %v: it waited for the outbox lock", took)
	}
}

func TestDefaultConfigStartsWithAFreshDataDirectory(t *testing.T) {
	bin := buildCaddy(t)
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	home := t.TempDir()
	config := filepath.Join(home, "Caddyfile")
	os.WriteFile(config, []byte(fmt.Sprintf(`{
	admin %s
	http_port %d
}
http://localhost:%d {
	chat_webhooks {
		source openai
		webhook %s/hook {
			sign standard %s
		}
	}
	reverse_proxy %s
}
`, procAdmin, procPort, procPort, sink.URL(), sinkSecret, backend.Listener.Addr().String())), 0o600)
	startCaddyProcess(t, bin, config, home)
	mustTurn(t, procPort, "fresh", "hello")
	sink.waitDistinct(1, 5*time.Second)
	info, err := os.Stat(filepath.Join(home, "data", "caddy", "chat_webhooks"))
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("outbox directory: %v, %v; want it created with mode 0700", info, err)
	}

	// `caddy validate` beside it, on the same outbox, is quick and clean.
	cmd := exec.Command(bin, "validate", "--config", config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"))
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	t.Logf("caddy validate beside a running Caddy took %v", time.Since(start))
}

func TestJSONConfigGetsTheCaddyfilesLimits(t *testing.T) {
	site := func(handler string) string {
		return `{"admin":{"disabled":true},"apps":{"chat_webhooks":{"outbox":{"kind":"memory"}},"http":{"servers":{"s":{"listen":[":0"],"routes":[{"handle":[` + handler + `]}]}}}}}`
	}
	app := func(opts string) string {
		return `{"admin":{"disabled":true},"apps":{"chat_webhooks":{"outbox":{"kind":"memory"},` + opts + `}}}`
	}
	tests := []struct {
		name, config, want string
	}{
		{"negative max_capture", site(`{"handler":"chat_webhooks","sources":["openai"],"max_capture":-1}`), "max_capture -1"},
		{"huge max_capture", site(`{"handler":"chat_webhooks","sources":["openai"],"max_capture":5000000000}`), "max_capture 5000000000"},
		{"timeout of 1000h", site(`{"handler":"chat_webhooks","sources":["openai"],"webhooks":[{"url":"https://h.example/in","timeout":"1000h"}]}`), "timeout 1000h0m0s"},
		{"a million workers", app(`"workers":1000000`), "workers 1000000"},
		{"negative queue", app(`"max_queued":-5`), "max_queued -5"},
		{"sign tolerance, which only verifiers read", site(`{"handler":"chat_webhooks","sources":["openai"],"webhooks":[{"url":"https://h.example/in","sign":{"scheme":"standard","secrets":["whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI"],"tolerance":300000000000}}]}`), `unknown field "tolerance"`},
		{"ordering", site(`{"handler":"chat_webhooks","sources":["openai"],"webhooks":[{"url":"https://h.example/in","ordering":"random"}]}`), "ordering"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateJSON([]byte(tt.config))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestSecretsInWebhookURLsStayOutOfNamesMetricsAndLogs(t *testing.T) {
	const token = "T0k3nInThePath9x"
	t.Setenv("CW_TEST_HOOK_TOKEN", token)
	backend := newTurnBackend(t)
	sink := newHookSink(t, func(int, *http.Request) int { return http.StatusInternalServerError })
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	startChatCaddy(t, testCaddyfile("log {\n\t\toutput file "+logFile+"\n\t\tlevel DEBUG\n\t}", "outbox memory",
		`source openai
		webhook `+sink.URL()+`/hooks/{env.CW_TEST_HOOK_TOKEN}?key={env.CW_TEST_HOOK_TOKEN} {
			schema chatvolt
			retry off
		}`, "reverse_proxy "+backend.Listener.Addr().String(), ""))
	mustTurn(t, withModulePort, "secret-path", "hello")
	waitUntil(t, 5*time.Second, "the receiver asked", func() bool { n, _ := sink.snapshot(); return n >= 1 })
	waitUntil(t, 5*time.Second, "the failure logged", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "webhook delivery failing")
	})
	_, stats := adminRequest(t, testAdmin, http.MethodGet, "/chat_webhooks/stats")
	_, metricsPage := adminRequest(t, testAdmin, http.MethodGet, "/metrics")
	logs, _ := os.ReadFile(logFile)
	for what, b := range map[string][]byte{"stats": stats, "metrics": metricsPage, "logs": logs} {
		if strings.Contains(string(b), token) {
			t.Errorf("the URL's secret appears in the %s", what)
		}
	}
	if !strings.Contains(string(stats), "chatvolt 127.0.0.1") {
		t.Errorf("stats %s: want the default name to read schema and host", stats)
	}
}

func TestSlowLookupHoldsBackOnlyItsOwnConversations(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	crm, release := newHeldLookups(t, "/slow")
	// Its own outbox: queue_size and workers shape a new pipeline only.
	outbox := filepath.Join(t.TempDir(), "outbox.db")
	startChatCaddy(t, testCaddyfile("", "outbox bbolt "+outbox+"\n\t\tqueue_size 64\n\t\tworkers 2", `source openai
		user_info `+crm.URL+`/users/{conversation.id} {
			timeout 1m
		}
		webhook `+sink.URL()+`/hook {
			sign standard `+sinkSecret+`
		}`, "reverse_proxy "+backend.Listener.Addr().String(), ""))
	t.Cleanup(release) // before Caddy stops

	// The pipeline shards by a hash of the conversation id's JSON: find a
	// fast conversation on the other shard than the slow one.
	shard := func(conv string) uint32 {
		h := fnv.New32a()
		h.Write([]byte(`"` + conv + `"`))
		return h.Sum32() % 2
	}
	fast := "fast-0"
	for i := 1; shard(fast) == shard("slow"); i++ {
		fast = fmt.Sprintf("fast-%d", i)
	}
	dropped := counterValue(metrics.exchangesDropped.WithLabelValues("shard_full"))
	for i := range 100 {
		mustTurn(t, withModulePort, "slow", fmt.Sprintf("slow turn %d", i))
	}
	mustTurn(t, withModulePort, fast, "fast turn")
	got := sink.waitDistinct(1, 5*time.Second)
	if !strings.Contains(string(got[0].body), "fast turn") {
		t.Errorf("first delivery %s, want the fast conversation's", got[0].body)
	}
	if counterValue(metrics.exchangesDropped.WithLabelValues("shard_full")) == dropped {
		t.Error("the slow shard's overflow was not counted")
	}
}
