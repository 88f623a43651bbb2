package derive

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestEachSSEFollowsTheEventStreamFormat(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // "event|data" per dispatched event
	}{
		{"lf lines", "event: a\ndata: 1\n\ndata: 2\n\n", []string{"a|1", "|2"}},
		{"crlf lines", "event: a\r\ndata: 1\r\n\r\n", []string{"a|1"}},
		{"lone cr lines", "event: a\rdata: 1\r\rdata: 2\r\r", []string{"a|1", "|2"}},
		{"multi-line data is joined with newlines", "data: one\ndata: two\ndata: three\n\n", []string{"|one\ntwo\nthree"}},
		{"comments, ids and retries are not events", ": keep-alive\nid: 7\nretry: 1000\n\ndata: x\n\n", []string{"|x"}},
		{"no space after the colon", "event:a\ndata:1\n\n", []string{"a|1"}},
		{"only one leading space is removed", "data:  two spaces\n\n", []string{"| two spaces"}},
		{"a final event without its blank line still counts", "data: 1\n\ndata: 2", []string{"|1", "|2"}},
		{"an event name alone dispatches nothing", "event: ping\n\n", nil},
		{"empty body", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			eachSSE([]byte(tc.body), func(event, data []byte) {
				got = append(got, string(event)+"|"+string(data))
			})
			if strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChatvoltStreamDecoding(t *testing.T) {
	answer := func(chunks ...string) string {
		var b strings.Builder
		for _, c := range chunks {
			b.WriteString("event: answer\ndata: " + c + "\n\n")
		}
		return b.String()
	}
	tests := []struct {
		name     string
		body     string
		want     string
		complete bool
	}{
		{"plus is a space, %2B a plus", answer("1%2B1+is+2") + "data: [DONE]\n\n", `{"answer":"1+1 is 2"}`, true},
		{"an escape split across chunks", answer("caf%C", "3%A9 ", "%E2%9C%88") + "data: [DONE]\n\n", `{"answer":"café ✈"}`, true},
		{"a stray percent stays", answer("100%", " sure%zz") + "data: [DONE]\n\n", `{"answer":"100% sure%zz"}`, true},
		{"other events do not contribute", "event: tool_call\ndata: {\"name\":\"x\"}\n\nevent: step\ndata: thinking\n\nevent: metadata\ndata: %7B%7D\n\n" + answer("Hi") + "event: answer\ndata: [DONE]\n\n", `{"answer":"Hi"}`, true},
		{"endpoint response wins", answer("partial") + "event: endpoint_response\ndata: %7B%22answer%22%3A%22full%22%2C%22messageId%22%3A%22m1%22%7D\n\ndata: [DONE]\n\n", `{"answer":"full","messageId":"m1"}`, true},
		{"a broken endpoint response falls back to the chunks", answer("kept") + "event: endpoint_response\ndata: %7B%22answer\n\ndata: [DONE]\n\n", `{"answer":"kept"}`, true},
		{"a stream without [DONE] is incomplete", answer("cut"), `{"answer":"cut"}`, false},
		{"an error line leaves the stream incomplete", answer("Let+me") + "data: [ERROR]Rate limit reached\n\nevent: \ndata: [DONE]\n\n", `{"answer":"Let me"}`, false},
		{"an empty stream", "", `{"answer":""}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, complete := decodeChatvoltStream([]byte(tc.body))
			if string(doc) != tc.want || complete != tc.complete {
				t.Errorf("got %s complete=%t, want %s complete=%t", doc, complete, tc.want, tc.complete)
			}
		})
	}
}

func TestOpenAIResponsesStreamDecoding(t *testing.T) {
	delta := func(s string) string {
		return "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"" + s + "\"}\n\n"
	}
	created := "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"model\":\"m\"}}\n\n"
	tests := []struct {
		name      string
		body      string
		wantText  string
		wantID    string
		wantState string
		complete  bool
	}{
		{"a failed response ends the stream without completing it", created + delta("Par") + "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"output\":[]}}\n\n", "", "resp_1", "failed", false},
		{"incomplete responses end the stream", created + "event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"id\":\"resp_1\",\"status\":\"incomplete\",\"output_text\":\"Half\"}}\n\n", "", "resp_1", "incomplete", true},
		{"a cut stream is rebuilt from deltas", created + delta("Hel") + delta("lo \\\"you\\\""), `Hello "you"`, "resp_1", "incomplete", false},
		{"an error event leaves the stream incomplete", created + delta("Hel") + "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\"}\n\n", "Hel", "resp_1", "incomplete", false},
		{"surrogate halves in two deltas are one emoji", created + delta("Ok \\ud83d") + delta("\\ude00"), "Ok \U0001F600", "resp_1", "incomplete", false},
		{"the event name stands in for a missing type", "event: response.output_text.delta\ndata: {\"delta\":\"x\"}\n\n", "x", "", "incomplete", false},
		{"garbage is ignored", "data: {not json\n\n" + delta("ok"), "ok", "", "incomplete", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, complete := decodeOpenAIResponsesStream([]byte(tc.body))
			if !gjson.ValidBytes(doc) {
				t.Fatalf("not JSON: %s", doc)
			}
			r := gjson.ParseBytes(doc)
			if got := r.Get("output.0.content.0.text").Str; got != tc.wantText {
				t.Errorf("text %q, want %q", got, tc.wantText)
			}
			if r.Get("id").Str != tc.wantID || r.Get("status").Str != tc.wantState || complete != tc.complete {
				t.Errorf("got %s complete=%t, want id %q status %q complete=%t", doc, complete, tc.wantID, tc.wantState, tc.complete)
			}
		})
	}
}

func TestOpenAIChatStreamDecoding(t *testing.T) {
	chunk := func(delta string, more ...string) string {
		return `data: {"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + strings.Join(append(more, "null"), "") + `}]}` + "\n\n"
	}
	first := chunk(`{"role":"assistant","content":"","refusal":null}`)
	tests := []struct {
		name     string
		body     string
		message  string // the rebuilt choices.0.message
		complete bool
	}{
		{"content deltas, an obfuscation pad and a usage chunk",
			first + chunk(`{"content":"It ships "},"obfuscation":"x9"`) + chunk(`{"content":"today."}`) +
				`data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":9}}` + "\n\ndata: [DONE]\n\n",
			`{"role":"assistant","content":"It ships today."}`, true},
		{"surrogate halves in two chunks are one emoji",
			first + chunk(`{"content":"Done \ud83d"}`) + chunk(`{"content":"\ude00"}`) + "data: [DONE]\n\n",
			`{"role":"assistant","content":"Done ` + "\U0001F600" + `"}`, true},
		{"a surrogate half left alone is a replacement character",
			first + chunk(`{"content":"Done \ud83d"}`),
			`{"role":"assistant","content":"Done ` + "\uFFFD" + `"}`, false},
		{"refusal deltas",
			first + chunk(`{"refusal":"I can't help "}`) + chunk(`{"refusal":"with that."}`) + "data: [DONE]\n\n",
			`{"role":"assistant","content":"","refusal":"I can't help with that."}`, true},
		{"tool call deltas are gathered per index",
			chunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"track","arguments":""}}]}`) +
				chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"order\":"}}]}`) +
				chunk(`{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"eta","arguments":"{}"}}]}`) +
				chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"1024}"}}]}`) +
				chunk(`{}`, `"tool_calls"`) + "data: [DONE]\n\n",
			`{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"track","arguments":"{\"order\":1024}"}},{"id":"call_2","type":"function","function":{"name":"eta","arguments":"{}"}}]}`, true},
		{"a tool call index beyond the bound is ignored",
			chunk(`{"tool_calls":[{"index":100000000,"id":"x","function":{"name":"f"}}]}`) + "data: [DONE]\n\n",
			`{"role":"assistant","content":""}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, complete := decodeOpenAIChatStream([]byte(tc.body))
			if !gjson.ValidBytes(doc) {
				t.Fatalf("not JSON: %s", doc)
			}
			if got := gjson.GetBytes(doc, "choices.0.message").Raw; got != tc.message || complete != tc.complete {
				t.Errorf("got %s complete=%t\nwant %s complete=%t", got, complete, tc.message, tc.complete)
			}
		})
	}
}

func TestOpenAIResponsesStreamKeepsFunctionCallsAndRefusals(t *testing.T) {
	call := `{"type":"function_call","id":"fc_1","call_id":"call_1","name":"track","arguments":""}`
	done := `{"type":"function_call","id":"fc_1","call_id":"call_1","name":"track","arguments":"{\"order\":1024}"}`
	body := "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"item\":" + call + "}\n\n" +
		"event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":" + done + "}\n\n" +
		"event: response.refusal.delta\ndata: {\"type\":\"response.refusal.delta\",\"delta\":\"No.\"}\n\n"
	doc, complete := decodeOpenAIResponsesStream([]byte(body))
	want := `{"object":"response","status":"incomplete","output":[` + done +
		`,{"type":"message","role":"assistant","content":[{"type":"output_text","text":""},{"type":"refusal","refusal":"No."}]}]}`
	if string(doc) != want || complete {
		t.Errorf("got %s complete=%t\nwant %s", doc, complete, want)
	}
}

// A chunk may span several data lines; what an earlier chunk said (its id
// and model) outlives the later chunks' lines.
func TestOpenAIChatStreamOfMultiLineChunks(t *testing.T) {
	body := "data: {\"id\":\"chatcmpl-7\",\"model\":\"gpt-test\",\n" +
		"data: \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n" +
		"data: {\"id\":\"chatcmpl-7\",\n" +
		"data: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo, from a much longer second chunk\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: {\"choices\":[],\n" +
		"data: \"usage\":{\"total_tokens\":9}}\n\n" +
		"data: [DONE]\n\n"
	doc, complete := decodeOpenAIChatStream([]byte(body))
	want := `{"object":"chat.completion","id":"chatcmpl-7","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, from a much longer second chunk"},"finish_reason":"stop"}],"usage":{"total_tokens":9}}`
	if string(doc) != want || !complete {
		t.Errorf("got %s complete=%t\nwant %s", doc, complete, want)
	}
}
