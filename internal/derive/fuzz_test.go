package derive

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/tidwall/gjson"
)

// Fuzz targets for every decoder of untrusted traffic. Bad traffic must
// never panic and must never yield an invalid JSON document. Run one with
// e.g. go test -run='^$' -fuzz=FuzzDerivePresets -fuzztime=45s ./internal/derive/

// seedFiles reads every fixture under testdata/presets matching pattern.
func seedFiles(f *testing.F, pattern string) [][]byte {
	names, err := filepath.Glob(filepath.Join("testdata", "presets", pattern))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seeds for %s: %v", pattern, err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzEachSSE(f *testing.F) {
	f.Add([]byte(chatStream))
	for _, s := range seedFiles(f, "*/*.sse") {
		f.Add(s)
	}
	f.Add([]byte("data: a\r\ndata: b\r\n\r\nevent:x\ndata\n\n: c\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		eachSSE(body, func(event, data []byte) {
			if bytes.ContainsAny(event, "\r\n") {
				t.Fatalf("event name %q spans lines", event)
			}
		})
	})
}

func FuzzStreamDecoders(f *testing.F) {
	names := make([]string, 0, len(streamDecoders))
	for n := range streamDecoders {
		names = append(names, n)
	}
	sort.Strings(names)
	f.Add(uint8(0), []byte(chatStream))
	for _, s := range seedFiles(f, "*/*.sse") {
		for i := range names {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		name := names[int(which)%len(names)]
		doc, _ := streamDecoders[name](body)
		if doc != nil && !gjson.ValidBytes(doc) {
			t.Fatalf("%s decoded to invalid JSON: %q", name, doc)
		}
	})
}

func FuzzFormJSON(f *testing.F) {
	for _, s := range seedFiles(f, "email/*.form") {
		f.Add(false, s)
	}
	for _, s := range seedFiles(f, "email/*.multipart") {
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, multipart bool, body []byte) {
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		if multipart {
			h.Set("Content-Type", "multipart/form-data; boundary=xYzZY")
		}
		doc, _ := formJSON(body, h, false, 1<<16)
		if !gjson.ValidBytes(doc) || !gjson.ParseBytes(doc).IsObject() {
			t.Fatalf("form decoded to %q", doc)
		}
	})
}

// fuzzRoutes are requests every preset answers to: method, path, request
// media type.
var fuzzRoutes = []struct{ method, path, ctype string }{
	{"POST", "/v1/chat/completions", "application/json"},
	{"POST", "/v1/responses", "application/json"},
	{"POST", "/agents/a1/query", "application/json"},
	{"POST", "/api/v1/accounts/1/conversations", "application/json"},
	{"PATCH", "/api/v1/accounts/1/conversations/150", "application/json"},
	{"POST", "/api/v1/accounts/1/conversations/150/messages", "application/json"},
	{"POST", "/api/v1/accounts/1/conversations/150/toggle_status", "application/json"},
	{"POST", "/api/v1/accounts/1/conversations/150/assignments", "application/json"},
	{"POST", "/api/v1/accounts/1/contacts", "application/json"},
	{"POST", "/public/api/v1/inboxes/i/contacts/c/conversations/151/messages", "application/json"},
	{"POST", "/api/v1/widget/messages", "application/json"},
	{"POST", "/api/v1/widget/events", "application/json"},
	{"POST", "/webhook", "application/json"},
	{"POST", "/webhook", "application/x-www-form-urlencoded"},
	{"POST", "/webhook", "multipart/form-data; boundary=xYzZY"},
}

func FuzzDerivePresets(f *testing.F) {
	d := allPresetsDeriver(f, convstate.NewMemory(64, 0))
	for _, s := range seedFiles(f, "*/*.json") {
		for i := range fuzzRoutes {
			f.Add(uint8(i), s, []byte(`{}`), false)
		}
	}
	for _, s := range seedFiles(f, "*/*.sse") {
		f.Add(uint8(0), []byte(chatRequest), s, true)
		f.Add(uint8(2), []byte(`{"query":"q"}`), s, true)
	}
	f.Add(uint8(13), seedFiles(f, "email/*.form")[0], []byte(nil), false)
	f.Add(uint8(14), seedFiles(f, "email/*.multipart")[0], []byte(nil), false)
	f.Fuzz(func(t *testing.T, route uint8, req, resp []byte, sse bool) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		respType := "application/json"
		if sse {
			respType = "text/event-stream"
		}
		out := d.Derive(&capture.Exchange{Method: r.method, Path: r.path, Status: 200,
			RequestHeader: http.Header{"Content-Type": {r.ctype}}, RequestBody: req,
			ResponseHeader: http.Header{"Content-Type": {respType}}, ResponseBody: resp})
		for _, ev := range out.Events {
			if !event.IsType(ev.Type) || !gjson.ValidBytes(ev.Data) {
				t.Fatalf("bad event %s %q", ev.Type, ev.Data)
			}
		}
	})
}
