// Package shape turns canonical events into one webhook's payloads: a
// receiver schema (built-in ones are schemas/*.json) chooses and renders the
// platform events, a webhook's events filter and extra body apply, and its
// redactions are removed.
package shape

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/chatwebhooks/chatwebhooks/internal/template"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Config describes what one webhook receives.
type Config struct {
	// Schema is a built-in schema's name or one of Custom's.
	Schema string
	// Custom are the user's own schemas.
	Custom []Schema
	// Events filters what is delivered, by canonical type or by the
	// schema's platform event name; empty means everything the schema maps.
	Events []string
	// Body is a template object whose members are added to every payload,
	// e.g. {"source": "caddy", "tenant": "{account.id}"}.
	Body json.RawMessage
	// Redact lists payload paths (gjson/sjson syntax) removed from every
	// payload, e.g. userEmail or payload.from.
	Redact []string
}

// Shaper turns canonical events into one webhook's payloads.
type Shaper struct {
	schema *compiledSchema
	filter []string
	redact []string
}

// Payload is one webhook body for one platform event.
type Payload struct {
	// Event is the platform's event name.
	Event string
	Body  []byte
}

// New compiles a webhook's shaping; errors say what is wrong.
func New(cfg Config) (*Shaper, error) {
	s, ok := schemas[cfg.Schema]
	for _, c := range cfg.Custom {
		if c.Name == cfg.Schema {
			s, ok = c, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("unknown schema %q; built-in schemas: %s", cfg.Schema, strings.Join(SchemaNames(), ", "))
	}
	var extra *template.Template
	if len(cfg.Body) > 0 {
		var err error
		if extra, err = template.Parse(string(cfg.Body), nil); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		if !extra.IsObject() {
			return nil, fmt.Errorf("body must be a JSON object template")
		}
	}
	compiled, err := compileSchema(s, extra)
	if err != nil {
		return nil, err
	}
	names := compiled.platformNames()
	for _, f := range cfg.Events {
		if !event.IsType(f) && !slices.Contains(names, f) {
			return nil, fmt.Errorf("events: %q is neither a canonical event type nor an event of schema %q (%s)", f, cfg.Schema, strings.Join(names, ", "))
		}
	}
	return &Shaper{schema: compiled, filter: cfg.Events, redact: cfg.Redact}, nil
}

// Receives reports whether this webhook takes events of any of the
// canonical types: its schema maps one and its events filter keeps it.
func (s *Shaper) Receives(types []string) bool {
	for _, typ := range types {
		for _, e := range s.schema.events[typ] {
			if len(s.filter) == 0 || slices.Contains(s.filter, typ) || slices.Contains(s.filter, e.name) {
				return true
			}
		}
	}
	return false
}

// Shape renders the payloads this webhook receives for ev, none when the
// schema or the events filter leaves it out or no variant holds, without
// the redacted paths.
func (s *Shaper) Shape(ev *event.Event) []Payload {
	evs := s.schema.events[ev.Type]
	if len(evs) == 0 {
		return nil
	}
	out := make([]Payload, 0, len(evs))
	buf := resultsPool.Get().(*[]gjson.Result)
	defer resultsPool.Put(buf)
	for i := range evs {
		e := &evs[i]
		if len(s.filter) > 0 && !slices.Contains(s.filter, ev.Type) && !slices.Contains(s.filter, e.name) {
			continue
		}
		data := jsondoc.NewFields(jsondoc.StringView(ev.Data), e.paths, *buf)
		tmpl := e.pick(&data)
		if tmpl == nil {
			continue
		}
		out = append(out, Payload{Event: e.name, Body: s.redacted(tmpl.RenderFields(make([]byte, 0, 512), ev, e.name, &data))})
	}
	return out
}

// resultsPool holds the buffers a platform event's fields are read into,
// room for ChatVolt's twenty or Chatwoot's hundred without an allocation
// per event.
var resultsPool = sync.Pool{New: func() any {
	buf := make([]gjson.Result, 128)
	return &buf
}}

// redacted removes the redacted paths from a payload; a path the payload
// lacks is no error.
func (s *Shaper) redacted(body []byte) []byte {
	for _, path := range s.redact {
		if b, err := sjson.DeleteBytes(body, path); err == nil {
			body = b
		}
	}
	return body
}
