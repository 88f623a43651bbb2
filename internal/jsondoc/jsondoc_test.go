package jsondoc

import (
	"strings"
	"testing"
)

// entries reads "path=raw" pairs separated by spaces.
func entries(s string) []Entry {
	var out []Entry
	for _, f := range strings.Fields(s) {
		path, raw, _ := strings.Cut(f, "=")
		out = append(out, Entry{Path: path, Raw: []byte(raw)})
	}
	return out
}

func TestBuildNestsDottedPathsInFirstSeenOrder(t *testing.T) {
	for _, tc := range []struct {
		name, entries, want string
	}{
		{"empty", "", `{}`},
		{"flat", `a=1 b="x"`, `{"a":1,"b":"x"}`},
		{"shared parents, first-seen order", `c.id="c1" channel="api" c.ai=true m.text="hi" c.x.y=2 m.dir="in"`,
			`{"c":{"id":"c1","ai":true,"x":{"y":2}},"channel":"api","m":{"text":"hi","dir":"in"}}`},
		{"a later entry replaces an earlier one in its place", `a=1 b=2 a=3 c.d=4 c.d=5`, `{"a":3,"b":2,"c":{"d":5}}`},
		{"a leaf and a parent of one name are both written", `x=1 x.y=2 z=3 x=4`, `{"x":4,"x":{"y":2},"z":3}`},
		{"a parent before a leaf of its name", `x.y=2 x=1`, `{"x":{"y":2},"x":1}`},
		{"deep", `a.b.c.d=1 a.b.e=2 a.f=3 g=4 a.b.c.h=5`, `{"a":{"b":{"c":{"d":1,"h":5},"e":2},"f":3},"g":4}`},
		{"names that share a beginning", `ab.c=1 a.c=2 a=3 abc=4`, `{"ab":{"c":1},"a":{"c":2},"a":3,"abc":4}`},
		{"names that need escaping", `q"x=1 p.t\u0001=2`, `{"q\"x":1,"p":{"t\u0001":2}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := entries(strings.ReplaceAll(tc.entries, `\u0001`, "\x01"))
			if got := string(Build(nil, e)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// treeDoc is Build's document made another way, as the fuzz test's oracle:
// a tree of members, each (name, leaf or parent) once, in first-seen order.
type treeDoc struct {
	names   []string
	parent  []bool
	leaf    [][]byte
	members []*treeDoc
}

func (d *treeDoc) member(name string, parent bool) int {
	for i := range d.names {
		if d.names[i] == name && d.parent[i] == parent {
			return i
		}
	}
	d.names, d.parent = append(d.names, name), append(d.parent, parent)
	d.leaf, d.members = append(d.leaf, nil), append(d.members, &treeDoc{})
	return len(d.names) - 1
}

func (d *treeDoc) add(path string, raw []byte) {
	name, rest, nested := strings.Cut(path, ".")
	i := d.member(name, nested)
	if nested {
		d.members[i].add(rest, raw)
		return
	}
	d.leaf[i] = raw
}

func (d *treeDoc) appendTo(dst []byte) []byte {
	dst = append(dst, '{')
	for i, name := range d.names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(AppendString(dst, name), ':')
		if d.parent[i] {
			dst = d.members[i].appendTo(dst)
		} else {
			dst = append(dst, d.leaf[i]...)
		}
	}
	return append(dst, '}')
}

// FuzzBuild compares Build with the tree oracle on entries "path=raw", one
// a line.
func FuzzBuild(f *testing.F) {
	f.Add("c.id=1\nchannel=2\nc.ai=3\nm.t=4\nc.x.y=5\nx=6\nx.y=7\nx=8")
	f.Add("a.b.c=1\na.b=2\na=3\na.b.c=4")
	f.Fuzz(func(t *testing.T, lines string) {
		var es []Entry
		tree := &treeDoc{}
		for _, line := range strings.Split(lines, "\n") {
			path, raw, ok := strings.Cut(line, "=")
			if !ok || path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
				continue
			}
			es = append(es, Entry{Path: path, Raw: []byte(raw)})
			tree.add(path, []byte(raw))
		}
		if got, want := string(Build(nil, es)), string(tree.appendTo(nil)); got != want {
			t.Errorf("entries %q\ngot  %s\nwant %s", lines, got, want)
		}
	})
}
