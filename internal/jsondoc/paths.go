package jsondoc

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Paths is a fixed set of gjson paths that Resolve reads from a document in
// one pass, where gjson.Get would scan the document once per path (a path
// the document lacks scans all of it). These forms take part, where P and
// T are plain paths (dotted components of letters, digits, '_' and '-', a
// number being an array index as well) and v is text without quotes or
// backslashes:
//
//	P                              a plain path
//	P.#(T=="v")  P.#(T=="v").T     the first element of list P whose T is v
//	P.#(T=="v")#.T|@reverse|0      the T of the last such element that has one
//	[x,y,...]                      a list of those of the forms above found
//
// Others (wildcards, modifiers, escapes, other queries) are left out:
// Index reports -1 for them and callers read them with gjson.Get.
type Paths struct {
	list    []string
	index   map[string]int
	root    pathNode
	queries []pathQuery
	groups  []queryGroup
	multis  []pathMulti
}

// pathNode is one component of the paths below it.
type pathNode struct {
	key     string
	num     int // key as an array index, -1 when it is none
	leaf    int // index of the path ending here, -1 when none does
	kids    []pathNode
	queries []int // queries on the list this node names
}

// pathQuery is a query on the elements of a list: #(key=="want").
type pathQuery struct {
	slot      int
	key, want string
	tail      string // what is read from the element; "" is the element
	last      bool   // the last element with a tail, not the first
	// keySlot and tailSlot are where its group's scan of an element puts
	// key and tail; tailSlot is -1 without a tail.
	keySlot, tailSlot int
}

// queryGroup is the queries on one list, answered in one pass over its
// elements.
type queryGroup struct {
	queries []int
	elem    pathNode // what the queries read from an element
	slots   int
}

// addGroups groups the queries of n and the nodes below it by list.
func (p *Paths) addGroups(n *pathNode) {
	if len(n.queries) > 0 {
		g := queryGroup{queries: n.queries, elem: pathNode{num: -1, leaf: -1}}
		slots := map[string]int{}
		slot := func(path string) int {
			i, ok := slots[path]
			if !ok {
				i = len(slots)
				slots[path] = i
				g.elem.add(path, i)
			}
			return i
		}
		for _, i := range n.queries {
			q := &p.queries[i]
			q.keySlot, q.tailSlot = slot(q.key), -1
			if q.tail != "" {
				q.tailSlot = slot(q.tail)
			}
		}
		g.slots = len(slots)
		p.groups = append(p.groups, g)
	}
	for i := range n.kids {
		p.addGroups(&n.kids[i])
	}
}

// pathMulti is [x,y,...]: the list of the subpaths' values.
type pathMulti struct {
	slot int
	subs []int
}

// maxQueries bounds the queries of one Paths, whose state Resolve keeps on
// the stack; further ones are left to gjson.
const maxQueries = 8

// NewPaths compiles the paths of the forms Paths reads, once each.
func NewPaths(paths []string) *Paths {
	p := &Paths{index: map[string]int{}, root: pathNode{num: -1, leaf: -1}}
	for _, path := range paths {
		p.add(path)
	}
	p.addGroups(&p.root)
	return p
}

// add compiles path and returns its slot, or -1 when it is of no form Paths
// reads.
func (p *Paths) add(path string) int {
	if i, seen := p.index[path]; seen {
		return i
	}
	slot := len(p.list)
	switch {
	case plainPath(path):
		p.root.add(path, slot)
	case strings.HasPrefix(path, "["):
		subs, ok := splitMulti(path)
		if !ok {
			return -1
		}
		m := pathMulti{slot: slot}
		for _, sub := range subs {
			i := p.add(sub)
			if i < 0 {
				return -1 // the subpaths added stay: they are read as well
			}
			m.subs = append(m.subs, i)
		}
		slot = len(p.list) // after the subpaths' slots
		m.slot = slot
		p.multis = append(p.multis, m)
	default:
		prefix, q, ok := parseQuery(path)
		if !ok || len(p.queries) == maxQueries {
			return -1
		}
		q.slot = slot
		p.root.addQuery(prefix, len(p.queries))
		p.queries = append(p.queries, q)
	}
	p.index[path] = slot
	p.list = append(p.list, path)
	return slot
}

// Len is the number of paths Resolve reads.
func (p *Paths) Len() int { return len(p.list) }

// Index returns the position of path in Resolve's results, -1 when path is
// not one of them.
func (p *Paths) Index(path string) int {
	if i, ok := p.index[path]; ok {
		return i
	}
	return -1
}

// Resolve sets out[i] (len(out) ≥ Len()) to what gjson.Get(doc, path i)
// returns (its Type, Raw, Str and Num). doc must be valid JSON, as bodies
// are once checked and event data always is. Like gjson, a path takes the
// first member of a name in which the rest of the path is found.
func (p *Paths) Resolve(doc string, out []gjson.Result) {
	out = out[:len(p.list)]
	clear(out)
	if len(p.list) == 0 {
		return
	}
	start := skipSpace(doc, 0)
	if start == len(doc) || doc[start] != '{' && doc[start] != '[' {
		// gjson.Get looks for the first bracket even inside a scalar
		// document; no event or body is one, so that is left to gjson.
		for i, path := range p.list {
			out[i] = gjson.Get(doc, path)
		}
		return
	}
	w := walker{out: out, left: len(p.list) - len(p.queries) - len(p.multis), queries: len(p.queries) > 0}
	var lists listsSeen
	w.scan(doc, start, &p.root, &lists)
	for g := range p.groups {
		g := &p.groups[g]
		first := g.queries[0] // the queries of a group see the same lists
		switch {
		case lists.seen[first] == 0:
			// No list of that name: nothing matches.
		case lists.seen[first] == 1 && lists.at[first].IsArray():
			g.find(lists.at[first].Raw, p.queries, out)
		default:
			// Several lists of that name, where gjson's choice depends on
			// their elements, or no list: rare enough to leave to gjson.
			for _, i := range g.queries {
				out[p.queries[i].slot] = gjson.Get(doc, p.list[p.queries[i].slot])
			}
		}
	}
	for _, m := range p.multis {
		out[m.slot] = multiResult(out, m.subs)
	}
}

// find sets the results of the group's queries in list, a JSON array,
// reading each element once for all of them.
func (g *queryGroup) find(list string, queries []pathQuery, out []gjson.Result) {
	var matched, found [maxQueries]bool
	searching := 0 // queries for the first match that have none yet
	for _, i := range g.queries {
		if !queries[i].last {
			searching++
		}
	}
	stop := searching == len(g.queries) // no query wants the last match
	var res [2 * maxQueries]gjson.Result
	for i := 1; ; {
		if i = skipSpace(list, i); i >= len(list) || list[i] == ']' {
			break
		}
		end := skipValue(list, i)
		if end == i {
			break // not JSON: a delimiter where a value should be
		}
		if el := list[i:end]; el[0] == '{' || el[0] == '[' {
			clear(res[:g.slots])
			w := walker{out: res[:g.slots], left: g.slots}
			w.scan(el, 0, &g.elem, nil) // an element's paths hold no queries
			for k, qi := range g.queries {
				q := &queries[qi]
				if found[k] || !queryEquals(res[q.keySlot], q.want) {
					continue
				}
				matched[k] = true
				var v gjson.Result
				if q.tailSlot >= 0 {
					v = res[q.tailSlot]
				} else {
					v = valueAt(el)
				}
				switch {
				case !q.last:
					out[q.slot], found[k] = v, true
					searching--
				case v.Exists():
					out[q.slot] = v
				}
			}
			if stop && searching == 0 {
				return
			}
		}
		if i = skipSpace(list, end); i < len(list) && list[i] == ',' {
			i++
		}
	}
	for k, qi := range g.queries {
		if q := &queries[qi]; q.last && !matched[k] {
			// gjson applies "|@reverse|0" only once an element matched:
			// the value is the empty list of matches.
			out[q.slot] = gjson.Result{Type: gjson.JSON, Raw: "[]"}
		}
	}
}

// queryEquals is gjson's test of #(key=="want") on the element's key value v.
func queryEquals(v gjson.Result, want string) bool {
	switch v.Type {
	case gjson.String:
		return v.Str == want
	case gjson.Number:
		n, _ := strconv.ParseFloat(want, 64)
		return v.Num == n
	case gjson.True:
		return want == "true"
	case gjson.False:
		return want == "false"
	}
	return false
}

// multiResult is gjson's value of [x,y,...]: a list of the values found.
func multiResult(out []gjson.Result, subs []int) gjson.Result {
	size := 2
	for _, i := range subs {
		size += len(out[i].Raw) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	for _, i := range subs {
		if !out[i].Exists() {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, out[i].Raw...)
	}
	return gjson.Result{Type: gjson.JSON, Raw: StringView(append(b, ']'))} // b is not written again
}

type walker struct {
	out  []gjson.Result
	left int // plain paths not found yet
	// queries says the walk goes on to the end: a query needs to know how
	// many lists of its name there are.
	queries bool
}

// listsSeen are the lists each query's name was found with, and how many
// (up to 2). Kept apart from the walker so that the results it holds stay
// on the caller's stack.
type listsSeen struct {
	seen [maxQueries]uint8
	at   [maxQueries]gjson.Result
}

// done says every path is found and nothing is left to count.
func (w *walker) done() bool { return w.left == 0 && !w.queries }

// scan visits the members of the object or array at doc[i] that n's
// children name, descending into those with children of their own, and
// returns the index after its end (any index once the walk is done).
// Members no path names are skipped without being parsed. doc is valid
// JSON; were it not, the results would be wrong but the scan stays within
// doc.
func (w *walker) scan(doc string, i int, n *pathNode, lists *listsSeen) int {
	obj := doc[i] == '{'
	i++
	for idx := 0; ; idx++ {
		i = skipSpace(doc, i)
		if i >= len(doc) {
			return len(doc)
		}
		if doc[i] == '}' || doc[i] == ']' {
			return i + 1
		}
		var key string
		if obj {
			start := i
			var esc, closed bool
			if i, esc, closed = scanString(doc, i); !closed {
				return len(doc)
			}
			if key = doc[start+1 : i-1]; esc {
				key = gjson.Parse(doc[start:i]).Str
			}
			if i = skipSpace(doc, skipSpace(doc, i)+1); i >= len(doc) { // past the colon
				return len(doc)
			}
		}
		start, end := i, -1
		for k := range n.kids {
			c := &n.kids[k]
			if obj && c.key != key || !obj && c.num != idx {
				continue
			}
			if len(c.kids) > 0 && (doc[start] == '{' || doc[start] == '[') {
				if end = w.scan(doc, start, c, lists); w.done() {
					return end
				}
			}
			if (c.leaf < 0 || w.out[c.leaf].Exists()) && len(c.queries) == 0 {
				continue
			}
			if end < 0 {
				end = skipValue(doc, start)
			}
			v := valueAt(doc[start:end])
			if c.leaf >= 0 && !w.out[c.leaf].Exists() {
				w.out[c.leaf] = v
				if w.left--; w.done() {
					return end
				}
			}
			for _, q := range c.queries {
				if lists.seen[q] < 2 {
					lists.seen[q]++
				}
				lists.at[q] = v
			}
		}
		if end < 0 {
			end = skipValue(doc, start)
		}
		if i = skipSpace(doc, end); i < len(doc) && doc[i] == ',' {
			i++
		}
	}
}

// valueAt is gjson's result for the whole of raw, one JSON value: what
// gjson.Parse(raw) gives, written out for the common cases.
func valueAt(raw string) gjson.Result {
	if raw == "" {
		return gjson.Result{}
	}
	switch raw[0] {
	case '{', '[':
		return gjson.Result{Type: gjson.JSON, Raw: raw}
	case '"':
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			break // not JSON: a string without its end
		}
		if s := raw[1 : len(raw)-1]; strings.IndexByte(s, '\\') < 0 {
			return gjson.Result{Type: gjson.String, Raw: raw, Str: s}
		}
	case 't':
		return gjson.Result{Type: gjson.True, Raw: raw}
	case 'f':
		return gjson.Result{Type: gjson.False, Raw: raw}
	case 'n':
		return gjson.Result{Type: gjson.Null, Raw: raw}
	}
	return gjson.Parse(raw)
}

func skipSpace(doc string, i int) int {
	for i < len(doc) && doc[i] <= ' ' {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at doc[i].
func skipString(doc string, i int) int {
	i, _, _ = scanString(doc, i)
	return i
}

// scanString returns the index after the string that starts at doc[i],
// whether it holds escapes, and whether it is closed (else the index is
// the document's end).
func scanString(doc string, i int) (end int, esc, closed bool) {
	for i++; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			i++
			esc = true
		case '"':
			return i + 1, esc, true
		}
	}
	return len(doc), esc, false
}

// skipValue returns the index after the value that starts at doc[i].
func skipValue(doc string, i int) int {
	if i >= len(doc) {
		return len(doc)
	}
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		depth := 0
		for ; i < len(doc); i++ {
			switch doc[i] {
			case '"':
				i = skipString(doc, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(doc) && doc[i] > ' ' && doc[i] != ',' && doc[i] != '}' && doc[i] != ']' {
		i++
	}
	return i
}

func (n *pathNode) add(path string, leaf int) {
	n.node(path).leaf = leaf
}

func (n *pathNode) addQuery(path string, q int) {
	c := n.node(path)
	c.queries = append(c.queries, q)
}

// node returns the node of a plain path, adding what is missing.
func (n *pathNode) node(path string) *pathNode {
	key, rest, more := cutDot(path)
	var c *pathNode
	for i := range n.kids {
		if n.kids[i].key == key {
			c = &n.kids[i]
		}
	}
	if c == nil {
		n.kids = append(n.kids, pathNode{key: key, num: arrayIndex(key), leaf: -1})
		c = &n.kids[len(n.kids)-1]
	}
	if !more {
		return c
	}
	return c.node(rest)
}

// parseQuery reads P.#(T=="v"), P.#(T=="v").T and P.#(T=="v")#.T|@reverse|0.
func parseQuery(path string) (prefix string, q pathQuery, ok bool) {
	prefix, rest, ok := strings.Cut(path, ".#(")
	if !ok || !plainPath(prefix) {
		return "", q, false
	}
	key, rest, ok := strings.Cut(rest, `=="`)
	if !ok || !plainPath(key) {
		return "", q, false
	}
	want, rest, ok := strings.Cut(rest, `")`)
	if !ok || strings.ContainsAny(want, `"\`) || strings.HasPrefix(want, "~") {
		return "", q, false
	}
	q = pathQuery{key: key, want: want}
	if tail, last := strings.CutSuffix(rest, "|@reverse|0"); last {
		q.tail, ok = strings.CutPrefix(tail, "#.")
		q.last = true
		return prefix, q, ok && plainPath(q.tail)
	}
	if rest == "" {
		return prefix, q, true
	}
	q.tail, ok = strings.CutPrefix(rest, ".")
	return prefix, q, ok && plainPath(q.tail)
}

// splitMulti splits [x,y,...] into its subpaths, as gjson does for those
// without quotes, brackets, escapes or names.
func splitMulti(path string) ([]string, bool) {
	inner, ok := strings.CutSuffix(path[1:], "]")
	if !ok || inner == "" {
		return nil, false
	}
	var subs []string
	for sub := range strings.SplitSeq(inner, ",") {
		subs = append(subs, sub)
	}
	return subs, true
}

func cutDot(path string) (key, rest string, more bool) {
	for i := 0; i < len(path); i++ {
		if path[i] == '.' {
			return path[:i], path[i+1:], true
		}
	}
	return path, "", false
}

// arrayIndex reads a component of digits as gjson reads an array index;
// one beyond any list's length is -1, as one that is no number.
func arrayIndex(key string) int {
	digits := strings.TrimLeft(key, "0")
	if len(digits) > 18 {
		return -1
	}
	n := 0
	for i := 0; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return -1
		}
		n = n*10 + int(key[i]-'0')
	}
	return n
}

// plainPath reports whether every component of path is made of letters,
// digits, '_' and '-' only, which gjson reads as a member name (or an array
// index).
func plainPath(path string) bool {
	if path == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(path); i++ {
		if i == len(path) || path[i] == '.' {
			if i == start {
				return false
			}
			start = i + 1
			continue
		}
		c := path[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Fields reads paths of one document: those of its Paths from one pass
// over the document, made the first time one is read, others with
// gjson.Get.
type Fields struct {
	doc      string
	paths    *Paths
	res      []gjson.Result
	resolved bool
}

// NewFields reads doc; paths may be nil. buf, when it is long enough,
// holds the results of paths, so that they need no allocation.
func NewFields(doc string, paths *Paths, buf []gjson.Result) Fields {
	return Fields{doc: doc, paths: paths, res: buf}
}

// Doc is the document.
func (f *Fields) Doc() string { return f.doc }

// Get returns what gjson.Get(doc, path) returns.
func (f *Fields) Get(path string) gjson.Result {
	if f.paths != nil {
		if i := f.paths.Index(path); i >= 0 {
			if !f.resolved {
				if len(f.res) < f.paths.Len() {
					f.res = make([]gjson.Result, f.paths.Len())
				}
				f.paths.Resolve(f.doc, f.res)
				f.resolved = true
			}
			return f.res[i]
		}
	}
	return gjson.Get(f.doc, path)
}

// List returns the paths Resolve reads, in the order of their results.
func (p *Paths) List() []string { return p.list }
