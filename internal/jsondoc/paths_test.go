package jsondoc

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// sameResult reports whether Resolve's result is gjson.Get's in everything
// callers read.
func sameResult(a, b gjson.Result) bool {
	return a.Type == b.Type && a.Raw == b.Raw && a.Str == b.Str && (a.Num == b.Num || a.Num != a.Num && b.Num != b.Num)
}

// checkPaths resolves paths in doc at once and compares every plain one
// with gjson.Get.
func checkPaths(t testing.TB, doc string, paths []string) {
	t.Helper()
	p := NewPaths(paths)
	out := make([]gjson.Result, p.Len())
	p.Resolve(doc, out)
	for _, path := range paths {
		i := p.Index(path)
		if i < 0 {
			if plainPath(path) {
				t.Errorf("plain path %q left out", path)
			}
			continue
		}
		if want := gjson.Get(doc, path); !sameResult(out[i], want) {
			t.Errorf("doc %s path %q: got %+v, gjson.Get gives %+v", doc, path, out[i], want)
		}
	}
}

func TestPathsResolveAsGjsonGet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		doc   string
		paths []string
	}{
		{"event data", `{"conversation":{"id":"c1","ai_enabled":true},"channel":"api","contact":{"id":"visitor-7"},"message":{"content":"When?","direction":"incoming"},"reply":{"id":"chatcmpl-42","content":"Tomorrow."},"extra":{"model":"gpt-test"},"agent":{"id":"agent_1","name":"Support Bot"}}`,
			[]string{"conversation.id", "conversation.status", "conversation.assignee.id", "agent.id", "agent.name", "channel", "account.id", "contact.name", "message.content", "reply.id", "message.id", "extra.model", "extra", "conversation"}},
		{"chat completion", `{"id":"chatcmpl-42","object":"chat.completion","created":1730000000,"model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Your order ships tomorrow."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31}}`,
			[]string{"id", "choices.0.message.content", "choices.0.message.refusal", "choices.0.message.tool_calls", "choices.1.message", "choices.0", "model", "usage.prompt_tokens", "created"}},
		{"first member in which the path is found", `{"a":{"x":1},"a":{"b":2},"a":3,"c":"s","c":{"d":4}}`,
			[]string{"a", "a.b", "a.x", "c", "c.d"}},
		{"numeric names: indexes of arrays, member names of objects", `{"l":[[1,2],{"0":"zero"},"s"],"o":{"0":"a","1":{"x":"b"}}}`,
			[]string{"l.0.1", "l.1.0", "l.2", "l.3", "o.0", "o.1.x", "l.00.0", "l.x"}},
		{"escaped names and values", `{"a\"b":1,"c\u0064":"\u00e9\n","e":{"f\\g":true}}`,
			[]string{"cd", "e", "a", "cd.x"}},
		{"top-level array", `[{"id":1},{"id":2}]`, []string{"0.id", "1.id", "2.id", "id"}},
		{"scalar document", `"x{\"a\":1}"`, []string{"a", "x"}},
		{"queries on a chat request", `{"model":"m","user":"visitor-7","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":[{"type":"text","text":"When?"}]},{"role":"user"}]}`,
			[]string{`messages.#(role=="user")#.content|@reverse|0`, `messages.#(role=="system").content`, `messages.#(role=="user").content`,
				`[user,messages.#(role=="system").content,messages.#(role=="user").content]`, `messages.#(role=="tool").content`,
				`messages.#(role=="assistant")`, `[metadata,user]`, `[user,messages.#(role=="tool").content]`, `messages.#(role=="tool")#.content|@reverse|0`}},
		{"queries: gjson's equality on numbers, booleans and missing members", `{"l":[{"k":0},{"k":"0"},{"k":true,"t":1},{"k":false,"t":2},{"k":null,"t":3},{"t":4},"k",[{"k":"a"}],{"k":"a","t":5},{"k":"a","t":6}]}`,
			[]string{`l.#(k=="x").t`, `l.#(k=="0")`, `l.#(k=="true").t`, `l.#(k=="false").t`, `l.#(k=="null").t`, `l.#(k=="a")#.t|@reverse|0`, `l.#(k=="a").t`, `l.#(k=="").t`}},
		{"queries on lists of the same name, or no list", `{"m":[{"r":"a"}],"m":[{"r":"u","c":1}],"n":{"r":"u"},"s":"x"}`,
			[]string{`m.#(r=="u").c`, `m.#(r=="u")#.c|@reverse|0`, `n.#(r=="u")`, `s.#(r=="u")`, `x.#(r=="u").c`, `x.#(r=="u")#.c|@reverse|0`, `[m.#(r=="u").c,s]`}},
		{"paths that are not read at once", `{"a":[{"r":"u","c":1},{"r":"u","c":2}],"b.c":3}`,
			[]string{"a.#", `b\.c`, "a.*", "@this", "a|0", `a.#(r!="u").c`, `a.#(r=="u")#.c`, `a.#(r=="~true")`, `[a,b:c]`, `[a, b]`, `{a}`, `[a,[b]]`}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkPaths(t, tc.doc, tc.paths) })
	}
}

// FuzzPaths compares Resolve with gjson.Get on any valid document and any
// paths (one per line).
func FuzzPaths(f *testing.F) {
	f.Add(`{"a":{"b":[1,{"c":"x"}]},"a":{"d":null},"e":"f"}`, "a.b.1.c\na.d\na\ne\ne.f\na.b.0")
	f.Add(`{"conversation":{"id":"c1"},"message":{"content":"hi"}}`, "conversation.id\nmessage.content\nreply.id")
	f.Add(`[[1],[2,[3]]]`, "1.1.0\n0.0\n0")
	f.Add(`{"user":"u","messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"user","content":"b"}]}`,
		"messages.#(role==\"user\")#.content|@reverse|0\n[user,messages.#(role==\"system\").content,messages.#(role==\"user\").content]\nmessages.#(role==\"user\")")
	f.Fuzz(func(t *testing.T, doc, paths string) {
		if !gjson.Valid(doc) {
			// Documents are checked JSON; were one not, reading it must
			// still not panic.
			p := NewPaths(strings.Split(paths, "\n"))
			p.Resolve(doc, make([]gjson.Result, p.Len()))
			return
		}
		checkPaths(t, doc, strings.Split(paths, "\n"))
	})
}

// FuzzQueries compares Resolve with gjson.Get on queries of every form
// Paths reads, built from the fuzzed list name, member names and value.
func FuzzQueries(f *testing.F) {
	f.Add(`{"m":[{"r":"u","c":"a"},{"r":"s","c":1},{"r":"u"},{"r":"u","c":[{"text":"b"}]}]}`, "m", "r", "u", "c")
	f.Add(`{"m":[{"r":"1"},{"r":1,"c":"a"},{"r":true},"x",[{"r":"1"}]]}`, "m", "r", "1", "c")
	f.Add(`{"m":[{"r":"a"}],"m":[{"r":"u","c":1}]}`, "m", "r", "u", "c")
	f.Add(`{"a":{"l":[[{"k":"v"}],{"0":"v","t":{"x":2}}]}}`, "a.l", "0", "v", "t.x")
	f.Fuzz(func(t *testing.T, doc, list, key, want, tail string) {
		q := list + `.#(` + key + `=="` + want + `")`
		paths := []string{q, q + "." + tail, q + "#." + tail + "|@reverse|0", "[" + q + "." + tail + "," + list + "]"}
		if !gjson.Valid(doc) {
			p := NewPaths(paths)
			p.Resolve(doc, make([]gjson.Result, p.Len())) // must not panic
			return
		}
		checkPaths(t, doc, paths)
	})
}
