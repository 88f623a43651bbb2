package transform

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Schema shapes canonical events into one platform's webhook payloads.
// Built-in schemas are files under schemas/ in this very format; users write
// the same in their configuration.
type Schema struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Payload is the template every event of this schema starts from.
	Payload json.RawMessage `json:"payload,omitempty"`
	// Events maps a canonical event type to the platform events it becomes,
	// each with a template merged over Payload. Canonical types not listed
	// are not delivered to this schema's webhooks.
	Events map[string][]SchemaEvent `json:"events"`
}

// SchemaEvent is one platform event produced from a canonical event.
type SchemaEvent struct {
	// Name is the platform's event name, readable as {event.name}.
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

//go:embed schemas/*.json
var schemaFiles embed.FS

// schemas holds the built-in schemas by name; adding a platform means adding
// a file under schemas/.
var schemas = loadSchemas()

func loadSchemas() map[string]Schema {
	out := map[string]Schema{}
	for _, f := range mustReadDir(schemaFiles, "schemas") {
		var s Schema
		mustDecode(schemaFiles, "schemas/"+f, &s)
		if _, dup := out[s.Name]; dup || s.Name != strings.TrimSuffix(f, ".json") {
			panic(fmt.Sprintf("schemas/%s: name %q must be unique and match the file name", f, s.Name))
		}
		if _, err := compileSchema(s, nil); err != nil {
			panic(fmt.Sprintf("schemas/%s: %v", f, err))
		}
		out[s.Name] = s
	}
	return out
}

// SchemaNames lists the built-in schemas.
func SchemaNames() []string { return strings.Split(sortedKeys(schemas), ", ") }

// BuiltinSchema returns a built-in schema by name.
func BuiltinSchema(name string) (Schema, bool) {
	s, ok := schemas[name]
	return s, ok
}

// compiledSchema holds, per canonical type, the platform events to render.
type compiledSchema struct {
	events map[string][]compiledEvent
}

type compiledEvent struct {
	name string
	tmpl *node
}

// compileSchema compiles s; extra, when set, holds members added to every
// payload (a webhook's extra body parameters).
func compileSchema(s Schema, extra *node) (*compiledSchema, error) {
	fail := func(err error) (*compiledSchema, error) {
		return nil, fmt.Errorf("schema %q: %w", s.Name, err)
	}
	var base *node
	if len(s.Payload) > 0 {
		var err error
		if base, err = parseTemplate(string(s.Payload)); err != nil {
			return fail(fmt.Errorf("payload: %w", err))
		}
	}
	c := &compiledSchema{events: map[string][]compiledEvent{}}
	for typ, evs := range s.Events {
		if !isEventType(typ) {
			return fail(fmt.Errorf("unknown canonical event type %q; known types: %s", typ, strings.Join(EventTypes, ", ")))
		}
		for _, e := range evs {
			tmpl := base
			if len(e.Payload) > 0 {
				over, err := parseTemplate(string(e.Payload))
				if err != nil {
					return fail(fmt.Errorf("%s (%s): %w", typ, e.Name, err))
				}
				tmpl = merge(base, over)
			}
			if tmpl == nil {
				return fail(fmt.Errorf("%s (%s) has no payload template", typ, e.Name))
			}
			c.events[typ] = append(c.events[typ], compiledEvent{name: e.Name, tmpl: merge(tmpl, extra)})
		}
	}
	return c, nil
}

// platformNames lists the schema's platform event names.
func (c *compiledSchema) platformNames() []string {
	var names []string
	for _, evs := range c.events {
		for _, e := range evs {
			if !contains(names, e.name) {
				names = append(names, e.name)
			}
		}
	}
	sort.Strings(names)
	return names
}
