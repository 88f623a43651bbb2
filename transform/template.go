package transform

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
)

// A template is a JSON document whose string values may hold placeholders:
//
//	"{conversation.id}"                 the field's JSON value, type kept
//	"{reply.id ?? message.id}"          the first alternative that has a value
//	"{agent.id | string}"               with filters applied left to right
//	"Hello {contact.name}"              interpolated into a string
//
// Alternatives are event fields, event.id, event.type, event.time,
// event.name (the platform's event name), event.data (all event data as an
// object) or =constant text. A member whose
// value is absent is omitted, never written empty. Filters:
//
//	string     number or boolean to string
//	number     numeric string to number
//	null       write null instead of omitting an absent value
//	iso8601ms  time to "2006-01-02T15:04:05.000Z" (UTC)
//	unix       time to unix seconds
//	map:a=x,b=y  replace a value by another (JSON literal, else string)
type node struct {
	kind     nodeKind
	raw      []byte      // nodeLiteral
	keys     []string    // nodeObject, in order
	children []*node     // nodeObject values, nodeArray elements
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
	arg  map[string]string
}

// renderContext is one event being shaped under one platform event name.
type renderContext struct {
	ev   *Event
	data string
	name string
}

func parseTemplate(raw string) (*node, error) {
	if !gjson.Valid(raw) {
		return nil, fmt.Errorf("template is not valid JSON")
	}
	return compileNode(gjson.Parse(raw))
}

func compileNode(r gjson.Result) (*node, error) {
	switch {
	case r.IsObject():
		n := &node{kind: nodeObject}
		var err error
		r.ForEach(func(k, v gjson.Result) bool {
			var child *node
			if child, err = compileNode(v); err != nil {
				err = fmt.Errorf("%s: %w", k.Str, err)
				return false
			}
			n.set(k.Str, child)
			return true
		})
		return n, err
	case r.IsArray():
		n := &node{kind: nodeArray}
		var err error
		r.ForEach(func(_, v gjson.Result) bool {
			var child *node
			if child, err = compileNode(v); err == nil {
				n.children = append(n.children, child)
			}
			return err == nil
		})
		return n, err
	case r.Type == gjson.String && strings.Contains(r.Str, "{"):
		return compileString(r.Str)
	default:
		return &node{kind: nodeLiteral, raw: []byte(r.Raw)}, nil
	}
}

func compileString(s string) (*node, error) {
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && strings.Count(s, "{") == 1 {
		e, err := parseExpression(s[1 : len(s)-1])
		return &node{kind: nodeValue, expr: e}, err
	}
	n := &node{kind: nodeString}
	for s != "" {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			n.parts = append(n.parts, strPart{text: s})
			break
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed placeholder in %q", s)
		}
		if open > 0 {
			n.parts = append(n.parts, strPart{text: s[:open]})
		}
		e, err := parseExpression(s[open+1 : open+end])
		if err != nil {
			return nil, err
		}
		n.parts = append(n.parts, strPart{expr: e})
		s = s[open+end+1:]
	}
	return n, nil
}

func parseExpression(s string) (*expression, error) {
	pipeline := strings.Split(s, "|")
	e := &expression{}
	for _, alt := range strings.Split(pipeline[0], "??") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			return nil, fmt.Errorf("empty placeholder in {%s}", s)
		}
		if !strings.HasPrefix(alt, "=") && !contains(eventMeta, alt) && !knownField(alt) {
			return nil, fmt.Errorf("{%s}: unknown event field %q", s, alt)
		}
		e.alts = append(e.alts, alt)
	}
	for _, f := range pipeline[1:] {
		name, arg, _ := strings.Cut(strings.TrimSpace(f), ":")
		flt := filter{name: name}
		switch name {
		case "string", "number", "null", "iso8601ms", "unix":
		case "map":
			flt.arg = map[string]string{}
			for _, pair := range strings.Split(arg, ",") {
				k, v, ok := strings.Cut(pair, "=")
				if !ok {
					return nil, fmt.Errorf("{%s}: map needs key=value pairs", s)
				}
				flt.arg[k] = v
			}
		default:
			return nil, fmt.Errorf("{%s}: unknown filter %q (string, number, null, iso8601ms, unix, map:a=x)", s, name)
		}
		e.filters = append(e.filters, flt)
	}
	return e, nil
}

// set adds or replaces a member, keeping the first position.
func (n *node) set(key string, child *node) {
	for i, k := range n.keys {
		if k == key {
			n.children[i] = child
			return
		}
	}
	n.keys = append(n.keys, key)
	n.children = append(n.children, child)
}

// merge returns base with over's members laid on top: objects merge member by
// member, anything else replaces.
func merge(base, over *node) *node {
	if base == nil {
		return over
	}
	if over == nil || base.kind != nodeObject || over.kind != nodeObject {
		if over == nil {
			return base
		}
		return over
	}
	out := &node{kind: nodeObject, keys: append([]string(nil), base.keys...), children: append([]*node(nil), base.children...)}
	for i, k := range over.keys {
		var prev *node
		for j, bk := range out.keys {
			if bk == k {
				prev = out.children[j]
			}
		}
		out.set(k, merge(prev, over.children[i]))
	}
	return out
}

// appendJSON renders n; ok is false when the value is absent.
func (n *node) appendJSON(dst []byte, c *renderContext) ([]byte, bool) {
	switch n.kind {
	case nodeLiteral:
		return append(dst, n.raw...), true
	case nodeValue:
		return n.expr.appendJSON(dst, c)
	case nodeString:
		start := len(dst)
		var text []byte
		for _, p := range n.parts {
			if p.expr == nil {
				text = append(text, p.text...)
				continue
			}
			if v, ok := p.expr.value(c); ok {
				text = append(text, v.String()...)
			}
		}
		return appendString(dst[:start], string(text)), true
	case nodeArray:
		dst = append(dst, '[')
		first := true
		for _, child := range n.children {
			mark := len(dst)
			if !first {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = child.appendJSON(dst, c); !ok {
				dst = dst[:mark]
				continue
			}
			first = false
		}
		return append(dst, ']'), true
	default:
		dst = append(dst, '{')
		first := true
		for i, child := range n.children {
			mark := len(dst)
			if !first {
				dst = append(dst, ',')
			}
			dst = appendString(dst, n.keys[i])
			dst = append(dst, ':')
			var ok bool
			if dst, ok = child.appendJSON(dst, c); !ok {
				dst = dst[:mark]
				continue
			}
			first = false
		}
		return append(dst, '}'), true
	}
}

// value resolves the first alternative that has a value.
func (e *expression) value(c *renderContext) (gjson.Result, bool) {
	for _, alt := range e.alts {
		var r gjson.Result
		switch alt {
		case "event.name":
			r = gjson.Result{Type: gjson.String, Str: c.name}
		case "event.id":
			r = gjson.Result{Type: gjson.String, Str: c.ev.ID}
		case "event.type":
			r = gjson.Result{Type: gjson.String, Str: c.ev.Type}
		case "event.time":
			r = gjson.Result{Type: gjson.String, Str: c.ev.Time.Format(time.RFC3339Nano)}
		case "event.data":
			r = gjson.Parse(c.data)
		default:
			if alt[0] == '=' {
				r = gjson.Result{Type: gjson.String, Str: alt[1:]}
			} else {
				r = gjson.Get(c.data, alt)
			}
		}
		if r.Exists() && r.Type != gjson.Null && !(r.Type == gjson.String && r.Str == "") {
			return r, true
		}
	}
	return gjson.Result{}, false
}

func (e *expression) appendJSON(dst []byte, c *renderContext) ([]byte, bool) {
	r, ok := e.value(c)
	for _, f := range e.filters {
		if f.name == "null" {
			if !ok {
				return append(dst, "null"...), true
			}
			continue
		}
		if ok {
			r, ok = f.apply(r)
		}
	}
	if !ok {
		return dst, false
	}
	return appendResult(dst, r), true
}

func (f filter) apply(r gjson.Result) (gjson.Result, bool) {
	switch f.name {
	case "string":
		if r.Type == gjson.String {
			return r, true
		}
		return gjson.Result{Type: gjson.String, Str: r.String()}, r.Type != gjson.JSON
	case "number":
		n, err := strconv.ParseFloat(strings.TrimSpace(r.String()), 64)
		if err != nil {
			return r, false
		}
		return gjson.Result{Type: gjson.Number, Num: n, Raw: strconv.FormatFloat(n, 'f', -1, 64)}, true
	case "iso8601ms", "unix":
		t, ok := asTime(r)
		if !ok {
			return r, false
		}
		if f.name == "unix" {
			return gjson.Result{Type: gjson.Number, Raw: strconv.FormatInt(t.Unix(), 10)}, true
		}
		return gjson.Result{Type: gjson.String, Str: t.UTC().Format("2006-01-02T15:04:05.000Z")}, true
	case "map":
		v, found := f.arg[r.String()]
		if !found {
			return r, true
		}
		if gjson.Valid(v) {
			return gjson.Parse(v), true
		}
		return gjson.Result{Type: gjson.String, Str: v}, true
	}
	return r, true
}

// asTime reads RFC 3339 text, "2006-01-02 15:04:05 UTC" text or unix seconds.
func asTime(r gjson.Result) (time.Time, bool) {
	if r.Type == gjson.Number {
		sec := int64(r.Num)
		return time.Unix(sec, int64((r.Num-float64(sec))*1e9)).UTC(), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST"} {
		if t, err := time.Parse(layout, r.Str); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// docString views immutable event data as a string without copying, so that
// reading placeholders costs no allocation. Event data is never modified
// after it is built.
func docString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
