package derive

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

func TestFormBodiesReadAsJSONObjects(t *testing.T) {
	const boundary = "b0undary"
	part := func(name, value string) string {
		return "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
	}
	file := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"attachment1\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\x00\x01\r\n"
	end := "--" + boundary + "--\r\n"
	multipart := "multipart/form-data; boundary=" + boundary
	tests := []struct {
		name, ctype, body, want, problem string
		limit                            int64
		cut                              bool
	}{
		{name: "url-encoded fields in order", ctype: "application/x-www-form-urlencoded",
			body: "from=Ana+%3Cana%40example.com%3E&subject=Hi%21&body-plain=line1%0D%0Aline2", want: `{"from":"Ana <ana@example.com>","subject":"Hi!","body-plain":"line1\r\nline2"}`},
		{name: "repeated names stay, empty names go", ctype: "application/x-www-form-urlencoded",
			body: "to=a&to=b&=x&&flag", want: `{"to":"a","to":"b","flag":""}`},
		{name: "a bad escape is kept, invalid UTF-8 replaced", ctype: "application/x-www-form-urlencoded",
			body: "q=100%25+%zz&r=%FF", want: `{"q":"100% %zz","r":"` + "\uFFFD" + `"}`},
		{name: "url-encoded cut at the capture cap loses its last field, which may be only a beginning", ctype: "application/x-www-form-urlencoded", cut: true,
			body: "from=rui%40example.com&stripped-text=Hello+the", want: `{"from":"rui@example.com"}`},
		{name: "url-encoded cut with one field keeps nothing", ctype: "application/x-www-form-urlencoded", cut: true,
			body: "stripped-text=Hello+the", want: `{}`},
		{name: "multipart text fields, files skipped", ctype: multipart,
			body: part("from", "rui@example.com") + file + part("text", "Hello\n") + end, want: `{"from":"rui@example.com","text":"Hello\n"}`},
		{name: "multipart cut at the capture cap keeps the fields before", ctype: multipart,
			body: part("from", "rui@example.com") + part("text", "Hel"), want: `{"from":"rui@example.com"}`, problem: ProblemTruncated},
		{name: "multipart without a boundary", ctype: "multipart/form-data",
			body: part("from", "x"), want: `{}`, problem: ProblemDecodeError},
		{name: "multipart fields beyond the decode limit", ctype: multipart, limit: 4,
			body: part("a", "1234") + part("b", "5") + end, want: `{"a":"1234"}`, problem: ProblemDecodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = DefaultDecodeLimit
			}
			doc, problem := formJSON([]byte(tc.body), http.Header{"Content-Type": {tc.ctype}}, tc.cut, limit)
			if string(doc) != tc.want || problem != tc.problem {
				t.Errorf("got %s (%q), want %s (%q)", doc, problem, tc.want, tc.problem)
			}
		})
	}
}

func TestRulesReadFormFieldsLikeJSONMembers(t *testing.T) {
	d, err := New(Config{Rules: []Rule{{
		Name:   "contact_form",
		Match:  Match{Methods: []string{"POST"}, Paths: []string{"/contact"}},
		Fields: []Field{{To: "contact.email", From: []string{"request.body.email"}}, {To: "message.content", From: []string{"request.body.message"}}},
		Emit:   []Emit{{Event: event.LeadSubmitted}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	out := d.Derive(&capture.Exchange{Method: "POST", Path: "/contact", RequestHeader: http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=UTF-8"}},
		RequestBody: []byte("email=ana%40example.com&message=Call+me")})
	if len(out.Events) != 1 || !strings.Contains(string(out.Events[0].Data), `"email":"ana@example.com"`) || !strings.Contains(string(out.Events[0].Data), `"content":"Call me"`) {
		t.Errorf("got %+v", out)
	}
}
