package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Every testdata/adapt/*.caddyfile adapts to the JSON beside it, and that JSON
// loads back into the module's types and marshals to the same document.
func TestCaddyfileAdaptsToGoldenJSON(t *testing.T) {
	files, _ := filepath.Glob("testdata/adapt/*.caddyfile")
	if len(files) == 0 {
		t.Fatal("no golden Caddyfiles")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": file})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %v", warnings)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, adapted, "", "\t")
			pretty.WriteByte('\n')
			golden := strings.TrimSuffix(file, ".caddyfile") + ".json"
			if *update {
				os.WriteFile(golden, pretty.Bytes(), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("adapted JSON differs from %s (run go test -update after checking):\n%s", golden, pretty.Bytes())
			}
			assertHandlersRoundTrip(t, adapted)
		})
	}
}

// assertHandlersRoundTrip decodes every chat_webhooks handler of a config
// into Handler and checks that encoding it again loses nothing.
func assertHandlersRoundTrip(t *testing.T, cfg []byte) {
	t.Helper()
	handlers := chatHandlers(cfg)
	for _, raw := range handlers {
		var h Handler
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var withName struct {
			Handler
			Name string `json:"handler"`
		}
		if err := dec.Decode(&withName); err != nil {
			t.Errorf("handler JSON does not decode: %v", err)
		}
		h = withName.Handler
		again, _ := json.Marshal(struct {
			Name string `json:"handler"`
			*Handler
		}{"chat_webhooks", &h})
		if !jsonEqual(raw, again) {
			t.Errorf("handler JSON does not round-trip:\n got %s\nwant %s", again, raw)
		}
	}
	if len(handlers) == 0 {
		t.Error("no chat_webhooks handler in the adapted config")
	}
}

// chatHandlers returns the JSON of every chat_webhooks handler in a
// Caddy JSON config.
func chatHandlers(cfg []byte) [][]byte {
	var doc any
	json.Unmarshal(cfg, &doc)
	var out [][]byte
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "chat_webhooks" {
				raw, _ := json.Marshal(v)
				out = append(out, raw)
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return out
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestBadCaddyfileNamesTheLineAndTheFix(t *testing.T) {
	tests := []struct {
		name, config, want string
		global             string // the global option's body, if any
	}{
		{"unknown source", "source opneai", `unknown source "opneai"; built-in sources: `, ""},
		{"unknown option", "colour blue", `unknown chat_webhooks option "colour"`, ""},
		{"bad max_capture", "max_capture lots", `max_capture "lots": write a size such as 1MiB`, ""},
		{"max_capture above its bound", "max_capture 128MiB", `max_capture 134217728: write a number from 1 to 67108864`, ""},
		{"rule without event", "rule r {\n\t\tfield message.content request.body.text\n\t}", "emits no event", ""},
		{"rule with bad field", "rule r {\n\t\tfield mesage.content request.body.text\n\t\tevent message.received\n\t}", `unknown event field "mesage.content"`, ""},
		{"webhook without url", "webhook {\n\t}", "webhook needs a URL", ""},
		{"bad ordering", "webhook http://127.0.0.1:1/h {\n\t\tordering random\n\t}", `ordering "random": write conversation or none`, ""},
		{"bad retry", "webhook http://127.0.0.1:1/h {\n\t\tretry soon\n\t}", `retry "soon"`, ""},
		{"unknown schema event", "webhook http://127.0.0.1:1/h {\n\t\tschema chatvolt\n\t\tevents AGENT_DANCED\n\t}", `"AGENT_DANCED" is neither a canonical event type nor an event of schema "chatvolt"`, ""},
		{"bad header name", "webhook http://127.0.0.1:1/h {\n\t\theader \"X Bad:\" v\n\t}", `header name "X Bad:" is not a valid HTTP header name`, ""},
		{"bad expect_body", "webhook http://127.0.0.1:1/h {\n\t\texpect_body accepted\n\t}", "expect_body must be a JSON object", ""},
		{"unknown sign option", "webhook http://127.0.0.1:1/h {\n\t\tsign standard whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI {\n\t\t\ttolerance 5m\n\t\t}\n\t}", `unknown sign option "tolerance"; known: algorithm`, ""},
		{"timeout too long", "webhook http://127.0.0.1:1/h {\n\t\ttimeout 1000h\n\t}", `timeout 1000h`, ""},
		{"relative webhook URL", "webhook /in {\n\t}", "absolute http:// or https:// URL", ""},
		{"two webhooks named alike", "webhook http://127.0.0.1:1/a {\n\t\tname crm\n\t}\n\twebhook http://127.0.0.1:1/b {\n\t\tname crm\n\t}", `two webhooks are named "crm"`, ""},
		{"malformed secret", "webhook http://127.0.0.1:1/h {\n\t\tsign standard not-a-whsec\n\t}", "sign: ", ""},
		{"missing CA file", "webhook http://127.0.0.1:1/h {\n\t\ttls {\n\t\t\tca /nonexistent/ca.pem\n\t\t}\n\t}", "tls ca: open /nonexistent/ca.pem", ""},
		{"record without file", "record {\n\t}", "record <file> { ... }", ""},
		{"bad record size", "record /tmp/c.har {\n\t\tmax_size huge\n\t}", `record max_size "huge": write a size such as 64MiB`, ""},
		{"record size above its bound", "record /tmp/c.har {\n\t\tmax_size 8GiB\n\t}", `record max_size 8589934592: write a number from 1 to 4294967296`, ""},
		{"unknown record option", "record /tmp/c.har {\n\t\trotate daily\n\t}", `unknown record option "rotate"`, ""},
		{"too many workers", "source openai", `workers 1000000: write a number from 1 to 256`, "workers 1000000"},
		{"unknown global option", "source openai", `unknown chat_webhooks global option "outbx"`, "outbx memory"},
		{"bad breaker cooldown", "source openai", `breaker cooldown "soon": write a duration such as 30s`, "breaker {\n\t\t\tcooldown soon\n\t\t}"},
		{"rate limit without a period", "webhook http://127.0.0.1:1/h {\n\t\trate_limit 10\n\t}", `rate_limit "10": write <n>/<duration>`, ""},
		{"rate limit of zero", "webhook http://127.0.0.1:1/h {\n\t\trate_limit 0/1s\n\t}", `rate_limit "0/1s": write <n>/<duration>`, ""},
		{"bad disable_after", "webhook http://127.0.0.1:1/h {\n\t\tdisable_after never\n\t}", `disable_after "never": write a duration such as 120h`, ""},
		{"bad keep_delivered", "source openai", `keep_delivered <duration> [<messages> [<size>]]`, "keep_delivered forever"},
		{"keep_delivered too long", "source openai", `keep_delivered 100000h0m0s: write a duration up to`, "keep_delivered 100000h"},
		{"bad breaker ratio", "source openai", `breaker failure_ratio "70%": write a share between 0 and 1`, "breaker {\n\t\t\tfailure_ratio 70%\n\t\t}"},
		{"journal other than off", "source openai", "journal off is the only journal option", "journal 64MiB"},
		{"nats without servers", "source openai", "outbox nats <url...>, e.g. outbox nats nats://127.0.0.1:4222", "outbox nats"},
		{"nats server without scheme", "source openai", `NATS server "10.0.0.5:4222": write a URL such as nats://`, "outbox nats 10.0.0.5:4222"},
		{"nats stream with a dot", "source openai", `stream "chat.hooks": use letters, digits, - and _ only`, "outbox nats nats://127.0.0.1:4222 {\n\t\t\tstream chat.hooks\n\t\t}"},
		{"nats zero partitions", "source openai", `outbox nats partitions "0": write a positive number`, "outbox nats nats://127.0.0.1:4222 {\n\t\t\tpartitions 0\n\t\t}"},
		{"nats two kinds of auth", "source openai", "choose one of credentials, user/password and token", "outbox nats nats://127.0.0.1:4222 {\n\t\t\ttoken t\n\t\t\tcredentials /c.creds\n\t\t}"},
		{"nats failover too short", "source openai", "outbox nats failover 1s: at least 3s", "outbox nats nats://127.0.0.1:4222 {\n\t\t\tfailover 1s\n\t\t}"},
		{"nats client cert without key", "source openai", "client_cert <cert.pem> <key.pem>", "outbox nats nats://127.0.0.1:4222 {\n\t\t\ttls {\n\t\t\t\tclient_cert /c.pem\n\t\t\t}\n\t\t}"},
		{"unknown nats option", "source openai", `unknown outbox nats option "subject"`, "outbox nats nats://127.0.0.1:4222 {\n\t\t\tsubject x\n\t\t}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := ":8080 {\n\tchat_webhooks {\n\t" + tc.config + "\n\t}\n\treverse_proxy 127.0.0.1:9\n}\n"
			if tc.global != "" {
				src = "{\n\tchat_webhooks {\n\t\t" + tc.global + "\n\t}\n}\n" + src
			}
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "Caddyfile:") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

// The directive needs no order line and works inside route and handle.
func TestDirectiveIsOrderedBeforeReverseProxy(t *testing.T) {
	src := ":8080 {\n\treverse_proxy 127.0.0.1:9\n\tchat_webhooks {\n\t\tsource openai\n\t}\n\tencode gzip\n}\n"
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	enc, cw, rp := strings.Index(s, `"encode"`), strings.Index(s, `"chat_webhooks"`), strings.Index(s, `"reverse_proxy"`)
	if !(enc < cw && cw < rp) {
		t.Errorf("want encode < chat_webhooks < reverse_proxy, got %d %d %d in %s", enc, cw, rp, s)
	}
}

// The demo in the README must adapt, as `caddy adapt --config
// Caddyfile.example` does.
func TestExampleCaddyfileAdapts(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile.example"}); err != nil {
		t.Fatalf("Caddyfile.example: %v", err)
	}
}
