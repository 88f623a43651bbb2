package har

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
)

func gzipped(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(s))
	zw.Close()
	return buf.Bytes()
}

// Entries in the shapes the exporters write: Chrome (HTTP/2 pseudo-headers,
// lower-case names, decoded text under content-encoding, base64 for what is
// not text, _error for failed requests), Firefox (postData.params beside
// the form's text, HTTP/1.1 names), mitmproxy (base64 content), and a hand
// written exchange.
func TestExchangeFromExporters(t *testing.T) {
	answer := `{"id":"chatcmpl-9","choices":[{"message":{"role":"assistant","content":"Hi!"}}]}`
	tests := []struct {
		name  string
		entry string
		check func(t *testing.T, ex *capture.Exchange)
	}{
		{
			name: "Chrome HTTP/2 with a decoded gzip answer",
			entry: `{"startedDateTime":"2025-11-15T03:35:14.179Z","time":812.5,
				"request":{"method":"POST","url":"https://api.openai.com/v1/chat/completions","httpVersion":"http/2.0",
					"headers":[{"name":":authority","value":"api.openai.com"},{"name":":method","value":"POST"},{"name":":path","value":"/v1/chat/completions"},{"name":":scheme","value":"https"},{"name":"content-type","value":"application/json"},{"name":"authorization","value":"Bearer sk-x"}],
					"queryString":[],"cookies":[],"headersSize":-1,"bodySize":40,
					"postData":{"mimeType":"application/json","text":"{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"}},
				"response":{"status":200,"statusText":"","httpVersion":"http/2.0",
					"headers":[{"name":"content-encoding","value":"gzip"},{"name":"content-type","value":"application/json"},{"name":"content-length","value":"97"}],
					"cookies":[],"content":{"size":84,"mimeType":"application/json","compression":-13,"text":` + quote(answer) + `},
					"redirectURL":"","headersSize":-1,"bodySize":97,"_transferSize":97,"_error":null},
				"cache":{},"timings":{"send":0.1,"wait":800,"receive":12.4},"_resourceType":"fetch"}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				want(t, "method", ex.Method, "POST")
				want(t, "host", ex.Host, "api.openai.com")
				want(t, "path", ex.Path, "/v1/chat/completions")
				want(t, "pseudo-header kept", ex.RequestHeader.Get(":authority"), "")
				want(t, "content-encoding of a decoded body", ex.ResponseHeader.Get("Content-Encoding"), "")
				want(t, "response", string(ex.ResponseBody), answer)
				want(t, "request", gjson.GetBytes(ex.RequestBody, "messages.0.content").String(), "Hi")
				want(t, "end", ex.End.Format(time.RFC3339Nano), "2025-11-15T03:35:14.9915Z")
			},
		},
		{
			name: "Chrome base64 content of an SSE stream",
			entry: `{"startedDateTime":"2025-11-15T03:35:14.179+08:00","time":20,
				"request":{"method":"POST","url":"https://chat.example/api/agents/a1/query","headers":[{"name":"content-type","value":"application/json"}],"postData":{"mimeType":"application/json","text":"{}"}},
				"response":{"status":200,"headers":[{"name":"content-type","value":"text/event-stream"}],
					"content":{"size":30,"mimeType":"text/event-stream","encoding":"base64","text":"` + base64.StdEncoding.EncodeToString([]byte("event: answer\ndata: Hi%20there\n\n")) + `"}}}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				want(t, "response", string(ex.ResponseBody), "event: answer\ndata: Hi%20there\n\n")
				want(t, "content type", ex.ResponseHeader.Get("Content-Type"), "text/event-stream")
			},
		},
		{
			name: "Chrome failed request",
			entry: `{"startedDateTime":"2025-11-15T03:35:14Z","time":3,"request":{"method":"GET","url":"https://chat.example/x","headers":[]},
				"response":{"status":0,"headers":[],"content":{"size":0,"mimeType":"x-unknown"},"_error":"net::ERR_ABORTED"}}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				want(t, "status", ex.Status, 0)
				want(t, "aborted", ex.Aborted, true)
			},
		},
		{
			name: "Firefox form post with params only",
			entry: `{"startedDateTime":"2025-11-15T03:35:14.179+01:00","time":5,
				"request":{"bodySize":52,"method":"POST","url":"https://mail.example/inbound?inbox=7","httpVersion":"HTTP/1.1",
					"headers":[{"name":"Host","value":"mail.example"},{"name":"Content-Type","value":"application/x-www-form-urlencoded"}],
					"cookies":[],"queryString":[{"name":"inbox","value":"7"}],"headersSize":300,
					"postData":{"mimeType":"application/x-www-form-urlencoded","params":[{"name":"from","value":"Ann <ann@example.com>"},{"name":"text","value":"Where is my order?\n"}]}},
				"response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","headers":[],"cookies":[],"content":{"mimeType":"text/plain","size":0,"text":""},"redirectURL":"","headersSize":100,"bodySize":0},
				"cache":{},"timings":{"blocked":0,"dns":0,"connect":0,"ssl":0,"send":0,"wait":5,"receive":0}}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				want(t, "query", ex.RawQuery, "inbox=7")
				want(t, "form", string(ex.RequestBody), "from=Ann+%3Cann%40example.com%3E&text=Where+is+my+order%3F%0A")
			},
		},
		{
			name: "Firefox multipart params rebuilt with the boundary",
			entry: `{"startedDateTime":"2025-11-15T03:35:14Z","time":1,
				"request":{"method":"POST","url":"https://mail.example/inbound","headers":[{"name":"Content-Type","value":"multipart/form-data; boundary=xYzZY"}],
					"postData":{"mimeType":"multipart/form-data; boundary=xYzZY","params":[{"name":"subject","value":"Order"},{"name":"envelope","value":"{\"to\":[\"help@example.com\"]}"}]}},
				"response":{"status":200,"headers":[],"content":{"size":0,"mimeType":""}}}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				body := string(ex.RequestBody)
				if !strings.Contains(body, "--xYzZY\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\nOrder\r\n") {
					t.Errorf("multipart body:\n%s", body)
				}
			},
		},
		{
			name: "mitmproxy base64 of a still gzipped body",
			entry: `{"startedDateTime":"2025-11-15T03:35:14.179000+00:00","time":12.0,
				"request":{"method":"POST","url":"http://localhost:3000/api/v1/accounts/1/conversations/7/messages","httpVersion":"HTTP/1.1",
					"cookies":[],"headers":[{"name":"content-type","value":"application/json"},{"name":"api_access_token","value":"tok"}],"queryString":[],"headersSize":200,"bodySize":20,
					"postData":{"mimeType":"application/json","text":"{\"content\":\"Hello\"}","params":[]}},
				"response":{"status":200,"statusText":"OK","httpVersion":"HTTP/1.1","cookies":[],
					"headers":[{"name":"content-encoding","value":"gzip"},{"name":"content-type","value":"application/json; charset=utf-8"}],
					"content":{"size":20,"compression":0,"mimeType":"application/json; charset=utf-8","text":"` + base64.StdEncoding.EncodeToString(gzipped(t, `{"id":1}`)) + `","encoding":"base64"},
					"redirectURL":"","headersSize":150,"bodySize":20},
				"cache":{},"timings":{"send":0,"receive":0,"wait":12,"connect":-1,"ssl":-1},"serverIPAddress":"127.0.0.1"}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				want(t, "content-encoding of a compressed body", ex.ResponseHeader.Get("Content-Encoding"), "gzip")
				want(t, "gzip magic", ex.ResponseBody[0], byte(0x1f))
			},
		},
		{
			name: "hand-written exchange",
			entry: `{"request":{"method":"post","url":"https://hooks.example/chatwoot","headers":{"Content-Type":"application/json"},"body":{"event":"message_created","id":1}},
				"response":{"status":200,"headers":{},"body":"ok"}}`,
			check: func(t *testing.T, ex *capture.Exchange) {
				want(t, "method", ex.Method, "POST")
				want(t, "request", string(ex.RequestBody), `{"event":"message_created","id":1}`)
				want(t, "response", string(ex.ResponseBody), "ok")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := Parse([]byte(tt.entry))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("%d entries", len(entries))
			}
			ex, err := entries[0].Exchange()
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ex)
		})
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func want[T comparable](t *testing.T, what string, got, expected T) {
	t.Helper()
	if got != expected {
		t.Errorf("%s = %v, want %v", what, got, expected)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not JSON":         `<html>`,
		"neither":          `{"foo":1}`,
		"entries not list": `{"log":{"entries":{}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(doc)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestExchangeRejects(t *testing.T) {
	for name, entry := range map[string]Entry{
		"no method":      {Request: Request{URL: "https://x/"}},
		"bad url":        {Request: Request{Method: "GET", URL: "http://[::1"}},
		"bad base64":     {Request: Request{Method: "GET", URL: "https://x/"}, Response: Response{Content: Content{Text: "!!", Encoding: "base64"}}},
		"other encoding": {Request: Request{Method: "GET", URL: "https://x/"}, Response: Response{Content: Content{Text: "x", Encoding: "uu"}}},
		"bad time":       {StartedDateTime: "yesterday", Request: Request{Method: "GET", URL: "https://x/"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := entry.Exchange(); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// An exchange written by FromExchange reads back as the same exchange, with
// compressed bodies stored decoded as browsers store them.
func TestFromExchangeRoundTrip(t *testing.T) {
	start := time.Date(2025, 11, 15, 3, 35, 14, 179_123_456, time.UTC)
	ex := &capture.Exchange{
		Method: "POST", Host: "api.example", Path: "/v1/chat/completions", RawQuery: "a=1&b=x%20y",
		RequestHeader:  http.Header{"Content-Type": {"application/json"}},
		RequestBody:    []byte(`{"messages":[]}`),
		Status:         200,
		ResponseHeader: http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}},
		ResponseBody:   gzipped(t, `{"id":"c1"}`),
		Start:          start, End: start.Add(812_345_678 * time.Nanosecond),
		ResponseTruncated: true,
	}
	e := FromExchange(ex)
	want(t, "stored text", e.Response.Content.Text, `{"id":"c1"}`)
	data, err := json.Marshal(Document{Log: Log{Entries: []Entry{e}}})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	back, err := entries[0].Exchange()
	if err != nil {
		t.Fatal(err)
	}
	want(t, "host", back.Host, ex.Host)
	want(t, "query", back.RawQuery, ex.RawQuery)
	want(t, "request", string(back.RequestBody), string(ex.RequestBody))
	want(t, "response", string(back.ResponseBody), `{"id":"c1"}`)
	want(t, "content-encoding", back.ResponseHeader.Get("Content-Encoding"), "")
	want(t, "truncated", back.ResponseTruncated, true)
	want(t, "start", back.Start.Equal(ex.Start), true)
	want(t, "end", back.End.Equal(ex.End), true)
}

func TestRedact(t *testing.T) {
	e := Entry{
		Request: Request{
			Method: "POST", URL: "https://api.example/v1?key=AIza&inbox=7",
			Headers:     []NameValue{{"Authorization", "Bearer sk"}, {"Cookie", "s=1"}, {"x-api-key", "k"}, {"api_access_token", "t"}, {"Content-Type", "application/json"}},
			QueryString: []NameValue{{"key", "AIza"}, {"inbox", "7"}},
			Cookies:     []NameValue{{"s", "1"}},
			PostData:    &PostData{Text: `{"contact":{"email":"ann@example.com","name":"Ann"}}`},
		},
		Response: Response{
			Headers: []NameValue{{"Set-Cookie", "s=2"}},
			Content: Content{Text: `{"userEmail":"ann@example.com"}`},
		},
	}
	e.Redact([]string{"contact.email", "userEmail"})
	got, _ := json.Marshal(e)
	for _, secret := range []string{"Bearer sk", "s=1", `"k"`, `"t"`, "AIza", "ann@example.com", "s=2"} {
		if bytes.Contains(got, []byte(secret)) {
			t.Errorf("%s not masked in %s", secret, got)
		}
	}
	for _, kept := range []string{"application/json", "Ann", "inbox=7"} {
		if !bytes.Contains(got, []byte(kept)) {
			t.Errorf("%s masked in %s", kept, got)
		}
	}
}

func TestAppenderRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.har")
	entry := func(i int) Entry {
		return Entry{StartedDateTime: "2025-11-15T03:35:14Z", Request: Request{Method: "POST", URL: "https://x/" + strings.Repeat("a", i)}}
	}
	one, _ := json.Marshal(entry(0))
	maxSize := int64(len(fileHead)+len(fileTrailer)) + 3*int64(len(one)+10)
	a, err := OpenAppender(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if err := a.Append(entry(i), maxSize, 2); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	// 7 entries, 3 per file: path.2 has 0-2, path.1 has 3-5, path has 6.
	for file, wantURLs := range map[string][]int{path + ".2": {0, 1, 2}, path + ".1": {3, 4, 5}, path: {6}} {
		entries := readEntries(t, file)
		if len(entries) != len(wantURLs) {
			t.Fatalf("%s: %d entries, want %d", file, len(entries), len(wantURLs))
		}
		for i, n := range wantURLs {
			want(t, file+" entry", entries[i].Request.URL, entry(n).Request.URL)
		}
	}
	// Reopened, it appends after what is there.
	a, err = OpenAppender(path)
	if err != nil {
		t.Fatal(err)
	}
	a.Append(entry(7), maxSize, 2)
	a.Close()
	want(t, "entries after reopening", len(readEntries(t, path)), 2)
}

// A file cut in mid-write is set aside, and a new one started.
func TestAppenderSetsAsideBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.har")
	os.WriteFile(path, append(append([]byte{}, fileHead...), `{"startedDate`...), 0o600)
	a, err := OpenAppender(path)
	if err != nil {
		t.Fatal(err)
	}
	a.Append(Entry{Request: Request{Method: "GET", URL: "https://x/"}}, 1<<20, 1)
	a.Close()
	want(t, "entries", len(readEntries(t, path)), 1)
	broken, _ := os.ReadFile(path + ".1")
	want(t, "set aside", strings.HasSuffix(string(broken), `{"startedDate`), true)
}

func readEntries(t *testing.T, file string) []Entry {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return entries
}
