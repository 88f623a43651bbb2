package transform

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Rule derives events from exchanges that match it. Presets are rules written
// as data; users write the same rules in their configuration.
type Rule struct {
	// Name identifies the rule in errors and logs.
	Name  string `json:"name,omitempty"`
	Match Match  `json:"match"`
	// Stream names the decoder for a text/event-stream response (see
	// streamDecoders), e.g. "openai_chat".
	Stream string `json:"stream,omitempty"`
	// Fields set event data; each takes the first source that has a value.
	Fields []Field `json:"fields,omitempty"`
	// Emit lists the events the rule produces from one exchange.
	Emit []Emit `json:"emit"`
}

// Match selects exchanges. Every non-empty criterion must hold; within one
// criterion any listed value may match.
type Match struct {
	Methods []string `json:"methods,omitempty"`
	// Paths are patterns: segments match literally, "{name}" captures one
	// segment (readable as request.path.name), "*" matches one segment, a
	// leading "*/" any number of leading segments and a trailing "/*" any
	// number of trailing ones.
	Paths []string `json:"paths,omitempty"`
	// Status are codes ("200") or classes ("2xx"); "0" matches an exchange
	// that got no response (upstream down).
	Status []string `json:"status,omitempty"`
	// ContentTypes match the request's media type, by exact value or a
	// "type/*" wildcard.
	ContentTypes []string `json:"content_types,omitempty"`
}

// Field sets one event path from the first of its sources that has a value.
type Field struct {
	To   string   `json:"to"`
	From []string `json:"from"`
}

// Emit produces one event of a type, optionally only when a field of the
// event has a value (If) or has none (Unless). Fields set data for this
// event only, on top of the rule's.
type Emit struct {
	Event  string  `json:"event"`
	If     string  `json:"if,omitempty"`
	Unless string  `json:"unless,omitempty"`
	Fields []Field `json:"fields,omitempty"`
}

type compiledRule struct {
	name    string
	methods []string
	paths   []pathPattern
	status  []string
	ctypes  []string
	stream  streamDecoder
	fields  []compiledField
	emit    []compiledEmit
}

type compiledEmit struct {
	Emit
	fields []compiledField
}

type compiledField struct {
	to   string
	from []source
}

func compileRule(r Rule) (*compiledRule, error) {
	c := &compiledRule{name: r.Name, ctypes: r.Match.ContentTypes}
	fail := func(format string, args ...any) (*compiledRule, error) {
		return nil, fmt.Errorf("rule %q: "+format, append([]any{r.Name}, args...)...)
	}
	for _, m := range r.Match.Methods {
		c.methods = append(c.methods, strings.ToUpper(m))
	}
	for _, p := range r.Match.Paths {
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*/") {
			return fail("path pattern %q must start with / or */", p)
		}
		pp := pathPattern{anyPrefix: strings.HasPrefix(p, "*/")}
		trimmed := strings.TrimPrefix(strings.Trim(p, "/"), "*/")
		if rest, ok := strings.CutSuffix(trimmed, "/*"); ok && p != "/*" {
			pp.anySuffix, trimmed = true, rest
		}
		pp.segs = strings.Split(trimmed, "/")
		for _, s := range pp.segs {
			if _, err := path.Match(s, ""); err != nil {
				return fail("path pattern %q: bad segment %q", p, s)
			}
		}
		c.paths = append(c.paths, pp)
	}
	for _, s := range r.Match.Status {
		if !validStatus(s) {
			return fail("status %q: write a code such as 200, a class such as 2xx, or 0 for no response", s)
		}
		c.status = append(c.status, strings.ToLower(s))
	}
	if r.Stream != "" {
		d, ok := streamDecoders[r.Stream]
		if !ok {
			return fail("unknown stream decoder %q", r.Stream)
		}
		c.stream = d
	}
	var err error
	if c.fields, err = compileFields(r.Fields); err != nil {
		return fail("%v", err)
	}
	if len(r.Emit) == 0 {
		return fail("emits no event: add an event type")
	}
	for _, e := range r.Emit {
		if !isEventType(e.Event) {
			return fail("unknown event type %q; known types: %s", e.Event, strings.Join(EventTypes, ", "))
		}
		for _, cond := range []string{e.If, e.Unless} {
			if cond != "" && !knownField(cond) && cond != "id" {
				return fail("condition on unknown event field %q", cond)
			}
		}
		ce := compiledEmit{Emit: e}
		if ce.fields, err = compileFields(e.Fields); err != nil {
			return fail("%s: %v", e.Event, err)
		}
		c.emit = append(c.emit, ce)
	}
	return c, nil
}

func compileFields(fields []Field) ([]compiledField, error) {
	var out []compiledField
	for _, f := range fields {
		if !knownField(f.To) {
			return nil, fmt.Errorf("unknown event field %q (see the canonical fields in the README; custom data goes under extra.)", f.To)
		}
		if len(f.From) == 0 {
			return nil, fmt.Errorf("field %q has no source", f.To)
		}
		cf := compiledField{to: f.To}
		for _, s := range f.From {
			src, err := parseSource(s)
			if err != nil {
				return nil, fmt.Errorf("field %q: %v", f.To, err)
			}
			cf.from = append(cf.from, src)
		}
		out = append(out, cf)
	}
	return out, nil
}

func isEventType(t string) bool {
	for _, k := range EventTypes {
		if k == t {
			return true
		}
	}
	return false
}

func validStatus(s string) bool {
	if len(s) == 3 && s[0] >= '1' && s[0] <= '5' && strings.EqualFold(s[1:], "xx") {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && (n == 0 || (n >= 100 && n <= 599))
}

// matches reports whether the exchange is for this rule, and captures named
// path segments into v.
func (c *compiledRule) matches(v *view) bool {
	if len(c.status) > 0 && !c.matchStatus(v.ex.Status) {
		return false
	}
	return c.matchesRequest(v)
}

// matchesRequest applies the criteria known before the response.
func (c *compiledRule) matchesRequest(v *view) bool {
	ex := v.ex
	if len(c.methods) > 0 && !contains(c.methods, ex.Method) {
		return false
	}
	if len(c.ctypes) > 0 && !matchMediaType(c.ctypes, mediaType(ex.RequestHeader)) {
		return false
	}
	if len(c.paths) == 0 {
		return true
	}
	segs := strings.Split(strings.Trim(ex.Path, "/"), "/")
	for _, p := range c.paths {
		if p.match(segs, v) {
			return true
		}
	}
	return false
}

// pathPattern is a compiled path pattern; see Match.Paths.
type pathPattern struct {
	segs      []string
	anyPrefix bool // "*/..." : any number of leading segments
	anySuffix bool // ".../*" : one or more trailing segments
}

func (p pathPattern) match(segs []string, v *view) bool {
	n := len(p.segs)
	switch {
	case p.anyPrefix && p.anySuffix:
		for i := 0; i+n < len(segs); i++ {
			if p.matchAt(segs[i:i+n], v) {
				return true
			}
		}
		return false
	case p.anyPrefix:
		return len(segs) >= n && p.matchAt(segs[len(segs)-n:], v)
	case p.anySuffix:
		return len(segs) > n && p.matchAt(segs[:n], v)
	default:
		return len(segs) == n && p.matchAt(segs, v)
	}
}

// matchAt matches segment by segment, capturing {name} segments into v.
func (p pathPattern) matchAt(segs []string, v *view) bool {
	mark := len(v.params)
	for i, want := range p.segs {
		if len(want) > 2 && want[0] == '{' && want[len(want)-1] == '}' {
			v.params = append(v.params, want[1:len(want)-1], segs[i])
			continue
		}
		if ok, _ := path.Match(want, segs[i]); !ok {
			v.params = v.params[:mark]
			return false
		}
	}
	return true
}

func (c *compiledRule) matchStatus(code int) bool {
	s := strconv.Itoa(code)
	for _, want := range c.status {
		if want == s || (len(want) == 3 && want[1:] == "xx" && code/100 == int(want[0]-'0')) {
			return true
		}
	}
	return false
}

func matchMediaType(patterns []string, mt string) bool {
	for _, p := range patterns {
		p = strings.ToLower(p)
		if p == mt || (strings.HasSuffix(p, "/*") && strings.HasPrefix(mt, p[:len(p)-1])) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// CheckRule reports what is wrong with a rule, or nil.
func CheckRule(r Rule) error {
	_, err := compileRule(r)
	return err
}
