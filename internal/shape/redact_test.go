package shape

import (
	"encoding/json"
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

func TestRedactionRemovesPathsFromEveryPayload(t *testing.T) {
	s := Schema{Name: "test", Payload: json.RawMessage(`{"user":{"email":"{contact.email}","name":"{contact.name}"},"phone":"{contact.phone}","text":"{message.content}"}`),
		Events: map[string][]SchemaEvent{event.MessageReceived: {{Name: "a"}, {Name: "b"}}}}
	data := `{"contact":{"email":"ana@example.com","name":"Ana","phone":"+351"},"message":{"content":"Hi"}}`
	for _, tc := range []struct {
		name   string
		redact []string
		want   string
	}{
		{"nothing redacted", nil, `{"user":{"email":"ana@example.com","name":"Ana"},"phone":"+351","text":"Hi"}`},
		{"a top-level member", []string{"phone"}, `{"user":{"email":"ana@example.com","name":"Ana"},"text":"Hi"}`},
		{"a nested member, siblings kept", []string{"user.email"}, `{"user":{"name":"Ana"},"phone":"+351","text":"Hi"}`},
		{"a path the payload lacks is no error", []string{"nowhere.at.all", "phone"}, `{"user":{"email":"ana@example.com","name":"Ana"},"text":"Hi"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh, err := New(Config{Schema: "test", Custom: []Schema{s}, Redact: tc.redact})
			if err != nil {
				t.Fatal(err)
			}
			out := sh.Shape(&event.Event{ID: "evt_1", Type: event.MessageReceived, Time: goldenTime, Data: []byte(data)})
			if len(out) != 2 {
				t.Fatalf("got %d payloads, want 2", len(out))
			}
			for _, p := range out {
				if string(p.Body) != tc.want {
					t.Errorf("%s:\n got %s\nwant %s", p.Event, p.Body, tc.want)
				}
			}
		})
	}
}
