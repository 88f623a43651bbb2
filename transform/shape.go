package transform

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ShaperConfig describes what one webhook receives.
type ShaperConfig struct {
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
}

// Shaper turns canonical events into one webhook's payloads.
type Shaper struct {
	schema *compiledSchema
	filter []string
}

// Payload is one webhook body for one platform event.
type Payload struct {
	// Event is the platform's event name.
	Event string
	Body  []byte
}

// NewShaper compiles a webhook's shaping; errors say what is wrong.
func NewShaper(cfg ShaperConfig) (*Shaper, error) {
	s, ok := schemas[cfg.Schema]
	for _, c := range cfg.Custom {
		if c.Name == cfg.Schema {
			s, ok = c, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("unknown schema %q; built-in schemas: %s", cfg.Schema, strings.Join(SchemaNames(), ", "))
	}
	var extra *node
	if len(cfg.Body) > 0 {
		var err error
		if extra, err = parseTemplate(string(cfg.Body), nil); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		if extra.kind != nodeObject {
			return nil, fmt.Errorf("body must be a JSON object template")
		}
	}
	compiled, err := compileSchema(s, extra)
	if err != nil {
		return nil, err
	}
	names := compiled.platformNames()
	for _, f := range cfg.Events {
		if !isEventType(f) && !contains(names, f) {
			return nil, fmt.Errorf("events: %q is neither a canonical event type nor an event of schema %q (%s)", f, cfg.Schema, strings.Join(names, ", "))
		}
	}
	return &Shaper{schema: compiled, filter: cfg.Events}, nil
}

// Receives reports whether this webhook takes events of any of the
// canonical types: its schema maps one and its events filter keeps it.
func (s *Shaper) Receives(types []string) bool {
	for _, typ := range types {
		for _, e := range s.schema.events[typ] {
			if len(s.filter) == 0 || contains(s.filter, typ) || contains(s.filter, e.name) {
				return true
			}
		}
	}
	return false
}

// Shape renders the payloads this webhook receives for ev, none when the
// schema or the events filter leaves it out or no variant holds.
func (s *Shaper) Shape(ev *Event) []Payload {
	evs := s.schema.events[ev.Type]
	if len(evs) == 0 {
		return nil
	}
	out := make([]Payload, 0, len(evs))
	c := renderContext{ev: ev, data: docString(ev.Data)}
	for i := range evs {
		e := &evs[i]
		if len(s.filter) > 0 && !contains(s.filter, ev.Type) && !contains(s.filter, e.name) {
			continue
		}
		tmpl := e.pick(c.data)
		if tmpl == nil {
			continue
		}
		c.name = e.name
		out = append(out, Payload{Event: e.name, Body: tmpl.render(make([]byte, 0, 512), &c)})
	}
	return out
}
