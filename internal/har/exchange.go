package har

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
)

// Exchange turns an entry into the exchange a proxy would have captured.
// Exporters store bodies decoded but keep the Content-Encoding header, so
// the header is dropped unless the body visibly still is compressed.
// HTTP/2 pseudo-headers (:authority, :path…) are not headers; :authority
// gives the host when the URL has none.
func (e *Entry) Exchange() (*capture.Exchange, error) {
	if e.Request.Method == "" {
		return nil, fmt.Errorf("request has no method")
	}
	u, err := url.Parse(e.Request.URL)
	if err != nil {
		return nil, fmt.Errorf("request url: %v", err)
	}
	reqHeader, authority := header(e.Request.Headers)
	ex := &capture.Exchange{
		Method:        strings.ToUpper(e.Request.Method),
		Host:          u.Host,
		Path:          u.Path,
		RawQuery:      u.RawQuery,
		RequestHeader: reqHeader,
		Status:        e.Response.Status,
		Aborted:       e.Aborted || e.Response.Error != "",
	}
	if ex.Host == "" {
		ex.Host = authority
	}
	if ex.Path == "" {
		ex.Path = "/"
	}
	if pd := e.Request.PostData; pd != nil {
		if ex.RequestBody, err = pd.body(); err != nil {
			return nil, fmt.Errorf("request body: %v", err)
		}
		ex.RequestTruncated = pd.Truncated
		if reqHeader.Get("Content-Type") == "" && pd.MimeType != "" {
			reqHeader.Set("Content-Type", pd.MimeType)
		}
	}
	keepEncodingIfCompressed(reqHeader, ex.RequestBody)
	ex.ResponseHeader, _ = header(e.Response.Headers)
	if ex.ResponseBody, err = decodeText(e.Response.Content.Text, e.Response.Content.Encoding); err != nil {
		return nil, fmt.Errorf("response content: %v", err)
	}
	ex.ResponseTruncated = e.Response.Content.Truncated
	if ex.ResponseHeader.Get("Content-Type") == "" && e.Response.Content.MimeType != "" {
		ex.ResponseHeader.Set("Content-Type", e.Response.Content.MimeType)
	}
	keepEncodingIfCompressed(ex.ResponseHeader, ex.ResponseBody)
	if e.StartedDateTime != "" {
		if ex.Start, err = time.Parse(time.RFC3339Nano, e.StartedDateTime); err != nil {
			return nil, fmt.Errorf("startedDateTime: %v", err)
		}
		ex.End = ex.Start
		if e.Time > 0 && e.Time < math.MaxInt64/1e6 {
			ex.End = ex.Start.Add(time.Duration(math.Round(e.Time * 1e6)))
		}
	}
	return ex, nil
}

// header collects HAR headers, leaving out HTTP/2 pseudo-headers; it returns
// :authority separately.
func header(pairs []NameValue) (http.Header, string) {
	h := http.Header{}
	var authority string
	for _, p := range pairs {
		if strings.HasPrefix(p.Name, ":") {
			if p.Name == ":authority" {
				authority = p.Value
			}
			continue
		}
		if p.Name != "" {
			h.Add(p.Name, p.Value)
		}
	}
	return h, authority
}

func decodeText(text, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "":
		return []byte(text), nil
	case "base64":
		return base64.StdEncoding.DecodeString(text)
	}
	return nil, fmt.Errorf("unknown encoding %q", encoding)
}

// body is the request body: its text, else the form its params describe.
func (pd *PostData) body() ([]byte, error) {
	if pd.Text != "" || len(pd.Params) == 0 {
		return decodeText(pd.Text, pd.Encoding)
	}
	mt, params, _ := mime.ParseMediaType(pd.MimeType)
	if mt != "multipart/form-data" {
		form := url.Values{}
		for _, p := range pd.Params {
			form.Add(p.Name, p.Value)
		}
		return []byte(form.Encode()), nil
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if b := params["boundary"]; b != "" {
		if err := mw.SetBoundary(b); err != nil {
			return nil, fmt.Errorf("multipart boundary: %v", err)
		}
	}
	for _, p := range pd.Params {
		var err error
		if p.FileName != "" {
			var w io.Writer
			if w, err = mw.CreateFormFile(p.Name, p.FileName); err == nil {
				_, err = w.Write([]byte(p.Value))
			}
		} else {
			err = mw.WriteField(p.Name, p.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	if params["boundary"] == "" {
		pd.MimeType = mw.FormDataContentType()
	}
	return buf.Bytes(), nil
}

// compressedMagic are the first bytes of bodies still content-encoded:
// gzip, zstd, and zlib-wrapped deflate with its usual headers. Brotli has
// no magic: a HAR body under Content-Encoding br is taken as decoded.
var compressedMagic = [][]byte{{0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}, {0x78, 0x9c}, {0x78, 0x01}, {0x78, 0xda}}

// keepEncodingIfCompressed drops Content-Encoding from h unless body starts
// as compressed data does.
func keepEncodingIfCompressed(h http.Header, body []byte) {
	coding := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding")))
	if coding == "" || coding == "identity" {
		return
	}
	for _, m := range compressedMagic {
		if bytes.HasPrefix(body, m) {
			return
		}
	}
	h.Del("Content-Encoding")
	h.Del("Content-Length")
}

// FromExchange writes an exchange as a HAR entry. Bodies are written
// decoded, as browsers do, headers unchanged; text when they are UTF-8,
// else base64. A body that does not decode is written as captured.
func FromExchange(ex *capture.Exchange) Entry {
	u := url.URL{Scheme: "https", Host: ex.Host, Path: ex.Path, RawQuery: ex.RawQuery}
	e := Entry{
		StartedDateTime: ex.Start.UTC().Format(time.RFC3339Nano),
		// Wall clocks, not the monotonic one: the end read back must be
		// the end events were stamped with.
		Time:    float64(ex.End.Round(0).Sub(ex.Start.Round(0))) / 1e6,
		Aborted: ex.Aborted,
		Timings: Timings{Send: -1, Wait: -1, Receive: -1},
	}
	e.Request = Request{
		Method: ex.Method, URL: u.String(), HTTPVersion: "HTTP/1.1",
		Cookies: []NameValue{}, Headers: pairs(ex.RequestHeader), QueryString: query(ex.RawQuery),
		HeadersSize: -1, BodySize: int64(len(ex.RequestBody)),
	}
	if len(ex.RequestBody) > 0 {
		text, enc := encodeText(ex.RequestBody, ex.RequestHeader)
		e.Request.PostData = &PostData{MimeType: ex.RequestHeader.Get("Content-Type"), Text: text, Encoding: enc, Truncated: ex.RequestTruncated}
	}
	text, enc := encodeText(ex.ResponseBody, ex.ResponseHeader)
	e.Response = Response{
		Status: ex.Status, StatusText: http.StatusText(ex.Status), HTTPVersion: "HTTP/1.1",
		Cookies: []NameValue{}, Headers: pairs(ex.ResponseHeader),
		Content: Content{
			Size: int64(len(ex.ResponseBody)), MimeType: ex.ResponseHeader.Get("Content-Type"),
			Text: text, Encoding: enc, Truncated: ex.ResponseTruncated,
		},
		HeadersSize: -1, BodySize: int64(len(ex.ResponseBody)),
	}
	return e
}

func encodeText(body []byte, h http.Header) (string, string) {
	if plain, ok := decoded(body, h.Get("Content-Encoding")); ok {
		body = plain
	}
	if utf8.Valid(body) {
		return string(body), ""
	}
	return base64.StdEncoding.EncodeToString(body), "base64"
}

// pairs lists a header in name order, for files that diff well.
func pairs(h http.Header) []NameValue {
	out := []NameValue{}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			out = append(out, NameValue{Name: k, Value: v})
		}
	}
	return out
}

func sortedPairs(m map[string]string) []NameValue {
	out := []NameValue{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, NameValue{Name: k, Value: m[k]})
	}
	return out
}

func query(raw string) []NameValue {
	out := []NameValue{}
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		out = append(out, NameValue{Name: k, Value: v})
	}
	return out
}
