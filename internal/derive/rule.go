package derive

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/tidwall/gjson"
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
	// Each makes the rule emit once per element of a list in the traffic,
	// such as every message of a batched webhook. The first entry is a
	// source whose value is the list (a single value is a list of one); each
	// later entry is a gjson path into the previous level's elements. Sources
	// read the innermost element as item.<path> and the element enclosing it
	// as parent.<path>.
	Each []string `json:"each,omitempty"`
	// Fields set event data; each takes the first source that has a value.
	Fields []Field `json:"fields,omitempty"`
	// Emit lists the events the rule produces from one exchange (or item).
	Emit []Emit `json:"emit"`
}

// Match selects exchanges. Every non-empty criterion must hold; within one
// criterion any listed value may match.
type Match struct {
	Methods []string `json:"methods,omitempty"`
	// Paths are patterns: segments match literally, "{name}" captures one
	// segment (readable as request.path.name), "*" matches one segment, a
	// leading "*/" any number of leading segments and a trailing "/*" one
	// or more trailing ones.
	Paths []string `json:"paths,omitempty"`
	// Status are codes ("200") or classes ("2xx"); "0" matches an exchange
	// that got no response (upstream down).
	Status []string `json:"status,omitempty"`
	// ContentTypes match the request's media type, by exact value or a
	// "type/*" wildcard.
	ContentTypes []string `json:"content_types,omitempty"`
	// When are conditions on sources, checked after the criteria above, for
	// traffic told apart by its body, e.g. a webhook's "object" member.
	When []Cond `json:"when,omitempty"`
}

// Cond tests one value: it holds when the value is present (not absent,
// null or "") and, if In is given, its text is one of In (a number, boolean
// or string reads as its plain text: 1, true, open). Not inverts the test.
type Cond struct {
	// Value is a source expression; in an Emit it may also be an event field.
	Value string   `json:"value"`
	In    []string `json:"in,omitempty"`
	Not   bool     `json:"not,omitempty"`
}

// Field sets one event path from the first of its sources that has a value.
type Field struct {
	To   string   `json:"to"`
	From []string `json:"from"`
}

// Emit produces one event of a type, optionally only when a field of the
// event has a value (If) or has none (Unless) and its When conditions hold.
// Fields set data for this event only, on top of the rule's.
type Emit struct {
	Event  string  `json:"event"`
	If     string  `json:"if,omitempty"`
	Unless string  `json:"unless,omitempty"`
	When   []Cond  `json:"when,omitempty"`
	Fields []Field `json:"fields,omitempty"`
}

type compiledRule struct {
	methods   []string
	paths     []pathPattern
	status    []int    // codes, and classes 1 to 5 for "1xx" to "5xx"
	ctypes    []string // lower-cased
	when      []compiledCond
	stream    streamDecoder
	each      *source
	eachPaths []string
	fields    []compiledField
	emit      []compiledEmit
	bodies    rulePaths
}

// rulePaths are the body paths a rule's sources read (and those of the
// configured conversation id and defaults, read with every rule's), each
// body's read in one pass.
type rulePaths struct {
	reqList, respList []string
	req, resp         *jsondoc.Paths
}

// compilePaths gathers the body paths of the rule and of convID and
// defaults.
func (c *compiledRule) compilePaths(convID []source, defaults []compiledField) {
	p := rulePaths{}
	for i := range convID {
		p = convID[i].bodyPaths(p)
	}
	conds := c.when
	for _, fields := range [][]compiledField{defaults, c.fields} {
		for _, f := range fields {
			for i := range f.from {
				p = f.from[i].bodyPaths(p)
			}
		}
	}
	for _, e := range c.emit {
		conds = append(conds[:len(conds):len(conds)], e.when...)
		for _, f := range e.fields {
			for i := range f.from {
				p = f.from[i].bodyPaths(p)
			}
		}
	}
	for i := range conds {
		p = conds[i].src.bodyPaths(p)
	}
	p.req, p.resp = jsondoc.NewPaths(p.reqList), jsondoc.NewPaths(p.respList)
	c.bodies = p
}

type compiledEmit struct {
	Emit
	when   []compiledCond
	fields []compiledField
}

// compiledCond tests an event field when field is set, else src.
type compiledCond struct {
	field string
	src   source
	in    []string
	not   bool
}

type compiledField struct {
	to   string
	from []source
}

func compileRule(r Rule) (*compiledRule, error) {
	c := &compiledRule{}
	fail := func(format string, args ...any) (*compiledRule, error) {
		return nil, fmt.Errorf("rule %q: "+format, append([]any{r.Name}, args...)...)
	}
	for _, m := range r.Match.Methods {
		c.methods = append(c.methods, strings.ToUpper(m))
	}
	for _, t := range r.Match.ContentTypes {
		c.ctypes = append(c.ctypes, strings.ToLower(t))
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
			pp.literal = append(pp.literal, !strings.ContainsAny(s, `*?[\`))
		}
		c.paths = append(c.paths, pp)
	}
	for _, s := range r.Match.Status {
		st, ok := parseStatus(s)
		if !ok {
			return fail("status %q: write a code such as 200, a class such as 2xx, or 0 for no response", s)
		}
		c.status = append(c.status, st)
	}
	if len(r.Each) > 0 {
		each, err := parseSource(r.Each[0])
		if err != nil {
			return fail("each: %v", err)
		}
		c.each, c.eachPaths = &each, r.Each[1:]
	}
	// item. sources need one level of each, parent. sources two.
	items := len(r.Each)
	var err error
	if c.when, err = compileConds(r.Match.When, false, 0); err != nil {
		return fail("match when: %v", err)
	}
	if r.Stream != "" {
		d, ok := streamDecoders[r.Stream]
		if !ok {
			return fail("unknown stream decoder %q", r.Stream)
		}
		c.stream = d
	}
	if c.fields, err = compileFields(r.Fields, items); err != nil {
		return fail("%v", err)
	}
	if len(r.Emit) == 0 {
		return fail("emits no event: add an event type")
	}
	for _, e := range r.Emit {
		if !event.IsType(e.Event) {
			return fail("unknown event type %q; known types: %s", e.Event, strings.Join(event.Types(), ", "))
		}
		for _, cond := range []string{e.If, e.Unless} {
			if cond != "" && !event.KnownField(cond) {
				return fail("condition on unknown event field %q", cond)
			}
		}
		ce := compiledEmit{Emit: e}
		if ce.when, err = compileConds(e.When, true, items); err != nil {
			return fail("%s: when: %v", e.Event, err)
		}
		if ce.fields, err = compileFields(e.Fields, items); err != nil {
			return fail("%s: %v", e.Event, err)
		}
		c.emit = append(c.emit, ce)
	}
	return c, nil
}

// compileFields compiles field sources; items is the number of each levels
// the rule has, which item. and parent. sources need.
func compileFields(fields []Field, items int) ([]compiledField, error) {
	var out []compiledField
	for _, f := range fields {
		if !event.KnownField(f.To) {
			return nil, fmt.Errorf("unknown event field %q (see the canonical fields in the README; custom data goes under extra.)", f.To)
		}
		if len(f.From) == 0 {
			return nil, fmt.Errorf("field %q has no source", f.To)
		}
		cf := compiledField{to: f.To}
		for _, s := range f.From {
			src, err := parseItemSource(s, items)
			if err != nil {
				return nil, fmt.Errorf("field %q: %v", f.To, err)
			}
			cf.from = append(cf.from, src)
		}
		out = append(out, cf)
	}
	return out, nil
}

// compileConds compiles conditions; fields says whether a condition may test
// an event field (only an Emit's can: a Match's run before there is an event).
func compileConds(conds []Cond, fields bool, items int) ([]compiledCond, error) {
	var out []compiledCond
	for _, cd := range conds {
		cc := compiledCond{in: cd.In, not: cd.Not}
		if fields && event.KnownField(cd.Value) {
			cc.field = cd.Value
		} else {
			if _, err := parseSource(cd.Value); err != nil && fields {
				return nil, fmt.Errorf("%q is neither an event field nor a value source", cd.Value)
			}
			var err error
			if cc.src, err = parseItemSource(cd.Value, items); err != nil {
				return nil, err
			}
		}
		out = append(out, cc)
	}
	return out, nil
}

// parseItemSource parses a source and checks that the item. and parent.
// sources it uses have a rule-level each to read from.
func parseItemSource(s string, items int) (source, error) {
	src, err := parseSource(s)
	if err != nil {
		return src, err
	}
	for in := &src; in != nil; in = in.inner {
		if (in.kind == srcItem && items < 1) || (in.kind == srcParent && items < 2) {
			return src, fmt.Errorf("%q reads an element of each, but the rule's each has too few levels for it", s)
		}
	}
	return src, nil
}

// parseStatus reads a Match.Status entry: a code (0, or 100 to 599) as
// itself, a class ("2xx") as its digit, which no code can be.
func parseStatus(s string) (int, bool) {
	if len(s) == 3 && s[0] >= '1' && s[0] <= '5' && strings.EqualFold(s[1:], "xx") {
		return int(s[0] - '0'), true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && (n == 0 || (n >= 100 && n <= 599))
}

// matches reports whether the exchange is for this rule, and captures named
// path segments into v. The rule's stream decoder is chosen before its When
// conditions, which may read the response body.
func (c *compiledRule) matches(v *view) bool {
	if len(c.status) > 0 && !c.matchStatus(v.ex.Status) {
		return false
	}
	if !c.matchesRequest(v) {
		return false
	}
	if c.stream != nil && !v.respDone {
		v.respStream = c.stream
	}
	return condsHold(c.when, v, nil)
}

// condsHold reports whether every condition holds; data holds the event's
// fields for conditions on them.
func condsHold(conds []compiledCond, v *view, data *builtData) bool {
	for i := range conds {
		if conds[i].holds(v, data) == conds[i].not {
			return false
		}
	}
	return true
}

func (c *compiledCond) holds(v *view, data *builtData) bool {
	var r gjson.Result
	var ok bool
	if c.field != "" {
		r, ok = data.get(c.field)
	} else {
		r, ok = c.src.lookup(v)
	}
	if !ok || len(c.in) == 0 {
		return ok
	}
	return slices.Contains(c.in, r.String())
}

// matchesRequest applies the criteria known before the response.
func (c *compiledRule) matchesRequest(v *view) bool {
	ex := v.ex
	if len(c.methods) > 0 && !slices.Contains(c.methods, ex.Method) {
		return false
	}
	if len(c.ctypes) > 0 && !matchMediaType(c.ctypes, mediaType(ex.RequestHeader)) {
		return false
	}
	if len(c.paths) == 0 {
		return true
	}
	var buf [16]string
	segs := splitPath(buf[:0], ex.Path)
	for _, p := range c.paths {
		if p.match(segs, v) {
			return true
		}
	}
	return false
}

// splitPath appends the segments of path, as strings.Split of the path
// trimmed of slashes gives them, to segs, which may live on the stack.
func splitPath(segs []string, path string) []string {
	path = strings.Trim(path, "/")
	for {
		seg, rest, more := strings.Cut(path, "/")
		segs = append(segs, seg)
		if !more {
			return segs
		}
		path = rest
	}
}

// pathPattern is a compiled path pattern; see Match.Paths.
type pathPattern struct {
	segs []string
	// literal marks the segments without wildcards, which path.Match
	// would only compare.
	literal   []bool
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
		ok := want == segs[i]
		if !p.literal[i] {
			ok, _ = path.Match(want, segs[i])
		}
		if !ok {
			v.params = v.params[:mark]
			return false
		}
	}
	return true
}

func (c *compiledRule) matchStatus(code int) bool {
	for _, want := range c.status {
		if want == code || (want < 10 && code >= 100 && code/100 == want) {
			return true
		}
	}
	return false
}

// matchMediaType matches a lower-cased media type against lower-cased
// patterns.
func matchMediaType(patterns []string, mt string) bool {
	for _, p := range patterns {
		if p == mt || (strings.HasSuffix(p, "/*") && strings.HasPrefix(mt, p[:len(p)-1])) {
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
