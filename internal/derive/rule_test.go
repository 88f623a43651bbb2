package derive

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/klauspost/compress/zstd"
)

// deriveOne runs one rule over a JSON request body.
func deriveOne(t *testing.T, r Rule, body string) Outcome {
	t.Helper()
	d, err := New(Config{Rules: []Rule{r}})
	if err != nil {
		t.Fatal(err)
	}
	return d.Derive(&capture.Exchange{Method: "POST", Path: "/hook", RequestHeader: jsonHeader(), RequestBody: []byte(body), Status: 200})
}

func eventData(out Outcome) []string {
	var s []string
	for _, ev := range out.Events {
		s = append(s, ev.Type+" "+string(ev.Data))
	}
	return s
}

func TestEachEmitsOnePerElement(t *testing.T) {
	tests := []struct {
		name string
		each []string
		body string
		want []string
	}{
		{"every element of a list", []string{"request.body.items"}, `{"items":[{"t":"a"},{"t":"b"}]}`,
			[]string{`message.received {"message":{"content":"a"}}`, `message.received {"message":{"content":"b"}}`}},
		{"a single value is a list of one", []string{"request.body.items"}, `{"items":{"t":"a"}}`,
			[]string{`message.received {"message":{"content":"a"}}`}},
		{"nothing to iterate yields nothing", []string{"request.body.items"}, `{"other":1}`, nil},
		{"two levels read the parent", []string{"request.body.groups", "items"}, `{"groups":[{"g":"G1","items":[{"t":"a"},{"t":"b"}]},{"g":"G2"},{"g":"G3","items":[{"t":"c"}]}]}`,
			[]string{`message.received {"message":{"content":"a"},"group":{"name":"G1"}}`, `message.received {"message":{"content":"b"},"group":{"name":"G1"}}`, `message.received {"message":{"content":"c"},"group":{"name":"G3"}}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fields := []Field{{To: "message.content", From: []string{"item.t"}}}
			if len(tc.each) > 1 {
				fields = append(fields, Field{To: "group.name", From: []string{"parent.g"}})
			}
			out := deriveOne(t, Rule{Name: "r", Each: tc.each, Fields: fields, Emit: []Emit{{Event: event.MessageReceived}}}, tc.body)
			if got := eventData(out); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestEachIsBounded(t *testing.T) {
	body := "{\"items\":[" + strings.Repeat(`{"t":"x"},`, maxItems+5) + `{"t":"x"}]}`
	out := deriveOne(t, Rule{Name: "r", Each: []string{"request.body.items"}, Emit: []Emit{{Event: event.MessageReceived}}}, body)
	if len(out.Events) != maxItems || !slices.Contains(out.Problems, ProblemTooManyItems) {
		t.Errorf("got %d events and problems %v, want %d and %s", len(out.Events), out.Problems, maxItems, ProblemTooManyItems)
	}
}

func TestConditionsSelectTrafficAndEvents(t *testing.T) {
	r := Rule{
		Name:   "r",
		Match:  Match{When: []Cond{{Value: "request.body.object", In: []string{"shop"}}}},
		Fields: []Field{{To: "message.direction", From: []string{"request.body.kind"}}, {To: "message.private", From: []string{"request.body.private"}}},
		Emit: []Emit{
			{Event: event.MessageNoted, When: []Cond{{Value: "message.private", In: []string{"true"}}}},
			{Event: event.MessageSent, When: []Cond{{Value: "message.private", In: []string{"true"}, Not: true}, {Value: "message.direction", In: []string{"1", "outgoing"}}}},
			{Event: event.MessageReceived, When: []Cond{{Value: "request.body.kind", In: []string{"0", "incoming"}}}},
		},
	}
	tests := []struct {
		body string
		want string
	}{
		{`{"object":"shop","kind":1,"private":true}`, event.MessageNoted},
		{`{"object":"shop","kind":"outgoing","private":false}`, event.MessageSent},
		{`{"object":"shop","kind":1}`, event.MessageSent},
		{`{"object":"shop","kind":0}`, event.MessageReceived},
		{`{"object":"shop","kind":2}`, ""},
		{`{"object":"blog","kind":0}`, ""},
		{`{"kind":0}`, ""},
	}
	for _, tc := range tests {
		var types []string
		for _, ev := range deriveOne(t, r, tc.body).Events {
			types = append(types, ev.Type)
		}
		if strings.Join(types, ",") != tc.want {
			t.Errorf("%s: got %v, want %q", tc.body, types, tc.want)
		}
	}
}

func TestBodyConditionsDoNotStopCapture(t *testing.T) {
	d, err := New(Config{Presets: []string{"whatsapp"}})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Wants("POST", "/any/webhook/path", jsonHeader()) {
		t.Error("a JSON POST must be captured: only its body can say whether it is a WhatsApp webhook")
	}
	if d.Wants("GET", "/any/webhook/path", jsonHeader()) {
		t.Error("webhook verification GETs need no capture")
	}
}

func TestSourceModifiers(t *testing.T) {
	tests := []struct {
		source, body string
		want         string // JSON value, or "" for absent
	}{
		{"text:request.body.v", `{"v":"plain"}`, `"plain"`},
		{"text:request.body.v", `{"v":[{"type":"text","text":"third "},{"type":"image_url"},{"type":"input_text","text":"as parts"}]}`, `"third as parts"`},
		{"text:request.body.v", `{"v":{"type":"text","text":"one"}}`, `"one"`},
		{"text:request.body.v", `{"v":[{"type":"image_url"}]}`, ""},
		{"text:request.body.v", `{"v":42}`, ""},
		{"text:request.body.v", `{"v":""}`, ""},
		{"words:request.body.v", `{"v":["Ana","","Lopes"]}`, `"Ana Lopes"`},
		{"words:request.body.[first,last]", `{"first":"Ana"}`, `"Ana"`},
		{"trim:request.body.v", `{"v":"Hello,\r\nsee you.\n\n"}`, `"Hello,\r\nsee you."`},
		{"trim:request.body.v", `{"v":" \n"}`, ""},
		{"trim:request.body.v", `{"v":7}`, `7`},
		{"email:request.body.v", `{"v":"Ana Lima <ana@example.com>"}`, `"ana@example.com"`},
		{"email:request.body.v", `{"v":"\"Lima, Ana\" <ana@example.com>"}`, `"ana@example.com"`},
		{"email:request.body.v", `{"v":"ana@example.com"}`, `"ana@example.com"`},
		{"email:request.body.v", `{"v":"not an address"}`, ""},
		{"email_name:request.body.v", `{"v":"Ana Lima <ana@example.com>"}`, `"Ana Lima"`},
		{"email_name:request.body.v", `{"v":"=?UTF-8?Q?Jo=C3=A3o?= <joao@example.com>"}`, `"João"`},
		{"email_name:request.body.v", `{"v":"ana@example.com"}`, ""},
		{"request.body.v", `{"v":null}`, ""},
		{"nullable:request.body.v", `{"v":null}`, `null`},
		{"nullable:request.body.v", `{"v":"high"}`, `"high"`},
		{"nullable:request.body.v", `{}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.source+" "+tc.body, func(t *testing.T) {
			out := deriveOne(t, Rule{Name: "r", Fields: []Field{{To: "message.content", From: []string{tc.source}}}, Emit: []Emit{{Event: event.MessageReceived}}}, tc.body)
			if got := out.Events[0].Get("message.content").Raw; got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBadRuleLanguageAdditionsFailClearly(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{"item without each", Rule{Name: "r", Fields: []Field{{To: "message.content", From: []string{"item.text"}}}, Emit: []Emit{{Event: event.MessageReceived}}}, "too few levels"},
		{"parent with one level", Rule{Name: "r", Each: []string{"request.body.x"}, Fields: []Field{{To: "message.content", From: []string{"hash:parent.text"}}}, Emit: []Emit{{Event: event.MessageReceived}}}, "too few levels"},
		{"bad each source", Rule{Name: "r", Each: []string{"body.x"}, Emit: []Emit{{Event: event.MessageReceived}}}, "each: unknown value source"},
		{"match condition on an event field", Rule{Name: "r", Match: Match{When: []Cond{{Value: "message.content"}}}, Emit: []Emit{{Event: event.MessageReceived}}}, "match when: unknown value source"},
		{"emit condition on an item without each", Rule{Name: "r", Emit: []Emit{{Event: event.MessageReceived, When: []Cond{{Value: "item.x"}}}}}, "too few levels"},
		{"emit condition on nothing known", Rule{Name: "r", Emit: []Emit{{Event: event.MessageReceived, When: []Cond{{Value: "mesage.content"}}}}}, `"mesage.content" is neither an event field nor a value source`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckRule(tc.rule); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestCompressedBodiesAreDecoded(t *testing.T) {
	compress := map[string]func([]byte) []byte{
		"gzip": func(b []byte) []byte { return gzipped(string(b)) },
		"br": func(b []byte) []byte {
			var buf bytes.Buffer
			w := brotli.NewWriter(&buf)
			w.Write(b)
			w.Close()
			return buf.Bytes()
		},
		"zstd": func(b []byte) []byte {
			w, _ := zstd.NewWriter(nil)
			defer w.Close()
			return w.EncodeAll(b, nil)
		},
		"deflate": func(b []byte) []byte { // zlib-wrapped, as HTTP says
			var buf bytes.Buffer
			w := zlib.NewWriter(&buf)
			w.Write(b)
			w.Close()
			return buf.Bytes()
		},
		"raw deflate": func(b []byte) []byte { // what some servers send instead
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, flate.DefaultCompression)
			w.Write(b)
			w.Close()
			return buf.Bytes()
		},
	}
	d := openAIDeriver(t)
	for name, enc := range compress {
		t.Run(name, func(t *testing.T) {
			h := jsonHeader()
			h.Set("Content-Encoding", strings.TrimPrefix(name, "raw "))
			out := d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: jsonHeader(), RequestBody: []byte(chatRequest),
				Status: 200, ResponseHeader: h, ResponseBody: enc([]byte(chatAnswer))})
			if len(out.Events) != 1 || out.Events[0].Get("reply.content").Str != "It ships today." || len(out.Problems) > 0 {
				t.Errorf("got %v, problems %v", eventData(out), out.Problems)
			}
		})
	}
}

func TestBrotliBombIsBounded(t *testing.T) {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	fmt.Fprintf(w, `{"choices":[{"message":{"content":"%s"}}]}`, strings.Repeat("A", 4<<20))
	w.Close()
	h := jsonHeader()
	h.Set("Content-Encoding", "br")
	d, err := New(Config{Presets: []string{"openai"}, DecodeLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	out := d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: jsonHeader(), RequestBody: []byte(chatRequest),
		Status: 200, ResponseHeader: h, ResponseBody: buf.Bytes()})
	if len(out.Events) != 1 || out.Events[0].Type != event.MessageReceived || !slices.Contains(out.Problems, ProblemDecodeTooLarge) {
		t.Errorf("got %v, problems %v", eventData(out), out.Problems)
	}
}

func TestStatusMatchesCodesAndClasses(t *testing.T) {
	for _, tc := range []struct {
		want []string
		code int
		ok   bool
	}{
		{[]string{"200"}, 200, true},
		{[]string{"200"}, 201, false},
		{[]string{"2xx"}, 204, true},
		{[]string{"2XX"}, 299, true},
		{[]string{"2xx"}, 302, false},
		{[]string{"2xx"}, 0, false},
		{[]string{"0"}, 0, true},
		{[]string{"0"}, 200, false},
		{[]string{"4xx", "503"}, 503, true},
		{[]string{"4xx", "503"}, 500, false},
	} {
		c, err := compileRule(Rule{Name: "r", Match: Match{Status: tc.want}, Emit: []Emit{{Event: event.MessageReceived}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.matchStatus(tc.code); got != tc.ok {
			t.Errorf("status %v, code %d: match %t, want %t", tc.want, tc.code, got, tc.ok)
		}
	}
}
