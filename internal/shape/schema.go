package shape

import (
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/chatwebhooks/chatwebhooks/internal/builtin"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/chatwebhooks/chatwebhooks/internal/template"
	"github.com/tidwall/gjson"
)

// Schema shapes canonical events into one platform's webhook payloads.
// Built-in schemas are files under schemas/ in this very format; users write
// the same in their configuration.
type Schema struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Defs are named object templates that other templates include with
	// "$ref": a platform's Contact or Conversation object is written once.
	Defs map[string]json.RawMessage `json:"defs,omitempty"`
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
	// Variants, when given, choose the payload by the event's data: the
	// first variant whose When holds is merged over Payload; when none
	// holds, this platform event is not produced.
	Variants []Variant `json:"variants,omitempty"`
}

// Variant is one alternative payload of a SchemaEvent.
type Variant struct {
	// When maps event fields to the value they must have: a JSON scalar,
	// a list of scalars (any of them), or null (the field is absent). All
	// must hold; an empty When always holds.
	When    map[string]json.RawMessage `json:"when,omitempty"`
	Payload json.RawMessage            `json:"payload,omitempty"`
}

//go:embed schemas/*.json
var schemaFiles embed.FS

// schemas holds the built-in schemas by name; adding a platform means adding
// a file under schemas/.
var schemas = builtin.Load(schemaFiles, "schemas", func(s Schema) string { return s.Name }, CheckSchema)

// SchemaNames lists the built-in schemas, sorted.
func SchemaNames() []string { return slices.Sorted(maps.Keys(schemas)) }

// CheckSchema compiles s and reports what is wrong with it, so that a
// custom schema fails at provision rather than at the first event.
func CheckSchema(s Schema) error {
	_, err := compileSchema(s, nil)
	return err
}

// compiledSchema holds, per canonical type, the platform events to render.
type compiledSchema struct {
	events map[string][]compiledEvent
}

type compiledEvent struct {
	name     string
	variants []compiledVariant
	// paths are the event fields its variants test and render, read
	// from the event's data in one pass.
	paths *jsondoc.Paths
}

type compiledVariant struct {
	when []condition
	tmpl *template.Template
}

// condition is one member of a Variant's When.
type condition struct {
	path string
	any  []gjson.Result // nil: the field must be absent
}

// compileSchema compiles s; extra, when set, holds members added to every
// payload (a webhook's extra body parameters).
func compileSchema(s Schema, extra *template.Template) (*compiledSchema, error) {
	fail := func(err error) (*compiledSchema, error) {
		return nil, fmt.Errorf("schema %q: %w", s.Name, err)
	}
	defs := template.NewDefs(s.Defs)
	for _, name := range slices.Sorted(maps.Keys(s.Defs)) {
		if _, err := defs.Lookup(name); err != nil {
			return fail(err)
		}
	}
	base, err := optionalTemplate(s.Payload, defs)
	if err != nil {
		return fail(fmt.Errorf("payload: %w", err))
	}
	c := &compiledSchema{events: map[string][]compiledEvent{}}
	for typ, evs := range s.Events {
		if !event.IsType(typ) {
			return fail(fmt.Errorf("unknown canonical event type %q; known types: %s", typ, strings.Join(event.Types(), ", ")))
		}
		for _, e := range evs {
			ce, err := compileEvent(e, base, extra, defs)
			if err != nil {
				return fail(fmt.Errorf("%s (%s): %w", typ, e.Name, err))
			}
			c.events[typ] = append(c.events[typ], ce)
		}
	}
	return c, nil
}

func compileEvent(e SchemaEvent, base, extra *template.Template, defs *template.Defs) (compiledEvent, error) {
	ce := compiledEvent{name: e.Name}
	if e.Name == "" {
		return ce, fmt.Errorf("event needs a name")
	}
	over, err := optionalTemplate(e.Payload, defs)
	if err != nil {
		return ce, err
	}
	tmpl := template.Merge(base, over)
	variants := e.Variants
	if len(variants) == 0 {
		variants = []Variant{{}}
	}
	for i, v := range variants {
		over, err := optionalTemplate(v.Payload, defs)
		if err != nil {
			return ce, fmt.Errorf("variant %d: %w", i+1, err)
		}
		when, err := compileWhen(v.When)
		if err != nil {
			return ce, fmt.Errorf("variant %d: %w", i+1, err)
		}
		t := template.Merge(tmpl, over)
		if t == nil {
			return ce, fmt.Errorf("no payload template")
		}
		ce.variants = append(ce.variants, compiledVariant{when: when, tmpl: template.Merge(t, extra)})
	}
	var paths []string
	for _, v := range ce.variants {
		for _, c := range v.when {
			paths = append(paths, c.path)
		}
		paths = v.tmpl.DataPaths(paths)
	}
	ce.paths = jsondoc.NewPaths(paths)
	return ce, nil
}

func optionalTemplate(raw json.RawMessage, defs *template.Defs) (*template.Template, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	return template.Parse(string(raw), defs)
}

func compileWhen(when map[string]json.RawMessage) ([]condition, error) {
	var out []condition
	for _, path := range slices.Sorted(maps.Keys(when)) {
		if !event.KnownField(path) {
			return nil, fmt.Errorf("when: unknown event field %q", path)
		}
		raw := string(when[path])
		if !gjson.Valid(raw) {
			return nil, fmt.Errorf("when %s: not JSON: %s", path, raw)
		}
		c := condition{path: path}
		for _, v := range gjson.Parse(raw).Array() {
			if v.IsObject() || v.IsArray() {
				return nil, fmt.Errorf("when %s: want a scalar, a list of scalars or null, got %s", path, v.Raw)
			}
			c.any = append(c.any, v)
		}
		out = append(out, c)
	}
	return out, nil
}

// holds reports whether every condition is met by the event data.
func (v *compiledVariant) holds(data *jsondoc.Fields) bool {
	for _, c := range v.when {
		r := data.Get(c.path)
		if len(c.any) == 0 {
			if jsondoc.HasValue(r) {
				return false
			}
			continue
		}
		match := false
		for _, want := range c.any {
			match = match || (r.Type == want.Type && r.Str == want.Str && r.Num == want.Num)
		}
		if !match {
			return false
		}
	}
	return true
}

// pick returns the template of the first variant that holds, or nil.
func (e *compiledEvent) pick(data *jsondoc.Fields) *template.Template {
	for i := range e.variants {
		if e.variants[i].holds(data) {
			return e.variants[i].tmpl
		}
	}
	return nil
}

// platformNames lists the schema's platform event names.
func (c *compiledSchema) platformNames() []string {
	var names []string
	for _, evs := range c.events {
		for _, e := range evs {
			if !slices.Contains(names, e.name) {
				names = append(names, e.name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TemplateFromFields builds a payload template object from (target path,
// value) pairs, as a Caddyfile `field <target.path> <value>` list says it:
// dotted paths nest ("payload.from" is member "from" of object "payload"),
// and a value is JSON when it parses as JSON (0, true, null, {}, "text"),
// else text that may hold placeholders ("{contact.phone}", "Hi {contact.name}").
// Members whose placeholders have no value are omitted when rendering.
func TemplateFromFields(pairs [][2]string) (json.RawMessage, error) {
	entries := make([]jsondoc.Entry, 0, len(pairs))
	for _, p := range pairs {
		path, value := p[0], p[1]
		if path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
			return nil, fmt.Errorf("field %q: want a dotted path such as payload.from", path)
		}
		for _, e := range entries {
			if e.Path == path || strings.HasPrefix(path, e.Path+".") || strings.HasPrefix(e.Path, path+".") {
				return nil, fmt.Errorf("field %s: conflicts with field %s", path, e.Path)
			}
		}
		raw := []byte(value)
		if !gjson.Valid(value) {
			raw = jsondoc.AppendString(nil, value)
		}
		entries = append(entries, jsondoc.Entry{Path: path, Raw: raw})
	}
	doc := jsondoc.Build(nil, entries)
	if _, err := template.Parse(string(doc), nil); err != nil {
		return nil, err
	}
	return doc, nil
}
