package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/har"
)

// credentialTurn is a chat turn sent with the credentials a recording must
// not keep.
func credentialTurn(t *testing.T, method, path, conv, content string) {
	t.Helper()
	var body io.Reader
	if content != "" {
		body = strings.NewReader(fmt.Sprintf(`{"model":"gpt-test","user":"cust-1","metadata":{"email":"ann@example.com","phone":"+15550001"},"messages":[{"role":"user","content":%q}]}`, content))
	}
	req, _ := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s?api_key=sk-query-secret", withModulePort, path), body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Conversation-Id", conv)
	req.Header.Set("Authorization", "Bearer sk-live-secret")
	req.Header.Set("Cookie", "session=cookie-secret")
	req.Header.Set("X-Api-Key", "header-key-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// readRecording parses a HAR file that may still be missing or growing.
func readRecording(file string) []har.Entry {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	entries, _ := har.Parse(data)
	return entries
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Traffic recorded through real Caddy and then tried with the same
// configuration prints exactly the payloads the receiver got.
func TestRecordThenTryPrintsTheEventsDelivered(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	dir := t.TempDir()
	recording := filepath.Join(dir, "traffic.har")
	cfg := chatConfig("", `source openai
		conversation_id request.header.X-Conversation-Id
		record `+recording+` {
			redact metadata.email
		}
		webhook `+sink.URL()+`/hook {
			name crm
			sign standard `+sinkSecret+`
		}
		webhook `+sink.URL()+`/audit {
			name audit
			redact metadata.phone
		}`, backend.URL)
	startChatCaddy(t, cfg)
	for _, conv := range []string{"conv-a", "conv-b"} {
		for i := range 2 {
			credentialTurn(t, http.MethodPost, "/v1/chat/completions", conv, turnLabel(conv, i))
		}
	}
	credentialTurn(t, http.MethodGet, "/v1/models", "", "")
	delivered := sink.waitDistinct(8, 10*time.Second)
	waitUntil(t, 10*time.Second, "five exchanges recorded", func() bool { return len(readRecording(recording)) == 5 })

	raw, _ := os.ReadFile(recording)
	for _, secret := range []string{"sk-live-secret", "cookie-secret", "header-key-secret", "sk-query-secret", "ann@example.com", "+15550001"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the recording keeps %q", secret)
		}
	}

	out, err := runChatWebhooks(t, "try", "--config", writeFile(t, dir, "Caddyfile", cfg), "--har", recording, "--json")
	if err != nil {
		t.Fatalf("try: %v\n%s", err, out)
	}
	var printed, got []string
	for _, p := range gjson.Get(out, `#.events.#.webhooks.#(webhook=="crm")#.payload|@flatten|@flatten`).Array() {
		var compact bytes.Buffer
		json.Compact(&compact, []byte(p.Raw))
		printed = append(printed, compact.String())
	}
	for _, d := range delivered {
		if d.path == "/hook" {
			got = append(got, string(d.body))
		}
	}
	slices.Sort(printed)
	slices.Sort(got)
	if !slices.Equal(printed, got) {
		t.Errorf("try printed:\n%s\nthe receiver got:\n%s", strings.Join(printed, "\n"), strings.Join(got, "\n"))
	}
	if skipped := gjson.Get(out, `#(entry==5).skipped`).String(); !strings.Contains(skipped, "GET /v1/models") {
		t.Errorf("the unwanted exchange is not listed as skipped: %q", skipped)
	}
}

// Validating or trying a configuration creates neither its outbox nor its
// record file: only a started configuration opens the one, and traffic the
// other.
func TestValidateAndTryCreateNoFile(t *testing.T) {
	dir := t.TempDir()
	outbox, recording := filepath.Join(dir, "outbox.db"), filepath.Join(dir, "traffic.har")
	cfg := strings.Replace(chatConfig(outbox, `source openai
		record `+recording, "127.0.0.1:9"), "admin "+testAdmin, "admin off", 1)
	if err := validate(t, cfg); err != nil {
		t.Fatal(err)
	}
	if out, err := runChatWebhooks(t, "try", "--config", writeFile(t, dir, "Caddyfile", cfg), "--har", writeFile(t, dir, "in.har", string(chromeOpenAI(t)))); err != nil {
		t.Fatalf("try: %v\n%s", err, out)
	}
	for _, file := range []string{outbox, recording} {
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("validate or try created %s: %v", file, err)
		}
	}
}

// rederive enqueues recorded traffic for real; posting the file again
// sends the same webhook ids, the ids try shows.
func TestRederiveEnqueuesWithIDsStablePerEntry(t *testing.T) {
	sink := newHookSink(t, nil)
	dir := t.TempDir()
	cfg := chatConfig("", `source openai
		webhook `+sink.URL()+`/hook {
			name crm
			sign standard `+sinkSecret+`
		}
		webhook `+sink.URL()+`/other {
			name other
		}`, "127.0.0.1:9")
	startChatCaddy(t, cfg)
	harFile := writeFile(t, dir, "openai.har", string(chromeOpenAI(t)))
	for range 2 {
		out, err := runChatWebhooks(t, "rederive", "--har", harFile, "--webhook", "crm", "--address", testAdmin)
		if err != nil {
			t.Fatalf("rederive: %v\n%s", err, out)
		}
		if gjson.Get(out, "entries").Int() != 3 || gjson.Get(out, "events").Int() != 2 || gjson.Get(out, "enqueued").Int() != 2 || gjson.Get(out, "skipped").Int() != 1 {
			t.Errorf("rederive answered:\n%s", out)
		}
	}
	waitUntil(t, 10*time.Second, "four deliveries", func() bool { _, all := sink.snapshot(); return len(all) == 4 })
	firsts, dups := sink.distinct()
	if len(firsts) != 2 || dups != 2 {
		t.Fatalf("%d distinct webhook ids and %d repeats, want 2 and 2", len(firsts), dups)
	}
	for _, d := range firsts {
		if d.path != "/hook" {
			t.Errorf("--webhook crm delivered to %s", d.path)
		}
	}
	out, err := runChatWebhooks(t, "try", "--config", writeFile(t, dir, "Caddyfile", cfg), "--har", harFile, "--json")
	if err != nil {
		t.Fatalf("try: %v\n%s", err, out)
	}
	var shown, sent []string
	for _, id := range gjson.Get(out, "#.events.#.id|@flatten").Array() {
		shown = append(shown, id.String())
	}
	for _, d := range firsts {
		sent = append(sent, d.id)
	}
	slices.Sort(shown)
	slices.Sort(sent)
	if !slices.Equal(shown, sent) {
		t.Errorf("try shows ids %v, rederive sent %v", shown, sent)
	}

	_, err = runChatWebhooks(t, "rederive", "--har", harFile, "--webhook", "nosuch", "--address", testAdmin)
	if err == nil || !strings.Contains(err.Error(), `HTTP 404: no webhook named "nosuch"`) {
		t.Errorf("unknown webhook: %v", err)
	}
	_, err = runChatWebhooks(t, "rederive", "--har", writeFile(t, dir, "page.html", "<html>"), "--address", testAdmin)
	if err == nil || !strings.Contains(err.Error(), "HTTP 400: not a HAR file") {
		t.Errorf("not a HAR file: %v", err)
	}
}
