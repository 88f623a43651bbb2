package derive

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
)

// formJSON turns an application/x-www-form-urlencoded or multipart/form-data
// body into a JSON object of its text fields, in order, so that a rule reads
// a form field with the same request.body.<name> path as a JSON member. A
// repeated name stays repeated (a path reads the first); file parts are
// skipped. A malformed or cut-off form yields the fields before the damage:
// cut says the body was cut, so its last field may be only a beginning and
// is left out.
func formJSON(body []byte, h http.Header, cut bool, limit int64) ([]byte, string) {
	doc := append(make([]byte, 0, len(body)+len(body)/8+2), '{')
	var problem string
	if mediaType(h) == "multipart/form-data" {
		doc, problem = appendMultipartFields(doc, body, h.Get("Content-Type"), limit)
	} else {
		if cut {
			body = body[:max(bytes.LastIndexByte(body, '&'), 0)]
		}
		doc = appendURLEncodedFields(doc, body)
	}
	return append(doc, '}'), problem
}

func appendURLEncodedFields(doc, body []byte) []byte {
	var buf []byte
	for len(body) > 0 {
		var pair []byte
		pair, body, _ = bytes.Cut(body, []byte{'&'})
		name, value, _ := bytes.Cut(pair, []byte{'='})
		if len(name) == 0 {
			continue
		}
		buf = queryUnescape(buf[:0], name)
		doc = appendFormField(doc, string(buf))
		buf = queryUnescape(buf[:0], value)
		doc = jsondoc.AppendString(doc, string(buf))
	}
	return doc
}

func appendMultipartFields(doc, body []byte, contentType string, limit int64) ([]byte, string) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return doc, ProblemDecodeError
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var value bytes.Buffer
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return doc, ""
		}
		if err != nil {
			// A body cut at the capture cap ends inside a part.
			return doc, ProblemTruncated
		}
		name := part.FormName()
		if name == "" || part.FileName() != "" {
			continue
		}
		value.Reset()
		n, err := io.Copy(&value, io.LimitReader(part, limit+1))
		if n > limit {
			return doc, ProblemDecodeTooLarge
		}
		if err != nil {
			return doc, ProblemTruncated
		}
		limit -= n
		doc = appendFormField(doc, name)
		doc = jsondoc.AppendString(doc, value.String())
	}
}

// appendFormField appends `"name":`, after a comma unless it is the first.
func appendFormField(doc []byte, name string) []byte {
	if doc[len(doc)-1] != '{' {
		doc = append(doc, ',')
	}
	return append(jsondoc.AppendString(doc, name), ':')
}

// queryUnescape decodes URL query encoding as url.QueryUnescape does ('+' is
// a space, %XX a byte) but never fails: a '%' that starts no valid escape
// stays as it is, so one bad escape cannot lose a whole form or message.
func queryUnescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
