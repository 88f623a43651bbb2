package signer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsStringifyCases hold JSON.stringify(JSON.parse(in)) as Node computes it;
// TestNodeAgreesWithJSStringify checks every one against Node itself.
var jsStringifyCases = []struct {
	name, in, want string
}{
	{"compact input is unchanged", `{"eventType":"message.received","agentId":"a1","payload":{"message":"hi"}}`, `{"eventType":"message.received","agentId":"a1","payload":{"message":"hi"}}`},
	{"whitespace is dropped", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\":{ } } ", `{"a":[1,2],"b":{}}`},
	{"empty containers", `[{},[],[[]],{"a":{}}]`, `[{},[],[[]],{"a":{}}]`},
	{"literals", `[true,false,null]`, `[true,false,null]`},

	{"index keys come first in numeric order", `{"b":1,"a":2,"10":3,"9":4,"0":5}`, `{"0":5,"9":4,"10":3,"b":1,"a":2}`},
	{"index keys end at 2^32-2", `{"x":0,"4294967295":1,"4294967294":2}`, `{"4294967294":2,"x":0,"4294967295":1}`},
	{"non-canonical numeric keys keep their place", `{"x":0,"01":1,"-1":2,"1.0":3,"+1":4,"1e2":5," 1":6,"1":7}`, `{"1":7,"x":0,"01":1,"-1":2,"1.0":3,"+1":4,"1e2":5," 1":6}`},
	{"escaped index key is an index key", `{"a":1,"\u0031":2}`, `{"1":2,"a":1}`},
	{"duplicate key keeps first place and last value", `{"a":1,"b":2,"a":{"c":3}}`, `{"a":{"c":3},"b":2}`},
	{"duplicates compare decoded keys", `{"é":1,"\u00e9":2,"e\u0301":3}`, "{\"é\":2,\"e\u0301\":3}"},
	{"duplicates in a large object", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k3":"a","k16":16,"k16":"b","k0":"c"}`,
		`{"k0":"c","k1":1,"k2":2,"k3":"a","k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":"b"}`},
	{"nested objects reorder too", `[{"z":{"2":0,"1":0},"1":[{"b":0,"0":0}]}]`, `[{"1":[{"0":0,"b":0}],"z":{"1":0,"2":0}}]`},
	{"__proto__ is an ordinary key", `{"__proto__":{"x":1},"a":2}`, `{"__proto__":{"x":1},"a":2}`},

	{"short escapes are kept", `"\b\f\n\r\t\"\\"`, `"\b\f\n\r\t\"\\"`},
	{"solidus escape is dropped", `"a\/b"`, `"a/b"`},
	{"other control characters use lowercase hex escapes", `"\u0000\u001F\u000B"`, `"\u0000\u001f\u000b"`},
	{"DEL is not escaped", `"\u007f"`, "\"\x7f\""},
	{"escaped letters are written plainly", `"\u0041\u00e9\u00E9"`, `"Aéé"`},
	{"html characters are not escaped", `"<script>&amp;</script>"`, `"<script>&amp;</script>"`},
	{"line and paragraph separators are not escaped", `"\u2028\u2029"`, "\"\u2028\u2029\""},
	{"accents, emoji, CJK and RTL are written as UTF-8", `"Olá, café ☕ 😀 你好 مرحبا שלום"`, `"Olá, café ☕ 😀 你好 مرحبا שלום"`},
	{"escaped surrogate pair becomes UTF-8", `"\ud83d\ude00\uD83D\uDE00"`, `"😀😀"`},
	{"lone high surrogate stays escaped", `"\uD83D"`, `"\ud83d"`},
	{"lone low surrogate stays escaped", `"\ude00x"`, `"\ude00x"`},
	{"reversed pair is two lone surrogates", `"\ude00\ud83d"`, `"\ude00\ud83d"`},
	{"high surrogate before a letter", `"\ud83d\u0041"`, `"\ud83dA"`},
	{"high surrogate before a pair", `"\ud83d\ud83d\ude00"`, `"\ud83d😀"`},
	{"raw U+FFFD is kept", "\"\uFFFD\"", "\"\uFFFD\""},

	{"truncated sequence is one U+FFFD", "[\"\xe2\x82A\"]", "[\"\uFFFDA\"]"},
	{"encoded surrogate is one U+FFFD per byte", "[\"\xed\xa0\x80\"]", "[\"\uFFFD\uFFFD\uFFFD\"]"},
	{"overlong form is one U+FFFD per byte", "[\"\xc0\xaf\"]", "[\"\uFFFD\uFFFD\"]"},
	{"beyond U+10FFFF is one U+FFFD per byte", "[\"\xf4\x90\x80\x80\"]", "[\"\uFFFD\uFFFD\uFFFD\uFFFD\"]"},
	{"second-byte ranges bound each lead byte", "[\"\xe0\x9f\x80\xe0\xa0\xf0\x8f\xf0\x90\x80\xf4\x8f\xbf\xf4\x90\xed\x9f\xbf\"]", "[\"" + strings.Repeat("\uFFFD", 10) + "\uD7FF\"]"},
	{"truncated emoji before the quote", "[\"\xf0\x9f\x98\"]", "[\"\uFFFD\"]"},
	{"stray bytes", "[\"a\xffb\x80c\"]", "[\"a\uFFFDb\uFFFDc\"]"},
	{"byte order mark is dropped", "\xef\xbb\xbf{\"a\":1}", `{"a":1}`},

	{"numbers lose trailing zeros", `[1.50,1.0,100,0e10,123.456e2]`, `[1.5,1,100,0,12345.6]`},
	{"exponents become plain up to 1e21", `[1E5,1e20,1e21,1e100]`, `[100000,100000000000000000000,1e+21,1e+100]`},
	{"small numbers become plain down to 1e-6", `[0.000001,0.0000001,1e-6,123e-9,2.5e-5,-2e-7,-1.5E-10]`, `[0.000001,1e-7,0.000001,1.23e-7,0.000025,-2e-7,-1.5e-10]`},
	{"negative zero is 0", `[-0,-0.0,-1e-400]`, `[0,0,0]`},
	{"shortest round trip", `[0.1,0.30000000000000004,4.35,5e-324,1.7976931348623157e308]`, `[0.1,0.30000000000000004,4.35,5e-324,1.7976931348623157e+308]`},
	{"big integers round like float64", `[9007199254740993,12345678901234567890,123456789012345678901234567890]`, `[9007199254740992,12345678901234567000,1.2345678901234568e+29]`},
	{"overflow is null, underflow 0", `[1e400,-1e400,1e-400]`, `[null,null,0]`},

	{"top-level string", ` "x" `, `"x"`},
	{"top-level number", `1.50`, `1.5`},
	{"top-level null", "\nnull\n", `null`},
}

func TestJSStringify(t *testing.T) {
	for _, c := range jsStringifyCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := JSStringify([]byte(c.in))
			if err != nil {
				t.Fatalf("JSStringify(%q): %v", c.in, err)
			}
			if string(got) != c.want {
				t.Errorf("JSStringify(%q)\n got %s\nwant %s", c.in, got, c.want)
			}
		})
	}
}

func TestJSStringifyRejectsWhatJSONParseRejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "\xef\xbb\xbf", "\xef\xbb\xbf\xef\xbb\xbf{}", "{", "[", "[1,]", "[,1]", `{"a":1,}`, `{,}`,
		`{'a':1}`, `{a:1}`, `{1:2}`, `{"a" 1}`, `{"a":}`, `[1 2]`, `[1] 2`, `{}{}`,
		"01", "-01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity",
		"tru", "nul", "True", "undefined",
		"\"\x01\"", "\"a\nb\"", "\"\t\"", `"\x"`, `"\'"`, `"\u12"`, `"\u12G4"`, `"\`, `"abc`,
		"\u00a0 1", "\xc3\xa9", "\xff", "// comment\n1", "[1]\x00",
	} {
		if got, err := JSStringify([]byte(in)); err == nil {
			t.Errorf("JSStringify(%q) = %q, want an error", in, got)
		}
	}
}

func TestJSStringifyLimitsNesting(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(strings.Repeat(`[{"a":`, n/2) + strings.Repeat("[", n%2) + "1" + strings.Repeat("]", n%2) + strings.Repeat("}]", n/2))
	}
	if _, err := JSStringify(nest(maxJSONDepth)); err != nil {
		t.Errorf("%d levels: %v", maxJSONDepth, err)
	}
	if _, err := JSStringify(nest(maxJSONDepth + 1)); err == nil {
		t.Errorf("%d levels: no error", maxJSONDepth+1)
	}
	if json.Valid(nest(maxJSONDepth+1)) || !json.Valid(nest(maxJSONDepth)) {
		t.Errorf("encoding/json's depth limit is no longer %d", maxJSONDepth)
	}
}

func FuzzJSStringify(f *testing.F) {
	for _, c := range jsStringifyCases {
		f.Add([]byte(c.in))
	}
	f.Add([]byte(`{"a":[1,{"b":"\ud800"}],"0":-0.0e-0}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := JSStringify(in)
		// JSON.parse and encoding/json share a grammar and a depth limit,
		// and neither checks UTF-8 in strings here (we replace it).
		if valid := json.Valid(bytes.TrimPrefix(in, []byte("\uFEFF"))); valid != (err == nil) {
			t.Fatalf("JSStringify(%q): error %v, but json.Valid says %v", in, err, valid)
		}
		if err != nil {
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("JSStringify(%q) = %q: not valid UTF-8 JSON", in, out)
		}
		again, err := JSStringify(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q → %q → %q (%v)", in, out, again, err)
		}
	})
}
