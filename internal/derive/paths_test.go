package derive

import (
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/chatwebhooks/chatwebhooks/internal/presetcases"
	"github.com/tidwall/gjson"
)

// TestBodyPathsReadAsGjson checks, on the real traffic of the preset
// cases, that every body path a preset rule reads in one pass over a
// decoded body is what gjson.Get reads there.
func TestBodyPathsReadAsGjson(t *testing.T) {
	d := allPresetsDeriver(t, nil)
	checked := 0
	for _, tc := range presetcases.Load(t) {
		for _, x := range tc.Exchanges() {
			ex := exchange(t, x)
			for _, r := range d.rules {
				v := view{ex: ex, limit: d.limit}
				v.setRule(r)
				if r.stream != nil {
					v.respStream = r.stream
				}
				for _, body := range []struct {
					doc   []byte
					paths *jsondoc.Paths
				}{{v.requestBody(), r.bodies.req}, {v.responseBody(), r.bodies.resp}} {
					if len(body.doc) == 0 {
						continue
					}
					doc := string(body.doc)
					data := jsondoc.NewFields(doc, body.paths, nil)
					for _, path := range body.paths.List() {
						got, want := data.Get(path), gjson.Get(doc, path)
						if got.Type != want.Type || got.Raw != want.Raw || got.Str != want.Str || got.Num != want.Num {
							t.Errorf("%s: %q on %s: got %+v, gjson.Get gives %+v", tc.Name, path, doc, got, want)
						}
						checked++
					}
				}
			}
		}
	}
	t.Logf("%d body paths checked", checked)
	if checked < 1000 {
		t.Fatalf("only %d body paths checked", checked)
	}
}
