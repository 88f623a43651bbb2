package derive

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/presetcases"
)

// exchange builds the Exchange a case's step describes.
func exchange(t testing.TB, x presetcases.Exchange) *capture.Exchange {
	t.Helper()
	u, err := url.Parse(x.Target)
	if err != nil {
		t.Fatal(err)
	}
	ex := &capture.Exchange{Method: x.Method, Path: u.Path, RawQuery: u.RawQuery, Status: x.Status,
		RequestHeader: http.Header{}, ResponseHeader: http.Header{}, RequestBody: x.RequestBody(t)}
	for k, v := range x.RequestHeader {
		ex.RequestHeader.Set(k, v)
	}
	ex.RequestHeader.Set("Content-Type", x.RequestContentType())
	if x.Status != 0 {
		ex.ResponseBody = x.ResponseBody(t)
		if ct := x.ResponseContentType(); ct != "" {
			ex.ResponseHeader.Set("Content-Type", ct)
		}
	}
	return ex
}

// want is one expected event: its type and its whole data document.
type want struct {
	typ, data string
}

// allPresetsDeriver enables every preset at once, so each case also proves
// that no other preset claims its traffic.
func allPresetsDeriver(t testing.TB, state convstate.Store) *Deriver {
	t.Helper()
	d, err := New(Config{Presets: PresetNames(), State: state})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkEvents compares events with the expected ones, data as JSON values.
func checkEvents(t *testing.T, got []event.Event, wants []want) {
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

func wants(x presetcases.Exchange) []want {
	var out []want
	for _, e := range x.Events {
		out = append(out, want{e.Type, string(e.Data)})
	}
	return out
}

// TestPresetsDeriveCanonicalEvents runs testdata/presets/cases.json, the
// specification of every preset that caddymodule also runs through Caddy.
// Cases of one exchange run without conversation state; cases of several
// steps share one state, as they share one Caddy, so each such case keeps
// to conversations of its own.
func TestPresetsDeriveCanonicalEvents(t *testing.T) {
	stateless := allPresetsDeriver(t, nil)
	stateful := allPresetsDeriver(t, convstate.NewMemory(0, time.Hour))
	for _, tc := range presetcases.Load(t) {
		d := stateless
		if tc.Stateful() {
			d = stateful
		}
		t.Run(tc.Name, func(t *testing.T) {
			for i, x := range tc.Exchanges() {
				out := d.Derive(exchange(t, x))
				checkEvents(t, out.Events, wants(x))
				if strings.Join(out.Problems, ",") != strings.Join(x.Problems, ",") {
					t.Errorf("step %d: problems %v, want %v", i+1, out.Problems, x.Problems)
				}
			}
		})
	}
}
