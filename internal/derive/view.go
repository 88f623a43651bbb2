package derive

import (
	"net/http"
	"net/url"
	"sync"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
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
	reqDoc, respDoc   []byte
	respStream        streamDecoder
	// paths are what the rule being tried reads from the bodies; req and
	// resp read them, in one pass over each body.
	paths     *rulePaths
	req, resp bodyFields
	// reqCut says the request body was cut (by the capture cap or in
	// transit): what it said may be missing. respPartial says the response
	// was a stream that ended before its end marker: text reassembled
	// from it is only a beginning.
	reqCut, respPartial bool
	problems            []string
	// sc is the space the exchange's events are built in.
	sc *scratch
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
	for _, seen := range v.problems {
		if seen == p {
			return
		}
	}
	v.problems = append(v.problems, p)
}

func (v *view) requestBody() []byte {
	if !v.reqDone {
		v.reqDone = true
		v.reqDoc, v.reqCut, _ = v.jsonBody(v.ex.RequestBody, v.ex.RequestHeader, v.ex.RequestTruncated, nil)
	}
	return v.reqDoc
}

func (v *view) responseBody() []byte {
	if !v.respDone {
		v.respDone = true
		v.respDoc, _, v.respPartial = v.jsonBody(v.ex.ResponseBody, v.ex.ResponseHeader, v.ex.ResponseTruncated, v.respStream)
	}
	return v.respDoc
}

// setRule makes v read the bodies for rule r.
func (v *view) setRule(r *compiledRule) {
	v.params = v.params[:0]
	v.paths = &r.bodies
	v.req.ready, v.resp.ready = false, false
	if v.sc != nil {
		v.req.buf, v.resp.buf = v.sc.req[:], v.sc.resp[:]
	}
}

// bodyFields reads a body's paths for the rule being tried.
type bodyFields struct {
	fields jsondoc.Fields
	ready  bool
	buf    []gjson.Result
}

// scratch is the space one exchange is derived in, pooled: the results of
// the bodies' paths, and the entries and values of the event being built,
// which are copied into the event's document.
type scratch struct {
	req, resp [32]gjson.Result
	entries   []jsondoc.Entry
	vals      []byte
}

var scratchPool = sync.Pool{New: func() any {
	// Room for a typical exchange's fields and an emit's own on top.
	return &scratch{entries: make([]jsondoc.Entry, 0, 64), vals: make([]byte, 0, 1024)}
}}

// release clears the results, which point into the bodies, and puts sc
// back into the pool.
func (sc *scratch) release() {
	clear(sc.req[:])
	clear(sc.resp[:])
	scratchPool.Put(sc)
}

// get reads path from doc in place: results' strings point into doc
// instead of being copied (as gjson.GetBytes does), so a lookup costs no
// allocation. Bodies are never modified while an exchange is derived, and
// values are copied when they are written into an event. The paths of the
// rule are read in one pass the first time one of them is.
func (b *bodyFields) get(doc []byte, paths *jsondoc.Paths, path string) gjson.Result {
	if len(doc) == 0 {
		return gjson.Result{}
	}
	if !b.ready {
		b.fields = jsondoc.NewFields(jsondoc.StringView(doc), paths, b.buf)
		b.ready = true
	}
	return b.fields.Get(path)
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
