package jsondoc

import "github.com/tidwall/gjson"

// Paths is a fixed set of gjson paths that Resolve reads from a document in
// one pass, where gjson.Get would scan the document once per path (a path
// the document lacks scans all of it). Only plain paths take part: dotted
// components of letters, digits, '_' and '-', a number being an array
// index as well. Others (queries, wildcards, modifiers, escapes) are left
// out: Index reports -1 for them and callers read them with gjson.Get.
type Paths struct {
	list  []string
	index map[string]int
	root  pathNode
}

// pathNode is one component of the paths below it.
type pathNode struct {
	key  string
	num  int // key as an array index, -1 when it is none
	leaf int // index of the path ending here, -1 when none does
	kids []pathNode
}

// NewPaths compiles the plain paths among paths, once each.
func NewPaths(paths []string) *Paths {
	p := &Paths{index: map[string]int{}, root: pathNode{num: -1, leaf: -1}}
	for _, path := range paths {
		if _, seen := p.index[path]; seen || !plainPath(path) {
			continue
		}
		p.index[path] = len(p.list)
		p.list = append(p.list, path)
		p.root.add(path, len(p.list)-1)
	}
	return p
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
	r := gjson.Parse(doc)
	if r.Type != gjson.JSON {
		// gjson.Get looks for the first bracket even inside a scalar
		// document; no event or body is one, so that is left to gjson.
		for i, path := range p.list {
			out[i] = gjson.Get(doc, path)
		}
		return
	}
	w := walker{out: out, left: len(p.list)}
	w.walk(r, &p.root)
}

type walker struct {
	out  []gjson.Result
	left int // paths not found yet
}

// walk visits the members of the object or array r that n's children name.
func (w *walker) walk(r gjson.Result, n *pathNode) {
	r.ForEach(func(k, v gjson.Result) bool {
		for i := range n.kids {
			c := &n.kids[i]
			if k.Type == gjson.String && c.key != k.Str || k.Type == gjson.Number && c.num != int(k.Num) {
				continue
			}
			if c.leaf >= 0 && !w.out[c.leaf].Exists() {
				w.out[c.leaf] = v
				w.left--
			}
			if len(c.kids) > 0 && v.Type == gjson.JSON {
				w.walk(v, c)
			}
		}
		return w.left > 0
	})
}

func (n *pathNode) add(path string, leaf int) {
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
		c.leaf = leaf
		return
	}
	c.add(rest, leaf)
}

func cutDot(path string) (key, rest string, more bool) {
	for i := 0; i < len(path); i++ {
		if path[i] == '.' {
			return path[:i], path[i+1:], true
		}
	}
	return path, "", false
}

// arrayIndex reads a component of digits as gjson reads an array index.
func arrayIndex(key string) int {
	if len(key) > 9 {
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
