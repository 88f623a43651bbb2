// Package template is the placeholder language of payload templates and
// lookup URLs: JSON whose strings may read an event's fields.
package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/tidwall/gjson"
)

// Template is a compiled JSON document whose string values may hold
// placeholders:
//
//	"{conversation.id}"                 the field's JSON value, type kept
//	"{reply.id ?? message.id}"          the first alternative that has a value
//	"{agent.id | string}"               with filters applied left to right
//	"Hello {contact.name}"              interpolated into a string
//
// Alternatives are event fields, event.id, event.type, event.time,
// event.name (the platform's event name), event.data (all event data as an
// object) or =constant text. A member whose value is absent is omitted, never
// written empty, and so is a nested object or array that holds placeholders
// but no value from the event's data (literals, defaults and event.* do not
// count): an assignee nobody knows is left out, not written {"type":"user"}.
// Filters:
//
//	string       number or boolean to string
//	number       numeric string to number; absent when not numeric
//	number:keep  numeric string to number; other values kept as they are
//	default:v    v (JSON, else text) when the value is absent or a filter
//	             before failed: default:null, default:{}, default:false
//	null         default:null
//	iso8601ms    time to "2006-01-02T15:04:05.000Z" (UTC)
//	unix         time to unix seconds
//	map:a=x,b=y  replace a value by another (JSON, else text)
//
// Times are RFC 3339 text, "2006-01-02 15:04:05 UTC" text, or unix seconds
// (milliseconds when too large to be seconds) as a number or numeric text.
//
// A member "$ref": "name" (or a list of names) in an object lays that object
// over the named templates of the schema's defs, so that platform objects
// (Contact, Conversation...) are written once.
type Template struct {
	kind     nodeKind
	dynamic  bool        // holds placeholders, so it may render absent
	raw      []byte      // nodeLiteral
	keys     []string    // nodeObject, in order
	members  []string    // nodeObject: each key written as JSON, with its colon
	children []*Template // nodeObject values, nodeArray elements
	expr     *expression // nodeValue
	parts    []strPart   // nodeString
}

type nodeKind uint8

const (
	nodeLiteral nodeKind = iota
	nodeObject
	nodeArray
	nodeValue
	nodeString
)

type strPart struct {
	text string
	expr *expression
}

type expression struct {
	alts    []string
	filters []filter
}

// eventMeta are the placeholders that read the event itself, not its data.
var eventMeta = []string{"event.name", "event.id", "event.type", "event.time", "event.data"}

type filter struct {
	name string
	arg  map[string]gjson.Result // map
	def  gjson.Result            // default
	keep bool                    // number:keep
}

// renderContext is one event being shaped under one platform event name.
type renderContext struct {
	ev   *event.Event
	data *jsondoc.Fields
	name string
}

// Defs resolves "$ref" members against a schema's named templates,
// compiling each once and refusing cycles.
type Defs struct {
	raw      map[string]json.RawMessage
	compiled map[string]*Template
	visiting map[string]bool
}

// NewDefs returns the resolver of a schema's named templates.
func NewDefs(raw map[string]json.RawMessage) *Defs {
	return &Defs{raw: raw, compiled: map[string]*Template{}, visiting: map[string]bool{}}
}

// Lookup returns the compiled def name.
func (d *Defs) Lookup(name string) (*Template, error) {
	if d == nil {
		return nil, fmt.Errorf("$ref %q: no defs here", name)
	}
	if n, ok := d.compiled[name]; ok {
		return n, nil
	}
	raw, ok := d.raw[name]
	if !ok {
		return nil, fmt.Errorf("$ref: unknown def %q", name)
	}
	if d.visiting[name] {
		return nil, fmt.Errorf("$ref: def %q refers to itself", name)
	}
	d.visiting[name] = true
	defer delete(d.visiting, name)
	n, err := Parse(string(raw), d)
	if err != nil {
		return nil, fmt.Errorf("defs.%s: %w", name, err)
	}
	d.compiled[name] = n
	return n, nil
}

// Parse compiles a template; defs resolves its "$ref" members and may be nil.
func Parse(raw string, defs *Defs) (*Template, error) {
	if !gjson.Valid(raw) {
		return nil, fmt.Errorf("template is not valid JSON")
	}
	return compileNode(gjson.Parse(raw), defs)
}

func compileNode(r gjson.Result, defs *Defs) (*Template, error) {
	switch {
	case r.IsObject():
		n := &Template{kind: nodeObject}
		var refs []string
		var err error
		r.ForEach(func(k, v gjson.Result) bool {
			if k.Str == "$ref" {
				for _, name := range v.Array() {
					if name.Type != gjson.String {
						err = fmt.Errorf("$ref: want a def name or a list of them, got %s", name.Raw)
						return false
					}
					refs = append(refs, name.Str)
				}
				return true
			}
			var child *Template
			if child, err = compileNode(v, defs); err != nil {
				err = fmt.Errorf("%s: %w", k.Str, err)
				return false
			}
			n.set(k.Str, child)
			return true
		})
		if err != nil {
			return nil, err
		}
		var base *Template
		for _, name := range refs {
			def, err := defs.Lookup(name)
			if err != nil {
				return nil, err
			}
			if def.kind != nodeObject {
				return nil, fmt.Errorf("$ref: def %q is not an object", name)
			}
			base = Merge(base, def)
		}
		return Merge(base, n.finish()), nil
	case r.IsArray():
		n := &Template{kind: nodeArray}
		var err error
		r.ForEach(func(_, v gjson.Result) bool {
			var child *Template
			if child, err = compileNode(v, defs); err == nil {
				n.children = append(n.children, child)
			}
			return err == nil
		})
		return n.finish(), err
	case r.Type == gjson.String && strings.Contains(r.Str, "{"):
		return compileString(r.Str)
	default:
		return &Template{kind: nodeLiteral, raw: []byte(r.Raw)}, nil
	}
}

// finish records whether a container holds placeholders.
func (n *Template) finish() *Template {
	n.dynamic = false
	for _, c := range n.children {
		n.dynamic = n.dynamic || c.dynamic
	}
	return n
}

func compileString(s string) (*Template, error) {
	parts, err := splitPlaceholders(s)
	if errors.Is(err, errUnclosed) {
		return nil, fmt.Errorf("unclosed placeholder in %q", s)
	}
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 && parts[0].expr != nil {
		return &Template{kind: nodeValue, dynamic: true, expr: parts[0].expr}, nil
	}
	return &Template{kind: nodeString, dynamic: true, parts: parts}, nil
}

var errUnclosed = errors.New("unclosed placeholder")

// splitPlaceholders splits s into literal text and parsed {placeholders}.
func splitPlaceholders(s string) ([]strPart, error) {
	var parts []strPart
	for s != "" {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			return append(parts, strPart{text: s}), nil
		}
		if open > 0 {
			parts = append(parts, strPart{text: s[:open]})
		}
		end := closingBrace(s[open:])
		if end < 0 {
			return nil, errUnclosed
		}
		e, err := parseExpression(s[open+1 : open+end])
		if err != nil {
			return nil, err
		}
		parts = append(parts, strPart{expr: e})
		s = s[open+end+1:]
	}
	return parts, nil
}

// closingBrace returns the index of the brace that closes s[0], counting
// nested braces so that arguments such as default:{} stay inside.
func closingBrace(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

func parseExpression(s string) (*expression, error) {
	pipeline := strings.Split(s, "|")
	e := &expression{}
	for _, alt := range strings.Split(pipeline[0], "??") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			return nil, fmt.Errorf("empty placeholder in {%s}", s)
		}
		if !strings.HasPrefix(alt, "=") && !slices.Contains(eventMeta, alt) && !event.KnownField(alt) {
			return nil, fmt.Errorf("{%s}: unknown event field %q", s, alt)
		}
		e.alts = append(e.alts, alt)
	}
	for _, f := range pipeline[1:] {
		name, arg, hasArg := strings.Cut(strings.TrimSpace(f), ":")
		flt := filter{name: name}
		switch {
		case name == "string" || name == "iso8601ms" || name == "unix" || (name == "number" && !hasArg):
		case name == "number" && arg == "keep":
			flt.keep = true
		case name == "null":
			flt = filter{name: "default", def: gjson.Result{Type: gjson.Null, Raw: "null"}}
		case name == "default" && hasArg:
			flt.def = jsonOrText(arg)
		case name == "map":
			flt.arg = map[string]gjson.Result{}
			for _, pair := range strings.Split(arg, ",") {
				k, v, ok := strings.Cut(pair, "=")
				if !ok {
					return nil, fmt.Errorf("{%s}: map needs key=value pairs", s)
				}
				flt.arg[k] = jsonOrText(v)
			}
		default:
			return nil, fmt.Errorf("{%s}: unknown filter %q (string, number, number:keep, default:<json>, null, iso8601ms, unix, map:a=x)", s, strings.TrimSpace(f))
		}
		e.filters = append(e.filters, flt)
	}
	return e, nil
}

// jsonOrText reads a filter argument: JSON when it is JSON, else text.
func jsonOrText(v string) gjson.Result {
	if gjson.Valid(v) {
		return gjson.Parse(v)
	}
	return gjson.Result{Type: gjson.String, Str: v}
}

// set adds or replaces a member, keeping the first position.
func (n *Template) set(key string, child *Template) {
	for i, k := range n.keys {
		if k == key {
			n.children[i] = child
			return
		}
	}
	n.keys = append(n.keys, key)
	n.members = append(n.members, string(append(jsondoc.AppendString(nil, key), ':')))
	n.children = append(n.children, child)
}

// Merge returns base with over's members laid on top: objects merge member by
// member, anything else replaces.
func Merge(base, over *Template) *Template {
	if base == nil {
		return over
	}
	if over == nil {
		return base
	}
	if base.kind != nodeObject || over.kind != nodeObject {
		return over
	}
	out := &Template{kind: nodeObject, keys: slices.Clone(base.keys), members: slices.Clone(base.members), children: slices.Clone(base.children)}
	for i, k := range over.keys {
		var prev *Template
		for j, bk := range out.keys {
			if bk == k {
				prev = out.children[j]
			}
		}
		out.set(k, Merge(prev, over.children[i]))
	}
	return out.finish()
}

// presence says what rendering a node wrote.
type presence uint8

const (
	absent presence = iota // nothing: the member is omitted
	filler                 // a literal, a default or event metadata
	known                  // a value taken from the event's data
)

// IsObject reports whether the template is a JSON object.
func (n *Template) IsObject() bool { return n.kind == nodeObject }

// Render appends the payload for ev under the platform event name (read by
// {event.name}). The root object is written even when nothing in it is
// known, so a payload is always a JSON object.
func (n *Template) Render(dst []byte, ev *event.Event, name string) []byte {
	data := jsondoc.NewFields(jsondoc.StringView(ev.Data), nil, nil)
	return n.RenderFields(dst, ev, name, &data)
}

// RenderFields is Render reading the event's data from data, which holds
// ev.Data with the paths of DataPaths resolved at once.
func (n *Template) RenderFields(dst []byte, ev *event.Event, name string, data *jsondoc.Fields) []byte {
	return n.render(dst, &renderContext{ev: ev, data: data, name: name})
}

// DataPaths appends the paths of the event's data that rendering n may
// read.
func (n *Template) DataPaths(dst []string) []string {
	exprs := func(e *expression) {
		for _, alt := range e.alts {
			if alt[0] != '=' && !slices.Contains(eventMeta, alt) {
				dst = append(dst, alt)
			}
		}
	}
	if n.expr != nil {
		exprs(n.expr)
	}
	for _, p := range n.parts {
		if p.expr != nil {
			exprs(p.expr)
		}
	}
	for _, c := range n.children {
		dst = c.DataPaths(dst)
	}
	return dst
}

func (n *Template) render(dst []byte, c *renderContext) []byte {
	start := len(dst)
	dst, p := n.appendJSON(dst, c, true)
	if p == absent {
		return append(dst[:start], "{}"...)
	}
	return dst
}

// appendJSON renders n. A container that holds placeholders but in which
// nothing is known is absent, unless it is the root.
func (n *Template) appendJSON(dst []byte, c *renderContext, root bool) ([]byte, presence) {
	switch n.kind {
	case nodeLiteral:
		return append(dst, n.raw...), filler
	case nodeValue:
		r, p := n.expr.resolve(c)
		if p == absent {
			return dst, absent
		}
		return jsondoc.AppendValue(dst, r), p
	case nodeString:
		var text []byte
		p := filler
		for _, part := range n.parts {
			if part.expr == nil {
				text = append(text, part.text...)
			} else if v, vp := part.expr.resolve(c); vp != absent {
				text = append(text, v.String()...)
				p = max(p, vp)
			}
		}
		return jsondoc.AppendString(dst, string(text)), p
	}
	open, close := byte('['), byte(']')
	if n.kind == nodeObject {
		open, close = '{', '}'
	}
	start := len(dst)
	dst = append(dst, open)
	written, p := 0, filler
	for i, child := range n.children {
		mark := len(dst)
		if written > 0 {
			dst = append(dst, ',')
		}
		if n.kind == nodeObject {
			dst = append(dst, n.members[i]...)
		}
		var cp presence
		if dst, cp = child.appendJSON(dst, c, false); cp == absent {
			dst = dst[:mark]
			continue
		}
		written++
		p = max(p, cp)
	}
	if n.dynamic && p != known && !root {
		return dst[:start], absent
	}
	return append(dst, close), p
}

// value resolves the first alternative that has a value. Only the event's
// data is knowledge; its metadata and constants are filler. evTime says
// the value is the event's time, which value leaves to its caller to
// write (as text or directly through a time filter).
func (e *expression) value(c *renderContext) (r gjson.Result, p presence, evTime bool) {
	for _, alt := range e.alts {
		p = filler
		switch alt {
		case "event.name":
			r = gjson.Result{Type: gjson.String, Str: c.name}
		case "event.id":
			r = gjson.Result{Type: gjson.String, Str: c.ev.ID}
		case "event.type":
			r = gjson.Result{Type: gjson.String, Str: c.ev.Type}
		case "event.time":
			return gjson.Result{}, filler, true
		case "event.data":
			r, p = gjson.Parse(c.data.Doc()), known
		default:
			if alt[0] == '=' {
				r = gjson.Result{Type: gjson.String, Str: alt[1:]}
			} else {
				r, p = c.data.Get(alt), known
			}
		}
		if jsondoc.HasValue(r) {
			return r, p, false
		}
	}
	return gjson.Result{}, absent, false
}

// resolve returns the expression's value with its filters applied, and
// whether it is known or only a default.
func (e *expression) resolve(c *renderContext) (gjson.Result, presence) {
	r, p, evTime := e.value(c)
	filters := e.filters
	if evTime {
		// A time filter reads the event's time as it is rather than its
		// text, which it would parse back, when the text can be read.
		if y := c.ev.Time.Year(); len(filters) > 0 && filters[0].isTime() && y >= 0 && y <= 9999 {
			r, filters = timeValue(filters[0].name, c.ev.Time), filters[1:]
		} else {
			r = gjson.Result{Type: gjson.String, Str: c.ev.Time.Format(time.RFC3339Nano)}
		}
	}
	for _, f := range filters {
		switch {
		case p != absent:
			var ok bool
			if r, ok = f.apply(r); !ok {
				p = absent
			}
		case f.name == "default":
			r, p = f.def, filler
		}
	}
	return r, p
}

func (f filter) isTime() bool { return f.name == "iso8601ms" || f.name == "unix" }

// timeValue is t through the time filter name.
func timeValue(name string, t time.Time) gjson.Result {
	if name == "unix" {
		return gjson.Result{Type: gjson.Number, Num: float64(t.Unix()), Raw: strconv.FormatInt(t.Unix(), 10)}
	}
	return gjson.Result{Type: gjson.String, Str: t.UTC().Format("2006-01-02T15:04:05.000Z")}
}

func (f filter) apply(r gjson.Result) (gjson.Result, bool) {
	switch f.name {
	case "string":
		if r.Type == gjson.String {
			return r, true
		}
		return gjson.Result{Type: gjson.String, Str: r.String()}, r.Type != gjson.JSON
	case "number":
		if r.Type == gjson.Number {
			return r, true
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(r.String()), 64)
		if err != nil || r.Type == gjson.JSON || math.IsInf(n, 0) || math.IsNaN(n) {
			return r, f.keep
		}
		return gjson.Result{Type: gjson.Number, Num: n, Raw: strconv.FormatFloat(n, 'f', -1, 64)}, true
	case "iso8601ms", "unix":
		t, ok := asTime(r)
		if !ok {
			return r, false
		}
		return timeValue(f.name, t), true
	case "map":
		if v, found := f.arg[r.String()]; found {
			return v, true
		}
	}
	return r, true
}

// asTime reads RFC 3339 text, "2006-01-02 15:04:05 UTC" text or unix time.
func asTime(r gjson.Result) (time.Time, bool) {
	switch r.Type {
	case gjson.Number:
		return unixTime(r.Num), true
	case gjson.String:
		// Both text layouts have a colon and numbers never do: deciding
		// first saves a failing parse, and its error allocation, per value.
		if !strings.Contains(r.Str, ":") {
			if f, err := strconv.ParseFloat(r.Str, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return unixTime(f), true
			}
			return time.Time{}, false
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST"} {
			if t, err := time.Parse(layout, r.Str); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// unixTime reads unix seconds, or milliseconds when the number is too large
// to be seconds (beyond the year 5000): JavaScript senders use milliseconds.
// Fractions are rounded to the microsecond so that float noise never turns
// .560 into .559.
func unixTime(f float64) time.Time {
	if math.Abs(f) >= 1e11 {
		return time.UnixMilli(int64(math.Round(f))).UTC()
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64(math.Round((f-sec)*1e6))*1e3).UTC()
}

// Text is a string whose placeholders are filled from an event, such as a
// lookup URL.
type Text struct{ parts []strPart }

// ParseText compiles a string with placeholders.
func ParseText(s string) (Text, error) {
	parts, err := splitPlaceholders(s)
	return Text{parts}, err
}

// Fill writes the text for ev; escape turns each placeholder's value into
// text, knowing what was written before it. ok is false when a placeholder
// has no value.
func (t Text) Fill(ev *event.Event, escape func(before, value string) string) (string, bool) {
	data := jsondoc.NewFields(jsondoc.StringView(ev.Data), nil, nil)
	c := renderContext{ev: ev, data: &data}
	var b strings.Builder
	for _, p := range t.parts {
		if p.expr == nil {
			b.WriteString(p.text)
			continue
		}
		r, pr := p.expr.resolve(&c)
		if pr == absent {
			return "", false
		}
		b.WriteString(escape(b.String(), r.String()))
	}
	return b.String(), true
}
