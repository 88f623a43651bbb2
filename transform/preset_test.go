package transform

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture reads a file under testdata/presets.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "presets", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// traffic describes one exchange in terms of fixture files.
type traffic struct {
	method, target string // target is path?query
	reqType        string // request media type; default application/json
	reqHeader      http.Header
	req            string // fixture file, or inline body when it starts with '{'
	status         int
	respType       string // default application/json, text/event-stream for .sse
	resp           string
	cut            string // cut the response body before this text
}

func (tr traffic) exchange(t testing.TB) *Exchange {
	t.Helper()
	u, err := url.Parse(tr.target)
	if err != nil {
		t.Fatal(err)
	}
	body := func(s string) []byte {
		if s == "" || strings.HasPrefix(s, "{") {
			return []byte(s)
		}
		return fixture(t, s)
	}
	ex := &Exchange{Method: tr.method, Path: u.Path, RawQuery: u.RawQuery, Status: tr.status,
		RequestHeader: http.Header{}, ResponseHeader: http.Header{}, RequestBody: body(tr.req), ResponseBody: body(tr.resp)}
	for k, v := range tr.reqHeader {
		ex.RequestHeader[k] = v
	}
	ex.RequestHeader.Set("Content-Type", "application/json")
	if tr.reqType != "" {
		ex.RequestHeader.Set("Content-Type", tr.reqType)
	}
	switch {
	case tr.respType != "":
		ex.ResponseHeader.Set("Content-Type", tr.respType)
	case strings.HasSuffix(tr.resp, ".sse"):
		ex.ResponseHeader.Set("Content-Type", "text/event-stream")
	case tr.resp != "":
		ex.ResponseHeader.Set("Content-Type", "application/json; charset=utf-8")
	}
	if tr.cut != "" {
		i := bytes.Index(ex.ResponseBody, []byte(tr.cut))
		if i < 0 {
			t.Fatalf("cut %q not in %s", tr.cut, tr.resp)
		}
		ex.ResponseBody = ex.ResponseBody[:i]
	}
	return ex
}

// want is one expected event: its type and its whole data document.
type want struct {
	typ, data string
}

// allPresetsDeriver enables every preset at once, so each case also proves
// that no other preset claims its traffic.
func allPresetsDeriver(t testing.TB, state StateStore) *Deriver {
	t.Helper()
	d, err := NewDeriver(DeriverConfig{Presets: PresetNames(), State: state})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkEvents compares events with the expected ones, data as JSON values.
func checkEvents(t *testing.T, got []Event, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, ev := range got {
			t.Logf("got %s %s", ev.Type, ev.Data)
		}
		t.Fatalf("got %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		ev := got[i]
		var g, e any
		if err := json.Unmarshal(ev.Data, &g); err != nil {
			t.Fatalf("event %d data is not JSON: %v: %s", i, err, ev.Data)
		}
		if err := json.Unmarshal([]byte(w.data), &e); err != nil {
			t.Fatalf("bad expectation %d: %v", i, err)
		}
		if ev.Type != w.typ || !reflect.DeepEqual(g, e) {
			t.Errorf("event %d\n got %s %s\nwant %s %s", i, ev.Type, ev.Data, w.typ, w.data)
		}
	}
}

// presetCase is one entry of testdata/presets/cases.json: an exchange and
// the exact events it must yield. The same file drives the Caddy-level test
// of the presets in caddymodule, so both read one specification.
type presetCase struct {
	Name          string            `json:"name"`
	Method        string            `json:"method"`
	Target        string            `json:"target"` // path?query
	RequestType   string            `json:"request_type,omitempty"`
	RequestHeader map[string]string `json:"request_header,omitempty"`
	Request       string            `json:"request,omitempty"` // fixture file, or inline body when it starts with '{'
	Status        int               `json:"status,omitempty"`
	ResponseType  string            `json:"response_type,omitempty"`
	Response      string            `json:"response,omitempty"`
	Cut           string            `json:"cut,omitempty"` // cut the response body before this text
	Events        []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"events"`
	Problems []string `json:"problems,omitempty"`
}

func (c presetCase) traffic() traffic {
	tr := traffic{method: c.Method, target: c.Target, reqType: c.RequestType, req: c.Request,
		status: c.Status, respType: c.ResponseType, resp: c.Response, cut: c.Cut}
	if len(c.RequestHeader) > 0 {
		tr.reqHeader = http.Header{}
		for k, v := range c.RequestHeader {
			tr.reqHeader.Set(k, v)
		}
	}
	return tr
}

func (c presetCase) wants() []want {
	var out []want
	for _, e := range c.Events {
		out = append(out, want{e.Type, string(e.Data)})
	}
	return out
}

func TestPresetsDeriveCanonicalEvents(t *testing.T) {
	var cases []presetCase
	if err := json.Unmarshal(fixture(t, "cases.json"), &cases); err != nil {
		t.Fatalf("testdata/presets/cases.json: %v", err)
	}
	d := allPresetsDeriver(t, nil)
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			out := d.Derive(tc.traffic().exchange(t))
			checkEvents(t, out.Events, tc.wants())
			if strings.Join(out.Problems, ",") != strings.Join(tc.Problems, ",") {
				t.Errorf("problems %v, want %v", out.Problems, tc.Problems)
			}
		})
	}
}
