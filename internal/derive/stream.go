package derive

import (
	"bytes"

	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/tidwall/gjson"
)

// A streamDecoder reassembles a text/event-stream body into the JSON document
// the same API answers without streaming, so one rule serves both forms.
// complete reports that the stream's own end marker was seen.
type streamDecoder func(body []byte) (doc []byte, complete bool)

// streamDecoders are the stream formats a rule can name in "stream". They are
// code because a rule cannot express reassembly.
var streamDecoders = map[string]streamDecoder{
	"openai_chat":      decodeOpenAIChatStream,
	"openai_responses": decodeOpenAIResponsesStream,
	"chatvolt":         decodeChatvoltStream,
}

// The members of a chat completion chunk, of its first choice and of that
// choice's delta, each read in one pass (chunks are checked JSON) and in
// place: the values kept point into the body or an event's own data.
var (
	chunkPaths  = jsondoc.NewPaths([]string{"id", "model", "usage", "choices.0"})
	choicePaths = jsondoc.NewPaths([]string{"delta", "finish_reason"})
	deltaPaths  = jsondoc.NewPaths([]string{"role", "content", "refusal", "tool_calls"})
)

// eachSSE calls fn for every event of a server-sent event stream, including a
// final event cut off before its blank line. Multi-line data is joined with
// "\n" as the SSE specification says, each event's in a buffer of its own:
// decoders keep values that point into data.
func eachSSE(body []byte, fn func(event, data []byte)) {
	var event, data []byte
	var joined []byte
	lines := 0
	dispatch := func() {
		if lines > 0 {
			fn(event, data)
		}
		event, data, joined, lines = nil, nil, nil, 0
	}
	for len(body) > 0 {
		// Lines end with CRLF, LF or a lone CR, as the SSE specification says.
		line := body
		if i := bytes.IndexAny(body, "\r\n"); i >= 0 {
			end := i + 1
			if body[i] == '\r' && end < len(body) && body[end] == '\n' {
				end++
			}
			line, body = body[:i], body[end:]
		} else {
			body = nil
		}
		if len(line) == 0 {
			dispatch()
			continue
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(field) {
		case "event":
			event = value
		case "data":
			if lines == 0 {
				data = value
			} else {
				if len(joined) == 0 {
					joined = append(joined, data...)
				}
				joined = append(append(joined, '\n'), value...)
				data = joined
			}
			lines++
		}
	}
	dispatch()
}

// rawText gathers a stream's text deltas as their JSON-escaped form and
// decodes them once, at the end, so that an escape split across two events
// is decoded whole: Node servers that slice UTF-16 strings send an emoji's
// surrogate halves in two chunks ("\ud83d", then "\ude00").
type rawText []byte

// add appends a JSON string delta; other values are no text.
func (t *rawText) add(r gjson.Result) {
	if r.Type == gjson.String && len(r.Raw) >= 2 && r.Raw[0] == '"' {
		*t = append(*t, r.Raw[1:len(r.Raw)-1]...)
	}
}

// appendJSON appends the decoded text as a JSON string; a surrogate half
// left alone becomes U+FFFD.
func (t rawText) appendJSON(dst []byte) []byte {
	quoted := make([]byte, 0, len(t)+2)
	quoted = append(append(append(quoted, '"'), t...), '"')
	return jsondoc.AppendString(dst, gjson.ParseBytes(quoted).Str)
}

// maxToolCalls bounds the tool calls one streamed answer is rebuilt with, so
// that a crafted index cannot make the decoder allocate without end.
const maxToolCalls = 64

// chatToolCall is one tool call of a chat completion stream, gathered from
// its deltas.
type chatToolCall struct {
	id, typ   gjson.Result
	name, arg rawText
}

// decodeOpenAIChatStream turns chat.completion.chunk events into one
// chat.completion object: content, refusal and tool calls as the same
// request answers without streaming.
func decodeOpenAIChatStream(body []byte) ([]byte, bool) {
	var id, model, role, finish, usage gjson.Result
	var content, refusal rawText
	var calls []chatToolCall
	done := false
	eachSSE(body, func(_, data []byte) {
		if bytes.Equal(data, []byte("[DONE]")) {
			done = true
			return
		}
		if !gjson.ValidBytes(data) {
			return
		}
		var c, ch, d [4]gjson.Result
		chunkPaths.Resolve(jsondoc.StringView(data), c[:])
		if v := c[0]; v.Exists() {
			id = v
		}
		if v := c[1]; v.Exists() {
			model = v
		}
		if v := c[2]; v.IsObject() {
			usage = v
		}
		choicePaths.Resolve(c[3].Raw, ch[:])
		deltaPaths.Resolve(ch[0].Raw, d[:])
		if v := d[0]; v.Exists() {
			role = v
		}
		if v := ch[1]; v.Type == gjson.String {
			finish = v
		}
		content.add(d[1])
		refusal.add(d[2])
		d[3].ForEach(func(_, tc gjson.Result) bool {
			i := int(tc.Get("index").Int())
			if i < 0 || i >= maxToolCalls {
				return true
			}
			for len(calls) <= i {
				calls = append(calls, chatToolCall{})
			}
			c := &calls[i]
			if v := tc.Get("id"); v.Exists() {
				c.id = v
			}
			if v := tc.Get("type"); v.Exists() {
				c.typ = v
			}
			c.name.add(tc.Get("function.name"))
			c.arg.add(tc.Get("function.arguments"))
			return true
		})
	})
	doc := make([]byte, 0, len(content)+len(refusal)+160)
	doc = append(doc, `{"object":"chat.completion"`...)
	doc = appendMember(doc, "id", id)
	doc = appendMember(doc, "model", model)
	doc = append(doc, `,"choices":[{"index":0,"message":{"role":`...)
	if role.Exists() {
		doc = jsondoc.AppendValue(doc, role)
	} else {
		doc = append(doc, `"assistant"`...)
	}
	doc = content.appendJSON(append(doc, `,"content":`...))
	if len(refusal) > 0 {
		doc = refusal.appendJSON(append(doc, `,"refusal":`...))
	}
	if len(calls) > 0 {
		doc = append(doc, `,"tool_calls":[`...)
		for i, c := range calls {
			if i > 0 {
				doc = append(doc, ',')
			}
			doc = append(doc, '{')
			if c.id.Exists() {
				doc = append(jsondoc.AppendValue(append(doc, `"id":`...), c.id), ',')
			}
			if c.typ.Exists() {
				doc = append(jsondoc.AppendValue(append(doc, `"type":`...), c.typ), ',')
			}
			doc = c.name.appendJSON(append(doc, `"function":{"name":`...))
			doc = append(c.arg.appendJSON(append(doc, `,"arguments":`...)), "}}"...)
		}
		doc = append(doc, ']')
	}
	doc = append(doc, '}')
	doc = appendMember(doc, "finish_reason", finish)
	doc = append(doc, "}]"...)
	doc = appendMember(doc, "usage", usage)
	return append(doc, '}'), done
}

// decodeOpenAIResponsesStream turns a Responses API stream into its response
// object. The terminal event carries the whole object: response.completed
// and response.incomplete (the model stopped early, say at its token limit)
// end the stream as it was meant to, response.failed does not. A stream cut
// before them, or ended by an error event, is rebuilt from its text and
// refusal deltas and the function calls it announced.
func decodeOpenAIResponsesStream(body []byte) ([]byte, bool) {
	var final, id, model gjson.Result
	var text, refusal rawText
	var calls []gjson.Result
	complete := false
	eachSSE(body, func(event, data []byte) {
		if !gjson.ValidBytes(data) {
			return
		}
		ev := gjson.ParseBytes(data)
		typ := ev.Get("type").Str
		if typ == "" {
			typ = string(event)
		}
		switch typ {
		case "response.created", "response.in_progress":
			id, model = ev.Get("response.id"), ev.Get("response.model")
		case "response.output_text.delta":
			text.add(ev.Get("delta"))
		case "response.refusal.delta":
			refusal.add(ev.Get("delta"))
		case "response.output_item.added", "response.output_item.done":
			if item := ev.Get("item"); item.Get("type").Str == "function_call" {
				calls = addCall(calls, item)
			}
		case "response.completed", "response.incomplete", "response.failed":
			final, complete = ev.Get("response"), typ != "response.failed"
		}
	})
	if final.IsObject() {
		return []byte(final.Raw), complete
	}
	doc := make([]byte, 0, len(text)+len(refusal)+160)
	doc = append(doc, `{"object":"response"`...)
	doc = appendMember(doc, "id", id)
	doc = appendMember(doc, "model", model)
	doc = append(doc, `,"status":"incomplete","output":[`...)
	for _, c := range calls {
		doc = append(append(doc, c.Raw...), ',')
	}
	doc = append(doc, `{"type":"message","role":"assistant","content":[{"type":"output_text","text":`...)
	doc = text.appendJSON(doc)
	if len(refusal) > 0 {
		doc = refusal.appendJSON(append(doc, `},{"type":"refusal","refusal":`...))
	}
	return append(doc, "}]}]}"...), false
}

// addCall records a function call item, replacing the one it completes.
func addCall(calls []gjson.Result, item gjson.Result) []gjson.Result {
	id := item.Get("id").Str
	for i, c := range calls {
		if c.Get("id").Str == id {
			calls[i] = item
			return calls
		}
	}
	if len(calls) == maxToolCalls {
		return calls
	}
	return append(calls, item)
}

// decodeChatvoltStream turns a Chatvolt agent query stream into the answer
// object the same query returns without streaming. The endpoint_response
// event carries that object URL-encoded; without it (a cut stream) the
// answer is the URL-encoded answer chunks, joined before decoding so that an
// escape or a UTF-8 sequence split across chunks survives. tool_call, step
// and metadata events do not contribute. A "[ERROR]<message>" data line
// means the answer failed: the stream is not complete, whatever follows.
func decodeChatvoltStream(body []byte) ([]byte, bool) {
	var answer, final []byte
	done, failed := false, false
	eachSSE(body, func(event, data []byte) {
		switch {
		case bytes.Equal(data, []byte("[DONE]")):
			done = true
		case bytes.HasPrefix(data, []byte("[ERROR]")):
			failed = true
		case string(event) == "answer":
			answer = append(answer, data...)
		case string(event) == "endpoint_response":
			final = queryUnescape(final[:0], data)
		}
	})
	if gjson.ValidBytes(final) && gjson.ParseBytes(final).IsObject() {
		return final, done && !failed
	}
	doc := append(make([]byte, 0, len(answer)+16), `{"answer":`...)
	doc = jsondoc.AppendString(doc, string(queryUnescape(nil, answer)))
	return append(doc, '}'), done && !failed
}

// appendMember appends `,"key":value` when the value exists.
func appendMember(dst []byte, key string, v gjson.Result) []byte {
	if !v.Exists() {
		return dst
	}
	dst = append(dst, ',')
	dst = jsondoc.AppendString(dst, key)
	dst = append(dst, ':')
	return jsondoc.AppendValue(dst, v)
}
