package caddymodule

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// tryCaddyfile has one chat_webhooks handler per platform, each with signed
// webhooks, so that try's output shows payloads and signatures.
const tryCaddyfile = `{
	admin off
	chat_webhooks {
		outbox memory
	}
}
http://api.example.com:19390 {
	chat_webhooks {
		source openai
		agent_id support-bot
		webhook http://127.0.0.1:9/openai {
			name openai-events
			sign standard whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI
		}
	}
	reverse_proxy 127.0.0.1:9
}
http://mail.example.com:19390 {
	chat_webhooks {
		source email
		webhook http://127.0.0.1:9/mail {
			name mail-events
		}
	}
	reverse_proxy 127.0.0.1:9
}
http://desk.example.com:19390 {
	chat_webhooks {
		source chatwoot
		webhook http://127.0.0.1:9/crm {
			name crm
			schema chatwoot
			sign chatwoot s3cr3t-chatwoot-key
			header X-Api-Key crm-key-123
		}
		webhook http://127.0.0.1:9/standard {
			name standard-events
			sign standard whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI
		}
	}
	reverse_proxy 127.0.0.1:9
}
`

// exporter is how one program writes HAR: the shapes its entries take.
type exporter struct {
	creator     string
	httpVersion string
	// http2 adds the pseudo-headers Chrome lists for HTTP/2 requests and
	// writes header names in lower case.
	http2 bool
	// base64Binary writes bodies that are not UTF-8 text as base64;
	// base64Always every response body (as Chrome does for event streams
	// it was not watching, and mitmproxy for compressed ones).
	base64Always bool
	// formParams writes a form's fields as postData.params with no text,
	// as exporters do for forms whose raw text they left out.
	formParams bool
	extra      map[string]any // fields the program adds to each entry
}

var (
	chrome = exporter{creator: "WebInspector", httpVersion: "http/2.0", http2: true,
		extra: map[string]any{"_resourceType": "fetch", "_priority": "High", "_initiator": map[string]any{"type": "script"}}}
	firefox = exporter{creator: "Firefox", httpVersion: "HTTP/1.1", formParams: true,
		extra: map[string]any{"pageref": "page_1"}}
	mitmproxy = exporter{creator: "mitmproxy", httpVersion: "HTTP/1.1", base64Always: true,
		extra: map[string]any{"serverIPAddress": "10.0.0.7"}}
)

// traffic is one exchange to write in an exporter's shape. respBody is
// what the exporter stores: decoded text for browsers even when the
// response was compressed on the wire.
type traffic struct {
	at               time.Time
	ms               float64
	method, url      string
	reqType, reqBody string
	form             [][2]string
	status           int
	respHeader       [][2]string
	respType         string
	respBody         []byte
}

func (x exporter) har(t *testing.T, exchanges ...traffic) []byte {
	t.Helper()
	name := func(n string) string {
		if x.http2 {
			return strings.ToLower(n)
		}
		return n
	}
	nv := func(pairs ...[2]string) []map[string]string {
		out := []map[string]string{}
		for _, p := range pairs {
			out = append(out, map[string]string{"name": name(p[0]), "value": p[1]})
		}
		return out
	}
	var entries []map[string]any
	for _, tr := range exchanges {
		u, err := url.Parse(tr.url)
		if err != nil {
			t.Fatal(err)
		}
		reqHeaders := [][2]string{{"Accept", "application/json"}, {"User-Agent", "Mozilla/5.0"}}
		if x.http2 {
			reqHeaders = append([][2]string{{":authority", u.Host}, {":method", tr.method}, {":path", u.RequestURI()}, {":scheme", u.Scheme}}, reqHeaders...)
		} else {
			reqHeaders = append([][2]string{{"Host", u.Host}}, reqHeaders...)
		}
		query := [][2]string{}
		for k, vs := range u.Query() {
			for _, v := range vs {
				query = append(query, [2]string{k, v})
			}
		}
		req := map[string]any{"method": tr.method, "url": tr.url, "httpVersion": x.httpVersion, "cookies": []any{},
			"queryString": nv(query...), "headersSize": -1, "bodySize": len(tr.reqBody)}
		if tr.reqType != "" {
			reqHeaders = append(reqHeaders, [2]string{"Content-Type", tr.reqType})
			post := map[string]any{"mimeType": tr.reqType, "text": tr.reqBody}
			if tr.form != nil && x.formParams {
				var params []map[string]string
				for _, f := range tr.form {
					params = append(params, map[string]string{"name": f[0], "value": f[1]})
				}
				post["params"], post["text"] = params, ""
			}
			req["postData"] = post
		}
		req["headers"] = nv(reqHeaders...)
		content := map[string]any{"size": len(tr.respBody), "mimeType": tr.respType}
		if x.base64Always || !utf8.Valid(tr.respBody) {
			content["text"], content["encoding"] = base64.StdEncoding.EncodeToString(tr.respBody), "base64"
		} else {
			content["text"] = string(tr.respBody)
		}
		respHeaders := append([][2]string{{"Content-Type", tr.respType}}, tr.respHeader...)
		entry := map[string]any{
			"startedDateTime": tr.at.Format(time.RFC3339Nano), "time": tr.ms,
			"request": req,
			"response": map[string]any{"status": tr.status, "statusText": "", "httpVersion": x.httpVersion, "cookies": []any{},
				"headers": nv(respHeaders...), "content": content, "redirectURL": "", "headersSize": -1, "bodySize": -1},
			"cache": map[string]any{}, "timings": map[string]any{"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": tr.ms, "receive": 0, "ssl": -1},
		}
		for k, v := range x.extra {
			entry[k] = v
		}
		entries = append(entries, entry)
	}
	doc, err := json.MarshalIndent(map[string]any{"log": map[string]any{
		"version": "1.2", "creator": map[string]string{"name": x.creator, "version": "1.0"},
		"pages": []any{}, "entries": entries}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func gzipBytes(s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(s))
	zw.Close()
	return buf.Bytes()
}

var tryStart = time.Date(2025, 11, 15, 3, 35, 14, 179_000_000, time.UTC)

// at is the start of the i-th exchange of a test's traffic.
func at(i int) time.Time { return tryStart.Add(time.Duration(i) * time.Minute) }

// chromeOpenAI is a devtools export of an OpenAI-compatible chat: a
// gzipped answer (stored decoded, header kept), a stream with the quirks of
// real chunks, and a request no rule wants.
func chromeOpenAI(t *testing.T) []byte {
	stream := "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"finish_reason\":null}],\"obfuscation\":\"x1\"}\n\n" +
		"data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"It ships \"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tomorrow.\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n" +
		"data: [DONE]\n\n"
	return chrome.har(t,
		traffic{at: at(0), ms: 812.5, method: "POST", url: "https://api.example.com/v1/chat/completions",
			reqType: "application/json", reqBody: `{"model":"gpt-4o-mini","user":"cust-42","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Where is "},{"type":"text","text":"my order?"}]}]}`,
			status: 200, respType: "application/json", respHeader: [][2]string{{"Content-Encoding", "gzip"}},
			respBody: []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1763177714,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"It ships tomorrow.","refusal":null},"finish_reason":"stop"}]}`)},
		traffic{at: at(1), ms: 1500, method: "POST", url: "https://api.example.com/v1/chat/completions",
			reqType: "application/json", reqBody: `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"user":"cust-42","messages":[{"role":"user","content":"When?"}]}`,
			status: 200, respType: "text/event-stream", respBody: []byte(stream)},
		traffic{at: at(2), ms: 40, method: "GET", url: "https://api.example.com/v1/models", status: 200, respType: "application/json", respBody: []byte(`{"data":[]}`)},
	)
}

// firefoxMail is a Firefox export of a Mailgun inbound e-mail form post.
func firefoxMail(t *testing.T) []byte {
	form := [][2]string{{"sender", "ann@example.com"}, {"from", "Ann Lee <ann@example.com>"}, {"recipient", "help@shop.example.com"},
		{"subject", "Order 1042"}, {"body-plain", "Where is my order?\n\n> On Monday you wrote:\n> Thanks"}, {"stripped-text", "Where is my order?"},
		{"Message-Id", "<CAF=1042@mail.example.com>"}}
	return firefox.har(t,
		traffic{at: at(0), ms: 35, method: "POST", url: "https://mail.example.com/inbound/mailgun?tenant=shop",
			reqType: "application/x-www-form-urlencoded", form: form, status: 200, respType: "text/plain", respBody: []byte("OK")},
		traffic{at: at(1), ms: 12, method: "POST", url: "https://mail.example.com/inbound/mailgun",
			reqType: "application/json", reqBody: `{"ping":true}`, status: 200, respType: "text/plain", respBody: []byte("OK")},
	)
}

// mitmproxyChatwoot is a mitmproxy capture of an agent's Chatwoot session:
// the conversation is created, answered (the answer still gzipped, as
// mitmproxy stores what it could not decode), made urgent (200 with an
// empty body: the new value is only in the request) and resolved. The
// later events know the conversation from the earlier ones.
func mitmproxyChatwoot(t *testing.T) []byte {
	base := "https://desk.example.com/api/v1/accounts/1/conversations"
	conv := `{"id":7,"account_id":1,"inbox_id":2,"status":"open","priority":"low","labels":[],"custom_attributes":{},"unread_count":0,"can_reply":true,"snoozed_until":null,"waiting_since":1763177700,"first_reply_created_at":null,"agent_last_seen_at":0,"contact_last_seen_at":0,"last_activity_at":1763177714,"timestamp":1763177714,"created_at":1763177714,"updated_at":1763177714.179,"additional_attributes":{},"meta":{"sender":{"id":31,"name":"Ann Lee","email":"ann@example.com","phone_number":"+15550001","type":"contact"},"assignee":null,"assignee_type":null,"team":null,"hmac_verified":false},"messages":[]}`
	message := `{"id":501,"content":"It ships tomorrow.","inbox_id":2,"conversation_id":7,"message_type":1,"content_type":"text","status":"sent","content_attributes":{},"created_at":1763177774,"private":false,"source_id":null,"sender":{"id":3,"name":"Sam Agent","email":"sam@shop.example.com","type":"user"}}`
	return mitmproxy.har(t,
		traffic{at: at(0), ms: 95, method: "POST", url: base, reqType: "application/json",
			reqBody: `{"inbox_id":2,"contact_id":31,"source_id":"src-31","status":"open","priority":"low"}`,
			status:  200, respType: "application/json; charset=utf-8", respBody: []byte(conv)},
		traffic{at: at(1), ms: 60, method: "POST", url: base + "/7/messages", reqType: "application/json",
			reqBody: `{"content":"It ships tomorrow.","message_type":"outgoing","private":false}`,
			status:  200, respType: "application/json; charset=utf-8", respHeader: [][2]string{{"Content-Encoding", "gzip"}}, respBody: gzipBytes(message)},
		traffic{at: at(2), ms: 30, method: "POST", url: base + "/7/toggle_priority", reqType: "application/json",
			reqBody: `{"priority":"urgent"}`, status: 200, respType: "text/html", respBody: nil},
		traffic{at: at(3), ms: 41, method: "POST", url: base + "/7/toggle_status", reqType: "application/json",
			reqBody: `{"status":"resolved"}`, status: 200, respType: "application/json; charset=utf-8",
			respBody: []byte(`{"meta":{},"payload":{"success":true,"current_status":"resolved","conversation_id":7}}`)},
	)
}

// runTry writes the configuration and HAR file and runs `caddy chat-webhooks
// try` on them.
func runTryCommand(t *testing.T, har []byte, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cfgFile, harFile := filepath.Join(dir, "Caddyfile"), filepath.Join(dir, "traffic.har")
	if err := os.WriteFile(cfgFile, []byte(tryCaddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(harFile, har, 0o600); err != nil {
		t.Fatal(err)
	}
	return runChatWebhooks(t, append([]string{"try", "--config", cfgFile, "--har", harFile}, args...)...)
}

// assertGolden compares got with testdata/try/<name>; -update rewrites it.
func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", "try", name)
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update after checking):\n%s", golden, got)
	}
}

func TestTryPrintsEventsAndSignedPayloads(t *testing.T) {
	tests := []struct {
		name   string
		har    func(*testing.T) []byte
		args   []string
		golden string
	}{
		{"Chrome export of an OpenAI chat", chromeOpenAI, []string{"--site", "api.example.com"}, "chrome_openai.txt"},
		{"Firefox export of an e-mail form post", firefoxMail, []string{"--site", "mail-events"}, "firefox_mail.txt"},
		{"mitmproxy capture of a Chatwoot conversation", mitmproxyChatwoot, []string{"--site", "desk.example.com"}, "mitmproxy_chatwoot.txt"},
		{"mitmproxy capture of a Chatwoot conversation as JSON", mitmproxyChatwoot, []string{"--site", "crm", "--json"}, "mitmproxy_chatwoot.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runTryCommand(t, tt.har(t), tt.args...)
			if err != nil {
				t.Fatalf("try: %v\n%s", err, out)
			}
			assertGolden(t, tt.golden, out)
			for _, secret := range []string{"crm-key-123", "s3cr3t-chatwoot-key", "c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI"} {
				if strings.Contains(out, secret) {
					t.Errorf("try printed the secret %q", secret)
				}
			}
		})
	}
}

// The Chatwoot session's events carry what earlier entries said about the
// conversation, and say what changed.
func TestTryCarriesConversationStateAcrossEntries(t *testing.T) {
	out, err := runTryCommand(t, mitmproxyChatwoot(t), "--site", "desk.example.com", "--json")
	if err != nil {
		t.Fatalf("try: %v\n%s", err, out)
	}
	urgent := gjson.Get(out, `#(entry==3).events.0.data`)
	if urgent.Get("conversation.priority").String() != "urgent" || urgent.Get("conversation.status").String() != "open" {
		t.Errorf("the priority change forgot the conversation's status: %s", urgent.Raw)
	}
	if urgent.Get("conversation.changed.0.priority.previous_value").String() != "low" {
		t.Errorf("the priority change does not say what changed: %s", urgent.Raw)
	}
	resolved := gjson.Get(out, `#(entry==4).events.#(type=="conversation.status_changed").data`)
	if resolved.Get("conversation.status").String() != "resolved" || resolved.Get("conversation.priority").String() != "urgent" {
		t.Errorf("resolving forgot the priority set before: %s", resolved.Raw)
	}
}

func TestTryFailsOnBadConfigurationAndUnreadableEntries(t *testing.T) {
	t.Run("unreadable entry", func(t *testing.T) {
		broken := []byte(`{"log":{"entries":[
			{"request":{"method":"POST","url":"https://desk.example.com/api/v1/accounts/1/conversations/7/toggle_priority","headers":[{"name":"Content-Type","value":"application/json"}],"postData":{"mimeType":"application/json","text":"{\"priority\":\"low\"}"}},"response":{"status":200,"headers":[],"content":{"size":0,"mimeType":""}}},
			{"request":{"method":"GET","url":"https://desk.example.com/x"},"response":{"status":200,"content":{"text":"%%%","encoding":"base64"}}}]}}`)
		out, err := runTryCommand(t, broken, "--site", "desk.example.com")
		if err == nil || !strings.Contains(err.Error(), "1 of 2 entries") {
			t.Errorf("error = %v", err)
		}
		if !strings.Contains(out, "entry 2: GET https://desk.example.com/x → 200\n  unreadable: response content: illegal base64") ||
			!strings.Contains(out, "event conversation.updated") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("no handler of that name", func(t *testing.T) {
		_, err := runTryCommand(t, chromeOpenAI(t), "--site", "nowhere.example.com")
		if err == nil || !strings.Contains(err.Error(), "desk.example.com (webhooks: crm, standard-events)") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("ambiguous without --site", func(t *testing.T) {
		_, err := runTryCommand(t, chromeOpenAI(t))
		if err == nil || !strings.Contains(err.Error(), "3 chat_webhooks handlers") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("configuration error", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "caddy.json")
		os.WriteFile(cfg, []byte(`{"apps":{"http":{"servers":{"a":{"listen":[":19390"],"routes":[{"handle":[{"handler":"chat_webhooks","sources":["nosuch"]}]}]}}}}}`), 0o600)
		harFile := filepath.Join(dir, "t.har")
		os.WriteFile(harFile, chromeOpenAI(t), 0o600)
		_, err := runChatWebhooks(t, "try", "--config", cfg, "--har", harFile)
		if err == nil || !strings.Contains(err.Error(), `unknown source "nosuch"`) {
			t.Errorf("error = %v", err)
		}
	})
}

// One exchange written by hand is enough to try a rule.
func TestTryReadsOneExchangeFromStandardInput(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfgFile, []byte(tryCaddyfile), 0o600)
	reg := `{"time":"2025-11-15T03:35:14.179Z","request":{"method":"POST","url":"https://desk.example.com/api/v1/accounts/1/conversations/7/toggle_priority","headers":{"Content-Type":"application/json"},"body":{"priority":"high"}},"response":{"status":200,"headers":{},"body":""}}`
	out, err := runChatWebhooksWithInput(t, reg, "try", "--config", cfgFile, "--har", "-", "--site", "crm", "--json")
	if err != nil {
		t.Fatalf("try: %v\n%s", err, out)
	}
	if got := gjson.Get(out, "0.events.0.data.conversation.priority").String(); got != "high" {
		t.Errorf("priority %q in:\n%s", got, out)
	}
}
