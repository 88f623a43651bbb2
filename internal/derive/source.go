package derive

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strconv"
	"strings"

	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/tidwall/gjson"
)

// A source expression says where a field's value comes from:
//
//	request.body.<gjson path>     response.body.<gjson path>
//	request.header.<Name>         response.header.<Name>
//	request.query.<name>          request.path.<segment name>
//	request.method  request.path  request.host  response.status
//	item.<gjson path>             the element of a rule's each being emitted
//	parent.<gjson path>           the element enclosing it (two-level each)
//	=<text>                       a constant string
//	true  false                   a constant boolean
//	hash:<source>                 a stable digest of another source's value
//	text:<source>                 another source's value as plain text: a
//	                              string as it is; a list's strings and its
//	                              objects' "text" members concatenated, as
//	                              the OpenAI SDKs join message parts
//	words:<source>                the same, joined by single spaces (first
//	                              and last names)
//	trim:<source>                 a string without leading and trailing
//	                              white space (mail bodies end in newlines)
//	email:<source>                the address of an e-mail "From" value
//	                              ("Ana Lima <ana@example.com>")
//	email_name:<source>           its display name ("Ana Lima")
//	nullable:<source>             the value, where an explicit JSON null
//	                              counts too: the attribute is known to be
//	                              empty (no priority, nobody assigned),
//	                              which conversation state tells apart from
//	                              unknown
//
// Bodies are read after decoding (content encoding, forms, streams), so the
// same path serves a JSON answer and its streamed form, and a form field the
// same path as a JSON member.
type source struct {
	kind    sourceKind
	arg     string
	literal []byte // JSON, for srcLiteral
	inner   *source
}

type sourceKind uint8

const (
	srcLiteral sourceKind = iota
	srcRequestBody
	srcResponseBody
	srcRequestHeader
	srcResponseHeader
	srcQuery
	srcPathParam
	srcMethod
	srcPath
	srcHost
	srcStatus
	srcHash
	srcText
	srcWords
	srcTrim
	srcEmail
	srcEmailName
	srcNullable
	srcItem
	srcParent
)

var sourcePrefixes = []struct {
	prefix string
	kind   sourceKind
}{
	{"request.body.", srcRequestBody},
	{"response.body.", srcResponseBody},
	{"request.header.", srcRequestHeader},
	{"response.header.", srcResponseHeader},
	{"request.query.", srcQuery},
	{"request.path.", srcPathParam},
	{"item.", srcItem},
	{"parent.", srcParent},
}

// sourceModifiers wrap another source: "hash:request.body.user".
var sourceModifiers = []struct {
	prefix string
	kind   sourceKind
}{
	{"hash:", srcHash},
	{"text:", srcText},
	{"words:", srcWords},
	{"trim:", srcTrim},
	{"email:", srcEmail},
	{"email_name:", srcEmailName},
	{"nullable:", srcNullable},
}

func parseSource(s string) (source, error) {
	switch {
	case strings.HasPrefix(s, "="):
		return source{kind: srcLiteral, literal: jsondoc.AppendString(nil, s[1:])}, nil
	case s == "true" || s == "false":
		return source{kind: srcLiteral, literal: []byte(s)}, nil
	case s == "request.method":
		return source{kind: srcMethod}, nil
	case s == "request.path":
		return source{kind: srcPath}, nil
	case s == "request.host":
		return source{kind: srcHost}, nil
	case s == "response.status":
		return source{kind: srcStatus}, nil
	}
	for _, m := range sourceModifiers {
		if rest, ok := strings.CutPrefix(s, m.prefix); ok {
			inner, err := parseSource(rest)
			if err != nil {
				return source{}, err
			}
			return source{kind: m.kind, inner: &inner}, nil
		}
	}
	for _, p := range sourcePrefixes {
		if strings.HasPrefix(s, p.prefix) && len(s) > len(p.prefix) {
			return source{kind: p.kind, arg: s[len(p.prefix):]}, nil
		}
	}
	return source{}, fmt.Errorf("unknown value source %q: write request.body.<path>, response.body.<path>, request.header.<Name>, response.header.<Name>, request.query.<name>, request.path.<name>, request.method, request.path, request.host, response.status, item.<path>, parent.<path>, hash:<source>, text:<source>, words:<source>, trim:<source>, email:<source>, email_name:<source>, nullable:<source>, true, false, or =<constant text>", s)
}

// appendValue appends the source's value as JSON to dst. ok is false when the
// value is absent or empty, so that the next fallback source is tried.
func (s *source) appendValue(dst []byte, v *view) ([]byte, bool) {
	switch s.kind {
	case srcLiteral:
		return append(dst, s.literal...), true
	case srcRequestBody, srcResponseBody, srcItem, srcParent:
		r, ok := s.lookup(v)
		if !ok {
			return dst, false
		}
		return jsondoc.AppendValue(dst, r), true
	case srcText, srcWords, srcTrim, srcEmail, srcEmailName:
		r, ok := s.inner.lookup(v)
		if !ok {
			return dst, false
		}
		return appendModified(dst, s.kind, r)
	case srcNullable:
		if r := s.inner.find(v); r.Exists() && r.Type == gjson.Null {
			return append(dst, "null"...), true
		}
		return s.inner.appendValue(dst, v)
	case srcRequestHeader:
		return appendNonEmpty(dst, v.ex.RequestHeader.Get(s.arg))
	case srcResponseHeader:
		return appendNonEmpty(dst, v.ex.ResponseHeader.Get(s.arg))
	case srcQuery:
		return appendNonEmpty(dst, v.query().Get(s.arg))
	case srcPathParam:
		return appendNonEmpty(dst, v.param(s.arg))
	case srcMethod:
		return appendNonEmpty(dst, v.ex.Method)
	case srcPath:
		return appendNonEmpty(dst, v.ex.Path)
	case srcHost:
		return appendNonEmpty(dst, v.ex.Host)
	case srcStatus:
		if v.ex.Status == 0 {
			return dst, false
		}
		return strconv.AppendInt(dst, int64(v.ex.Status), 10), true
	case srcHash:
		start := len(dst)
		val, ok := s.inner.appendValue(dst, v)
		if !ok {
			return dst, false
		}
		sum := sha256.Sum256(val[start:])
		var h [32]byte
		hex.Encode(h[:], sum[:16])
		return jsondoc.AppendString(dst[:start], string(h[:])), true
	}
	return dst, false
}

// readsResponse reports whether the source reads the response body.
func (s *source) readsResponse() bool {
	for in := s; in != nil; in = in.inner {
		if in.kind == srcResponseBody {
			return true
		}
	}
	return false
}

// lookup returns the source's value; ok is false when it is absent, null or
// "".
func (s *source) lookup(v *view) (gjson.Result, bool) {
	r := s.find(v)
	return r, jsondoc.HasValue(r)
}

// find returns the source's value as it is, null included. JSON sources are
// read in place; others are parsed from their value.
func (s *source) find(v *view) gjson.Result {
	switch s.kind {
	case srcRequestBody:
		return v.req.get(v.requestBody(), v.paths.req, s.arg)
	case srcResponseBody:
		return v.resp.get(v.responseBody(), v.paths.resp, s.arg)
	case srcItem:
		return v.item.Get(s.arg)
	case srcParent:
		return v.parent.Get(s.arg)
	}
	raw, ok := s.appendValue(nil, v)
	if !ok {
		return gjson.Result{}
	}
	return gjson.ParseBytes(raw)
}

// bodyPaths appends the body paths the source reads, request and response
// apart.
func (s *source) bodyPaths(p rulePaths) rulePaths {
	for in := s; in != nil; in = in.inner {
		switch in.kind {
		case srcRequestBody:
			p.reqList = append(p.reqList, in.arg)
		case srcResponseBody:
			p.respList = append(p.respList, in.arg)
		}
	}
	return p
}

// appendModified appends the value of a modifier source (text:, words:,
// trim:, email:, email_name:) of r; false when nothing is left of it.
func appendModified(dst []byte, kind sourceKind, r gjson.Result) ([]byte, bool) {
	var s string
	switch kind {
	case srcText:
		s = plainText(r, "")
	case srcWords:
		s = plainText(r, " ")
	case srcTrim:
		if r.Type != gjson.String {
			return jsondoc.AppendValue(dst, r), true
		}
		s = strings.TrimSpace(r.Str)
	case srcEmail, srcEmailName:
		addr, err := mail.ParseAddress(r.String())
		if err != nil {
			return dst, false
		}
		s = addr.Address
		if kind == srcEmailName {
			s = strings.TrimSpace(addr.Name)
		}
	}
	return appendNonEmpty(dst, s)
}

// plainText reads r as text (see text: and words: in the source syntax):
// a list's strings and its objects' "text" members joined by sep.
func plainText(r gjson.Result, sep string) string {
	switch {
	case r.IsObject():
		r = r.Get("text")
	case r.IsArray():
		var text []byte
		r.ForEach(func(_, el gjson.Result) bool {
			if el.IsObject() {
				el = el.Get("text")
			}
			if el.Type == gjson.String && el.Str != "" {
				if len(text) > 0 {
					text = append(text, sep...)
				}
				text = append(text, el.Str...)
			}
			return true
		})
		return string(text)
	}
	if r.Type != gjson.String {
		return ""
	}
	return r.Str
}

func appendNonEmpty(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	return jsondoc.AppendString(dst, s), true
}
