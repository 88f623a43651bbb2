package derive

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/tidwall/gjson"
)

const chatRequest = `{"model":"gpt-test","user":"visitor-7","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Where is my parcel?"}]}`

const chatAnswer = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"It ships today."},"finish_reason":"stop"}]}`

const chatStream = "data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test\",\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"It ships \"}}]}\n\n" +
	"data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":{\"content\":\"today.\"},\"finish_reason\":\"stop\"}]}\n\n" +
	"data: {\"id\":\"chatcmpl-2\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"total_tokens\":9}}\n\n" +
	"data: [DONE]\n\n"

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

func sseHeader() http.Header { return http.Header{"Content-Type": {"text/event-stream"}} }

func gzipped(s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.Bytes()
}

func openAIDeriver(t testing.TB) *Deriver {
	d, err := New(Config{Presets: []string{"openai"}, Defaults: []Field{{To: "agent.id", From: []string{"=agent_1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenAIPresetDerivesEvents(t *testing.T) {
	gzHeader := jsonHeader()
	gzHeader.Set("Content-Encoding", "gzip")
	tests := []struct {
		name       string
		ex         capture.Exchange
		wantType   string
		want       map[string]string // event field -> JSON value
		wantAbsent []string
		problems   []string
	}{
		{
			name:     "json answer is a reply",
			ex:       capture.Exchange{Status: 200, ResponseHeader: jsonHeader(), ResponseBody: []byte(chatAnswer)},
			wantType: event.MessageReplied,
			want: map[string]string{"message.content": `"Where is my parcel?"`, "reply.content": `"It ships today."`,
				"reply.id": `"chatcmpl-1"`, "contact.id": `"visitor-7"`, "channel": `"api"`, "agent.id": `"agent_1"`,
				"conversation.ai_enabled": "true", "extra.model": `"gpt-test"`},
		},
		{
			name:     "streamed answer is reassembled",
			ex:       capture.Exchange{Status: 200, ResponseHeader: sseHeader(), ResponseBody: []byte(chatStream)},
			wantType: event.MessageReplied,
			want:     map[string]string{"reply.content": `"It ships today."`, "reply.id": `"chatcmpl-2"`},
		},
		{
			name:     "gzip answer is decoded",
			ex:       capture.Exchange{Status: 200, ResponseHeader: gzHeader, ResponseBody: gzipped(chatAnswer)},
			wantType: event.MessageReplied,
			want:     map[string]string{"reply.content": `"It ships today."`},
		},
		{
			name:       "upstream down is an unanswered message",
			ex:         capture.Exchange{Status: 0},
			wantType:   event.MessageReceived,
			want:       map[string]string{"message.content": `"Where is my parcel?"`},
			wantAbsent: []string{"reply.content", "conversation.ai_enabled"},
		},
		{
			name:       "non-JSON answer is an unanswered message",
			ex:         capture.Exchange{Status: 200, ResponseHeader: jsonHeader(), ResponseBody: []byte("<html>oops</html>")},
			wantType:   event.MessageReceived,
			wantAbsent: []string{"reply.content"},
			problems:   []string{ProblemNotJSON},
		},
		{
			name:     "stream cut before [DONE] keeps what came",
			ex:       capture.Exchange{Status: 200, ResponseHeader: sseHeader(), ResponseBody: []byte(chatStream[:strings.Index(chatStream, "today")]), Aborted: true},
			wantType: event.MessageReplied,
			want:     map[string]string{"reply.content": `"It ships "`},
			problems: []string{ProblemAborted, ProblemTruncated},
		},
	}
	d := openAIDeriver(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := tc.ex
			ex.Method, ex.Path = "POST", "/v1/chat/completions"
			ex.RequestHeader, ex.RequestBody = jsonHeader(), []byte(chatRequest)
			out := d.Derive(&ex)
			if len(out.Events) != 1 {
				t.Fatalf("got %d events, want 1", len(out.Events))
			}
			ev := out.Events[0]
			if ev.Type != tc.wantType {
				t.Errorf("type %s, want %s", ev.Type, tc.wantType)
			}
			if !gjson.ValidBytes(ev.Data) {
				t.Fatalf("event data is not JSON: %s", ev.Data)
			}
			for path, want := range tc.want {
				if got := ev.Get(path).Raw; got != want {
					t.Errorf("%s = %s, want %s", path, got, want)
				}
			}
			for _, path := range tc.wantAbsent {
				if ev.Get(path).Exists() {
					t.Errorf("%s present, want absent: %s", path, ev.Data)
				}
			}
			if strings.Join(out.Problems, ",") != strings.Join(tc.problems, ",") {
				t.Errorf("problems %v, want %v", out.Problems, tc.problems)
			}
		})
	}
}

func TestConversationIDIsStableAcrossTurns(t *testing.T) {
	d := openAIDeriver(t)
	id := func(body string, h http.Header) string {
		if h == nil {
			h = jsonHeader()
		}
		out := d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: h, RequestBody: []byte(body)})
		return out.Events[0].Get("conversation.id").String()
	}
	first := id(`{"user":"u","messages":[{"role":"system","content":"S"},{"role":"user","content":"Hi"}]}`, nil)
	later := id(`{"user":"u","messages":[{"role":"system","content":"S"},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hey"},{"role":"user","content":"More"}]}`, nil)
	other := id(`{"user":"v","messages":[{"role":"system","content":"S"},{"role":"user","content":"Hi"}]}`, nil)
	explicit := id(`{"messages":[{"role":"user","content":"Hi"}]}`, http.Header{"X-Conversation-Id": {"conv-9"}})
	if first == "" || first != later {
		t.Errorf("one conversation got ids %q and %q", first, later)
	}
	if first == other {
		t.Errorf("different users share conversation id %q", first)
	}
	if explicit != "conv-9" {
		t.Errorf("X-Conversation-Id gave %q", explicit)
	}
}

func TestConfiguredConversationIDWins(t *testing.T) {
	d, err := New(Config{Presets: []string{"openai"}, ConversationID: []string{"request.body.metadata.thread"}})
	if err != nil {
		t.Fatal(err)
	}
	out := d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: jsonHeader(),
		RequestBody: []byte(`{"metadata":{"thread":"t-1"},"messages":[{"role":"user","content":"Hi"}]}`)})
	if got := out.Events[0].Get("conversation.id").String(); got != "t-1" {
		t.Errorf("conversation.id %q, want t-1", got)
	}
}

func TestUnrelatedTrafficYieldsNothing(t *testing.T) {
	d := openAIDeriver(t)
	for _, ex := range []capture.Exchange{
		{Method: "GET", Path: "/v1/chat/completions"},
		{Method: "POST", Path: "/v1/embeddings"},
		{Method: "POST", Path: "/"},
	} {
		if d.Wants(ex.Method, ex.Path, nil) {
			t.Errorf("Wants(%s %s) = true", ex.Method, ex.Path)
		}
		if out := d.Derive(&ex); len(out.Events) != 0 {
			t.Errorf("%s %s yielded %d events", ex.Method, ex.Path, len(out.Events))
		}
	}
	if !d.Wants("POST", "/openai/v1/chat/completions", nil) {
		t.Error("a prefixed chat completions path must be wanted")
	}
}

func TestGzipBombIsBounded(t *testing.T) {
	h := jsonHeader()
	h.Set("Content-Encoding", "gzip")
	bomb := gzipped(`{"choices":[{"message":{"content":"` + strings.Repeat("A", 4<<20) + `"}}]}`)
	d, err := New(Config{Presets: []string{"openai"}, DecodeLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	out := d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: jsonHeader(),
		RequestBody: []byte(chatRequest), Status: 200, ResponseHeader: h, ResponseBody: bomb})
	if len(out.Events) != 1 || out.Events[0].Type != event.MessageReceived {
		t.Fatalf("want one unanswered message, got %+v", out.Events)
	}
	if !slices.Contains(out.Problems, ProblemDecodeTooLarge) {
		t.Errorf("problems %v, want %s", out.Problems, ProblemDecodeTooLarge)
	}
}

func TestBadRulesFailWithAClearError(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		want string
	}{
		{"unknown event type", Rule{Name: "r", Emit: []Emit{{Event: "message.exploded"}}}, `unknown event type "message.exploded"`},
		{"unknown field", Rule{Name: "r", Fields: []Field{{To: "mesage.content", From: []string{"=x"}}}, Emit: []Emit{{Event: event.MessageReceived}}}, `unknown event field "mesage.content"`},
		{"unknown source", Rule{Name: "r", Fields: []Field{{To: "message.content", From: []string{"body.text"}}}, Emit: []Emit{{Event: event.MessageReceived}}}, `unknown value source "body.text"`},
		{"no event", Rule{Name: "r"}, "emits no event"},
		{"bad status", Rule{Name: "r", Match: Match{Status: []string{"2x"}}, Emit: []Emit{{Event: event.MessageReceived}}}, `status "2x"`},
		{"relative path", Rule{Name: "r", Match: Match{Paths: []string{"api/chat"}}, Emit: []Emit{{Event: event.MessageReceived}}}, "must start with /"},
		{"unknown stream", Rule{Name: "r", Stream: "grpc", Emit: []Emit{{Event: event.MessageReceived}}}, `unknown stream decoder "grpc"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRule(tc.rule)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestPathPatterns(t *testing.T) {
	tests := []struct {
		pattern, path string
		match         bool
		params        []string
	}{
		{"/v1/chat/completions", "/v1/chat/completions", true, nil},
		{"/v1/chat/completions", "/v2/chat/completions", false, nil},
		{"*/chat/completions", "/openai/v1/chat/completions", true, nil},
		{"*/chat/completions", "/chat/completions", true, nil},
		{"/agents/{id}/query", "/agents/ag_1/query", true, []string{"id", "ag_1"}},
		{"/agents/{id}/query", "/agents/ag_1/x/query", false, nil},
		{"/api/*", "/api/a/b", true, nil},
		{"/api/*", "/api", false, nil},
		{"/v*/chat", "/v1/chat", true, nil},
		{"/v[12]/chat", "/v2/chat", true, nil},
		{"/v[12]/chat", "/v3/chat", false, nil},
		{`/a\*b`, "/a*b", true, nil},
		{`/a\*b`, "/axb", false, nil},
		{"*/conversations/{cid}/*", "/api/v1/accounts/1/conversations/150/messages", true, []string{"cid", "150"}},
	}
	for _, tc := range tests {
		r, err := compileRule(Rule{Match: Match{Paths: []string{tc.pattern}}, Emit: []Emit{{Event: event.MessageReceived}}})
		if err != nil {
			t.Fatal(err)
		}
		v := view{ex: &capture.Exchange{Path: tc.path}}
		if got := r.matches(&v); got != tc.match {
			t.Errorf("%s ~ %s: %t, want %t", tc.pattern, tc.path, got, tc.match)
		}
		if tc.match && strings.Join(v.params, ",") != strings.Join(tc.params, ",") {
			t.Errorf("%s ~ %s: params %v, want %v", tc.pattern, tc.path, v.params, tc.params)
		}
	}
}

func TestCustomRuleDerivesReplyFromMadeUpAPI(t *testing.T) {
	d, err := New(Config{Rules: []Rule{{
		Name:  "my_api",
		Match: Match{Methods: []string{"POST"}, Paths: []string{"/api/chat/{bot}"}, Status: []string{"2xx"}},
		Fields: []Field{
			{To: "conversation.id", From: []string{"request.body.session_id"}},
			{To: "message.content", From: []string{"request.body.text"}},
			{To: "reply.content", From: []string{"response.body.reply"}},
			{To: "agent.id", From: []string{"request.path.bot"}},
			{To: "contact.email", From: []string{"request.header.X-User-Email"}},
			{To: "channel", From: []string{"request.query.channel", "=web"}},
		},
		Emit: []Emit{{Event: event.MessageReplied}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	h := jsonHeader()
	h.Set("X-User-Email", "ana@example.com")
	out := d.Derive(&capture.Exchange{Method: "POST", Path: "/api/chat/helper", RequestHeader: h,
		RequestBody: []byte(`{"session_id":"s-1","text":"¿Hola?"}`), Status: 201,
		ResponseHeader: jsonHeader(), ResponseBody: []byte(`{"reply":"¡Hola!"}`)})
	if len(out.Events) != 1 {
		t.Fatalf("events %d", len(out.Events))
	}
	want := `{"conversation":{"id":"s-1"},"message":{"content":"¿Hola?"},"reply":{"content":"¡Hola!"},"agent":{"id":"helper"},"contact":{"email":"ana@example.com"},"channel":"web"}`
	if got := string(out.Events[0].Data); got != want {
		t.Errorf("data\n got %s\nwant %s", got, want)
	}
}

// An emit's own fields (ai_enabled on a reply) lay over the rule's without
// displacing a configured conversation id or any other field.
func TestEmitFieldsKeepConfiguredConversationIDAndRuleFields(t *testing.T) {
	d, err := New(Config{Presets: []string{"openai"}, ConversationID: []string{"request.header.X-Thread"}})
	if err != nil {
		t.Fatal(err)
	}
	h := jsonHeader()
	h.Set("X-Thread", "thread-7")
	out := d.Derive(&capture.Exchange{Method: "POST", Path: "/v1/chat/completions", RequestHeader: h, RequestBody: []byte(chatRequest),
		Status: 200, ResponseHeader: jsonHeader(), ResponseBody: []byte(chatAnswer)})
	if len(out.Events) != 1 {
		t.Fatalf("events %d", len(out.Events))
	}
	for path, want := range map[string]string{"conversation.id": `"thread-7"`, "conversation.ai_enabled": "true",
		"message.content": `"Where is my parcel?"`, "reply.content": `"It ships today."`, "contact.id": `"visitor-7"`} {
		if got := out.Events[0].Get(path).Raw; got != want {
			t.Errorf("%s = %s, want %s: %s", path, got, want, out.Events[0].Data)
		}
	}
}

// A request cut at the capture cap is not JSON, so its message text is
// lost: a message event would be empty and is not emitted, and a reply to
// it says that its message is missing.
func TestCutRequestYieldsNoEmptyMessageEvent(t *testing.T) {
	cut := []byte(chatRequest[:len(chatRequest)/2])
	tests := []struct {
		name string
		ex   capture.Exchange
		want []string
	}{
		{"unanswered", capture.Exchange{Status: 0}, nil},
		{"answered", capture.Exchange{Status: 200, ResponseHeader: jsonHeader(), ResponseBody: []byte(chatAnswer)},
			[]string{`message.replied {"conversation":{"ai_enabled":true},"channel":"api","message":{"direction":"incoming","incomplete":true},"reply":{"id":"chatcmpl-1","content":"It ships today."},"extra":{"model":"gpt-test"}}`}},
	}
	d, err := New(Config{Presets: []string{"openai"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := tc.ex
			ex.Method, ex.Path, ex.RequestHeader, ex.RequestBody, ex.RequestTruncated = "POST", "/v1/chat/completions", jsonHeader(), cut, true
			out := d.Derive(&ex)
			if got := eventData(out); strings.Join(got, "\n") != strings.Join(tc.want, "\n") || !slices.Contains(out.Problems, ProblemTruncated) {
				t.Errorf("got %v, problems %v\nwant %v", got, out.Problems, tc.want)
			}
		})
	}
}
