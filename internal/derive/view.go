package derive

import (
	"net/http"
	"net/url"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/tidwall/gjson"
)

// view is one exchange as the rules read it: bodies are decoded lazily, once,
// and only when a matching rule asks for them.
type view struct {
	ex     *capture.Exchange
	limit  int64
	params []string // name, value pairs captured by path patterns

	queryValues url.Values
	// item and parent are the elements of a rule's each being emitted.
	item, parent gjson.Result

	reqDone, respDone bool
	req, resp         []byte
	respStream        streamDecoder
	// reqCut says the request body was cut (by the capture cap or in
	// transit): what it said may be missing. respPartial says the response
	// was a stream that ended before its end marker: text reassembled
	// from it is only a beginning.
	reqCut, respPartial bool
	problems            *[]string
}

// query parses the exchange's query the first time a source reads it.
func (v *view) query() url.Values {
	if v.queryValues == nil {
		v.queryValues, _ = url.ParseQuery(v.ex.RawQuery)
	}
	return v.queryValues
}

func (v *view) param(name string) string {
	for i := 0; i+1 < len(v.params); i += 2 {
		if v.params[i] == name {
			return v.params[i+1]
		}
	}
	return ""
}

func (v *view) problem(p string) {
	if p == "" {
		return
	}
	for _, seen := range *v.problems {
		if seen == p {
			return
		}
	}
	*v.problems = append(*v.problems, p)
}

func (v *view) requestBody() []byte {
	if !v.reqDone {
		v.reqDone = true
		v.req, v.reqCut, _ = v.jsonBody(v.ex.RequestBody, v.ex.RequestHeader, v.ex.RequestTruncated, nil)
	}
	return v.req
}

func (v *view) responseBody() []byte {
	if !v.respDone {
		v.respDone = true
		v.resp, _, v.respPartial = v.jsonBody(v.ex.ResponseBody, v.ex.ResponseHeader, v.ex.ResponseTruncated, v.respStream)
	}
	return v.resp
}

// jsonBody decodes a captured body into a JSON document, or nil. truncated
// says the capture cap cut the body. cut reports that the body is not
// whole; partial that the document is a stream's beginning.
func (v *view) jsonBody(body []byte, h http.Header, truncated bool, stream streamDecoder) (doc []byte, cut, partial bool) {
	if truncated {
		v.problem(ProblemTruncated)
	}
	if len(body) == 0 {
		return nil, truncated, false
	}
	body, p := decodeContent(body, h, v.limit)
	v.problem(p)
	cut = truncated || p == ProblemTruncated
	switch mediaType(h) {
	case "text/event-stream":
		if stream == nil {
			return nil, cut, false
		}
		doc, complete := stream(body)
		if !complete {
			v.problem(ProblemTruncated)
		}
		return doc, cut || !complete, !complete
	case "application/x-www-form-urlencoded", "multipart/form-data":
		doc, p := formJSON(body, h, cut, v.limit)
		v.problem(p)
		return doc, cut || p != "", false
	}
	if !gjson.ValidBytes(body) {
		v.problem(ProblemNotJSON)
		return nil, cut, false
	}
	return body, cut, false
}
