package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// A source expression says where a field's value comes from:
//
//	request.body.<gjson path>     response.body.<gjson path>
//	request.header.<Name>         response.header.<Name>
//	request.query.<name>          request.path.<segment name>
//	request.method  request.path  request.host  response.status
//	=<text>                       a constant string
//	true  false                   a constant boolean
//	hash:<source>                 a stable digest of another source's value
//
// Bodies are read after decoding (content encoding, forms, streams), so the
// same path serves a JSON answer and its streamed form.
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
}

func parseSource(s string) (source, error) {
	switch {
	case strings.HasPrefix(s, "="):
		return source{kind: srcLiteral, literal: appendString(nil, s[1:])}, nil
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
	case strings.HasPrefix(s, "hash:"):
		inner, err := parseSource(s[len("hash:"):])
		if err != nil {
			return source{}, err
		}
		return source{kind: srcHash, inner: &inner}, nil
	}
	for _, p := range sourcePrefixes {
		if strings.HasPrefix(s, p.prefix) && len(s) > len(p.prefix) {
			return source{kind: p.kind, arg: s[len(p.prefix):]}, nil
		}
	}
	return source{}, fmt.Errorf("unknown value source %q: write request.body.<path>, response.body.<path>, request.header.<Name>, response.header.<Name>, request.query.<name>, request.path.<name>, request.method, request.path, response.status, hash:<source>, true, false, or =<constant text>", s)
}

// appendValue appends the source's value as JSON to dst. ok is false when the
// value is absent or empty, so that the next fallback source is tried.
func (s *source) appendValue(dst []byte, v *view) ([]byte, bool) {
	switch s.kind {
	case srcLiteral:
		return append(dst, s.literal...), true
	case srcRequestBody:
		return appendJSONPath(dst, v.requestBody(), s.arg)
	case srcResponseBody:
		return appendJSONPath(dst, v.responseBody(), s.arg)
	case srcRequestHeader:
		return appendNonEmpty(dst, v.ex.RequestHeader.Get(s.arg))
	case srcResponseHeader:
		return appendNonEmpty(dst, v.ex.ResponseHeader.Get(s.arg))
	case srcQuery:
		return appendNonEmpty(dst, v.ex.Query.Get(s.arg))
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
		return appendString(dst[:start], string(h[:])), true
	}
	return dst, false
}

func appendJSONPath(dst, doc []byte, path string) ([]byte, bool) {
	if len(doc) == 0 {
		return dst, false
	}
	r := gjson.GetBytes(doc, path)
	if !r.Exists() || r.Type == gjson.Null || (r.Type == gjson.String && r.Str == "") {
		return dst, false
	}
	return appendResult(dst, r), true
}

func appendNonEmpty(dst []byte, s string) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	return appendString(dst, s), true
}
