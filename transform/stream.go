package transform

import (
	"bytes"

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

// eachSSE calls fn for every event of a server-sent event stream, including a
// final event cut off before its blank line. Multi-line data is joined with
// "\n" as the SSE specification says.
func eachSSE(body []byte, fn func(event, data []byte)) {
	var event, data []byte
	var joined []byte
	lines := 0
	dispatch := func() {
		if lines > 0 {
			fn(event, data)
		}
		event, data, joined, lines = nil, nil, joined[:0], 0
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

// decodeOpenAIChatStream turns chat.completion.chunk events into one
// chat.completion object.
func decodeOpenAIChatStream(body []byte) ([]byte, bool) {
	var id, model, role, finish, usage gjson.Result
	var content []byte
	done := false
	eachSSE(body, func(_, data []byte) {
		if bytes.Equal(data, []byte("[DONE]")) {
			done = true
			return
		}
		if !gjson.ValidBytes(data) {
			return
		}
		chunk := gjson.ParseBytes(data)
		if v := chunk.Get("id"); v.Exists() {
			id = v
		}
		if v := chunk.Get("model"); v.Exists() {
			model = v
		}
		if v := chunk.Get("usage"); v.IsObject() {
			usage = v
		}
		choice := chunk.Get("choices.0")
		if v := choice.Get("delta.role"); v.Exists() {
			role = v
		}
		if v := choice.Get("finish_reason"); v.Type == gjson.String {
			finish = v
		}
		content = append(content, choice.Get("delta.content").Str...)
	})
	doc := make([]byte, 0, len(content)+160)
	doc = append(doc, `{"object":"chat.completion"`...)
	doc = appendMember(doc, "id", id)
	doc = appendMember(doc, "model", model)
	doc = append(doc, `,"choices":[{"index":0,"message":{"role":`...)
	if role.Exists() {
		doc = appendResult(doc, role)
	} else {
		doc = append(doc, `"assistant"`...)
	}
	doc = append(doc, `,"content":`...)
	doc = appendString(doc, string(content))
	doc = append(doc, '}')
	doc = appendMember(doc, "finish_reason", finish)
	doc = append(doc, "}]"...)
	doc = appendMember(doc, "usage", usage)
	return append(doc, '}'), done
}

// decodeOpenAIResponsesStream turns a Responses API stream into its response
// object. The terminal event (response.completed, or response.failed or
// response.incomplete) carries the whole object; a stream cut before it is
// rebuilt from the response.output_text.delta events.
func decodeOpenAIResponsesStream(body []byte) ([]byte, bool) {
	var final, id, model gjson.Result
	var text []byte
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
			text = append(text, ev.Get("delta").Str...)
		case "response.completed", "response.failed", "response.incomplete":
			final = ev.Get("response")
		}
	})
	if final.IsObject() {
		return []byte(final.Raw), true
	}
	doc := make([]byte, 0, len(text)+160)
	doc = append(doc, `{"object":"response"`...)
	doc = appendMember(doc, "id", id)
	doc = appendMember(doc, "model", model)
	doc = append(doc, `,"status":"incomplete","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":`...)
	doc = appendString(doc, string(text))
	return append(doc, "}]}]}"...), false
}

// decodeChatvoltStream turns a Chatvolt agent query stream into the answer
// object the same query returns without streaming. The endpoint_response
// event carries that object URL-encoded; without it (a cut stream) the
// answer is the URL-encoded answer chunks, joined before decoding so that an
// escape or a UTF-8 sequence split across chunks survives. tool_call, step
// and metadata events do not contribute.
func decodeChatvoltStream(body []byte) ([]byte, bool) {
	var answer, final []byte
	done := false
	eachSSE(body, func(event, data []byte) {
		switch {
		case bytes.Equal(data, []byte("[DONE]")):
			done = true
		case string(event) == "answer":
			answer = append(answer, data...)
		case string(event) == "endpoint_response":
			final = queryUnescape(final[:0], data)
		}
	})
	if gjson.ValidBytes(final) && gjson.ParseBytes(final).IsObject() {
		return final, done
	}
	doc := append(make([]byte, 0, len(answer)+16), `{"answer":`...)
	doc = appendString(doc, string(queryUnescape(nil, answer)))
	return append(doc, '}'), done
}

// appendMember appends `,"key":value` when the value exists.
func appendMember(dst []byte, key string, v gjson.Result) []byte {
	if !v.Exists() {
		return dst
	}
	dst = append(dst, ',')
	dst = appendString(dst, key)
	dst = append(dst, ':')
	return appendResult(dst, v)
}
