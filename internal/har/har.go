// Package har reads and writes HTTP Archive (HAR 1.2) files as browsers'
// devtools and mitmproxy export them, and turns their entries into the
// exchanges that rules derive events from.
package har

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Document is a HAR file.
type Document struct {
	Log Log `json:"log"`
}

// Log is a HAR file's log object.
type Log struct {
	Version string  `json:"version"`
	Creator Creator `json:"creator"`
	Entries []Entry `json:"entries"`
}

// Creator names the program that wrote a HAR file.
type Creator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Entry is one request and its response.
type Entry struct {
	// StartedDateTime is ISO 8601 with a time zone, as HAR requires.
	StartedDateTime string `json:"startedDateTime"`
	// Time is the whole exchange's duration in milliseconds.
	Time     float64  `json:"time"`
	Request  Request  `json:"request"`
	Response Response `json:"response"`
	Cache    struct{} `json:"cache"`
	Timings  Timings  `json:"timings"`
	Comment  string   `json:"comment,omitempty"`
	// Aborted marks an exchange whose response did not finish (written by
	// this package; HAR has no field for it).
	Aborted bool `json:"_aborted,omitempty"`
}

// Request is a HAR request.
type Request struct {
	Method      string      `json:"method"`
	URL         string      `json:"url"`
	HTTPVersion string      `json:"httpVersion"`
	Cookies     []NameValue `json:"cookies"`
	Headers     []NameValue `json:"headers"`
	QueryString []NameValue `json:"queryString"`
	PostData    *PostData   `json:"postData,omitempty"`
	HeadersSize int64       `json:"headersSize"`
	BodySize    int64       `json:"bodySize"`
}

// Response is a HAR response.
type Response struct {
	Status      int         `json:"status"`
	StatusText  string      `json:"statusText"`
	HTTPVersion string      `json:"httpVersion"`
	Cookies     []NameValue `json:"cookies"`
	Headers     []NameValue `json:"headers"`
	Content     Content     `json:"content"`
	RedirectURL string      `json:"redirectURL"`
	HeadersSize int64       `json:"headersSize"`
	BodySize    int64       `json:"bodySize"`
	// Error is Chrome's reason for a failed request (net::ERR_ABORTED…).
	Error string `json:"_error,omitempty"`
}

// NameValue is a header, cookie or query parameter.
type NameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// PostData is a request body: Text, or Params for a form whose text the
// exporter left out.
type PostData struct {
	MimeType string  `json:"mimeType"`
	Params   []Param `json:"params,omitempty"`
	Text     string  `json:"text"`
	// Encoding is not in HAR 1.2 for requests, but some exporters write
	// binary bodies as base64 with it, as for responses.
	Encoding  string `json:"encoding,omitempty"`
	Truncated bool   `json:"_truncated,omitempty"`
}

// Param is one form field.
type Param struct {
	Name        string `json:"name"`
	Value       string `json:"value,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	ContentType string `json:"contentType,omitempty"`
}

// Content is a response body. Text is decoded (no Content-Encoding left),
// and base64 when Encoding says so.
type Content struct {
	Size        int64  `json:"size"`
	Compression int64  `json:"compression,omitempty"`
	MimeType    string `json:"mimeType"`
	Text        string `json:"text,omitempty"`
	Encoding    string `json:"encoding,omitempty"`
	// Truncated marks a body cut at the capture cap (written by this
	// package).
	Truncated bool `json:"_truncated,omitempty"`
}

// Timings are the phases of an exchange in milliseconds; -1 is unknown.
type Timings struct {
	Send    float64 `json:"send"`
	Wait    float64 `json:"wait"`
	Receive float64 `json:"receive"`
}

// Parse reads a HAR document, a single HAR entry, or a single exchange in
// the short form (see Short), and returns its entries.
func Parse(data []byte) ([]Entry, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // Windows tools write a BOM
	var probe struct {
		Log     *json.RawMessage `json:"log"`
		Request *struct {
			Headers json.RawMessage `json:"headers"`
		} `json:"request"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not a HAR file nor an exchange: %v", err)
	}
	switch {
	case probe.Log != nil:
		var doc Document
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("HAR log: %v", err)
		}
		return doc.Log.Entries, nil
	case probe.Request == nil:
		return nil, fmt.Errorf(`neither a HAR file (no "log") nor an exchange (no "request")`)
	case bytes.HasPrefix(bytes.TrimSpace(probe.Request.Headers), []byte("{")):
		var s Short
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("exchange: %v", err)
		}
		return []Entry{s.entry()}, nil
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("HAR entry: %v", err)
	}
	return []Entry{e}, nil
}

// Short is one exchange written by hand: headers as an object, bodies as
// JSON values (a string is the body's text, anything else its JSON).
//
//	{"request": {"method": "POST", "url": "https://api.example/v1/chat",
//	             "headers": {"Content-Type": "application/json"}, "body": {...}},
//	 "response": {"status": 200, "headers": {...}, "body": {...}}}
type Short struct {
	Time    string `json:"time,omitempty"`
	Request struct {
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body,omitempty"`
	} `json:"request"`
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body,omitempty"`
	} `json:"response"`
}

func (s Short) entry() Entry {
	e := Entry{StartedDateTime: s.Time}
	e.Request.Method, e.Request.URL = s.Request.Method, s.Request.URL
	e.Request.Headers = sortedPairs(s.Request.Headers)
	if text := shortBody(s.Request.Body); text != "" {
		e.Request.PostData = &PostData{Text: text}
	}
	e.Response.Status = s.Response.Status
	e.Response.Headers = sortedPairs(s.Response.Headers)
	e.Response.Content.Text = shortBody(s.Response.Body)
	return e
}

func shortBody(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(raw))
}
