package shape

import (
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/chatwebhooks/chatwebhooks/internal/presetcases"
	"github.com/tidwall/gjson"
)

// TestFieldsReadAsGjson checks, on the events the built-in sources derive
// from real traffic, that every field a built-in schema's platform event
// reads from one pass over the event's data is what gjson.Get reads.
func TestFieldsReadAsGjson(t *testing.T) {
	var docs []string
	for _, c := range presetcases.Load(t) {
		for _, ex := range append([]presetcases.Exchange{c.Exchange}, c.Steps...) {
			for _, ev := range ex.Events {
				docs = append(docs, string(ev.Data))
			}
		}
	}
	if len(docs) < 50 {
		t.Fatalf("only %d events in the preset cases", len(docs))
	}
	for _, name := range SchemaNames() {
		s, err := compileSchema(schemas[name], nil)
		if err != nil {
			t.Fatal(err)
		}
		for typ, evs := range s.events {
			for _, e := range evs {
				for _, doc := range docs {
					data := jsondoc.NewFields(doc, e.paths, nil)
					for _, path := range e.paths.List() {
						got, want := data.Get(path), gjson.Get(doc, path)
						if got.Type != want.Type || got.Raw != want.Raw || got.Str != want.Str || got.Num != want.Num {
							t.Errorf("%s %s (%s) %q on %s: got %+v, gjson.Get gives %+v", name, typ, e.name, path, doc, got, want)
						}
					}
				}
			}
		}
	}
}
