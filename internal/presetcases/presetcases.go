// Package presetcases reads internal/derive/testdata/presets/cases.json, the
// specification of what the built-in sources derive from real traffic, for
// both tests that run it: derive's, on exchanges built in memory, and the
// Caddy module's, through a real Caddy.
package presetcases

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Dir is the folder of cases.json and of the fixture files it names.
var Dir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "derive", "testdata", "presets")
}()

// Case is one entry of cases.json: one exchange, or Steps, exchanges sent
// in order with conversation state, each with the events it must yield.
type Case struct {
	Name string `json:"name"`
	Exchange
	Steps []Exchange `json:"steps,omitempty"`
}

// Exchange is one request, the backend's answer to it and the exact
// canonical events (type and whole data) it yields, in order.
type Exchange struct {
	Method        string            `json:"method"`
	Target        string            `json:"target"` // path?query
	RequestType   string            `json:"request_type,omitempty"`
	RequestHeader map[string]string `json:"request_header,omitempty"`
	// Request and Response are a fixture file under Dir, or an inline
	// body when they start with '{' or are JSON.
	Request string `json:"request,omitempty"`
	// Status 0 means the backend is down: no response at all.
	Status       int    `json:"status,omitempty"`
	ResponseType string `json:"response_type,omitempty"`
	Response     string `json:"response,omitempty"`
	// Cut ends the response body before this text, as a stream that broke.
	Cut      string   `json:"cut,omitempty"`
	Events   []Event  `json:"events"`
	Problems []string `json:"problems,omitempty"`
}

// Event is one expected canonical event.
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Load reads every case.
func Load(t testing.TB) []Case {
	t.Helper()
	var cases []Case
	dec := json.NewDecoder(bytes.NewReader(read(t, "cases.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cases); err != nil {
		t.Fatalf("cases.json: %v", err)
	}
	return cases
}

// Exchanges returns the case's exchanges in the order they are sent.
func (c Case) Exchanges() []Exchange {
	if len(c.Steps) > 0 {
		return c.Steps
	}
	return []Exchange{c.Exchange}
}

// Stateful reports whether the case's exchanges share conversation state.
func (c Case) Stateful() bool { return len(c.Steps) > 0 }

// RequestBody returns the request body.
func (x Exchange) RequestBody(t testing.TB) []byte { return body(t, x.Request) }

// RequestContentType is the request's Content-Type: JSON unless said.
func (x Exchange) RequestContentType() string {
	if x.RequestType != "" {
		return x.RequestType
	}
	return "application/json"
}

// ResponseBody returns the backend's answer, cut where the case says.
func (x Exchange) ResponseBody(t testing.TB) []byte {
	t.Helper()
	b := body(t, x.Response)
	if x.Cut != "" {
		i := bytes.Index(b, []byte(x.Cut))
		if i < 0 {
			t.Fatalf("cut %q is not in %s", x.Cut, x.Response)
		}
		b = b[:i]
	}
	return b
}

// ResponseContentType is the answer's Content-Type: an event stream for a
// .sse fixture, JSON for any other answer, none for an empty one.
func (x Exchange) ResponseContentType() string {
	switch {
	case x.ResponseType != "":
		return x.ResponseType
	case strings.HasSuffix(x.Response, ".sse"):
		return "text/event-stream"
	case x.Response != "":
		return "application/json; charset=utf-8"
	}
	return ""
}

func body(t testing.TB, s string) []byte {
	t.Helper()
	if s == "" || strings.HasPrefix(s, "{") || json.Valid([]byte(s)) {
		return []byte(s)
	}
	return read(t, s)
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
