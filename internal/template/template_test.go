package template

import (
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

// eventTime is the time of the rendered events, read by {event.time}.
var eventTime = time.Date(2024, 6, 18, 23, 22, 36, 560e6, time.UTC)

func TestTemplateRendering(t *testing.T) {
	tests := []struct {
		name, tmpl, data, want string
	}{
		{"absent members are omitted", `{"a":"{contact.name}","b":"{contact.email}"}`, `{"contact":{"name":"Ana"}}`, `{"a":"Ana"}`},
		{"alternatives", `{"a":"{reply.id ?? message.id}"}`, `{"message":{"id":5}}`, `{"a":5}`},
		{"empty string counts as absent", `{"a":"{contact.name ?? =anonymous}"}`, `{"contact":{"name":""}}`, `{"a":"anonymous"}`},
		{"null writes null", `{"a":"{contact.name | null}"}`, `{}`, `{"a":null}`},
		{"default takes JSON", `{"a":"{message.content_attributes | default:{}}","b":"{message.private | default:false}","c":"{message.content_type | default:text}"}`, `{}`,
			`{"a":{},"b":false,"c":"text"}`},
		{"default catches a failed filter", `{"a":"{campaign.keyword | number | default:0}"}`, `{"campaign":{"keyword":"one"}}`, `{"a":0}`},
		{"number", `{"a":"{campaign.keyword | number}","b":"{conversation.id | number}"}`, `{"campaign":{"keyword":" 1 "},"conversation":{"id":"abc"}}`, `{"a":1}`},
		{"number rejects NaN and Inf", `{"a":"{campaign.keyword | number}","b":"{conversation.id | number}"}`, `{"campaign":{"keyword":"NaN"},"conversation":{"id":"Inf"}}`, `{}`},
		{"number:keep keeps what is not numeric", `{"a":"{conversation.id | number:keep}","b":"{contact.id | number:keep}"}`, `{"conversation":{"id":"150"},"contact":{"id":"c-9"}}`, `{"a":150,"b":"c-9"}`},
		{"string", `{"a":"{account.id | string}","b":"{conversation.ai_enabled | string}"}`, `{"account":{"id":12},"conversation":{"ai_enabled":true}}`, `{"a":"12","b":"true"}`},
		{"times", `{"a":"{message.created_at | iso8601ms}","b":"{reply.created_at | iso8601ms}","c":"{conversation.created_at | unix}","d":"{step.id | unix}"}`,
			`{"message":{"created_at":1718753174206},"reply":{"created_at":"1718752956.56"},"conversation":{"created_at":"2020-03-03 13:05:57 UTC"},"step":{"id":"not a time"}}`,
			`{"a":"2024-06-18T23:26:14.206Z","b":"2024-06-18T23:22:36.560Z","c":1583240757}`},
		{"map", `{"a":"{message.direction | map:incoming=0,outgoing=1}","b":"{channel | map:web=Channel::WebWidget}"}`, `{"message":{"direction":"outgoing"},"channel":"sms"}`, `{"a":1,"b":"sms"}`},
		{"interpolation applies filters", `{"a":"#{conversation.id | number} at {event.time | unix}, {contact.name}"}`, `{"conversation":{"id":"7"}}`, `{"a":"#7 at 1718752956, "}`},
		{"an object with nothing known is absent", `{"x":"{channel}","assignee":{"id":"{conversation.assignee.id}","type":"user","flag":"{message.private | default:false}"}}`, `{"channel":"web"}`, `{"x":"web"}`},
		{"an array with nothing known is absent", `{"x":"{channel}","l":["{contact.name}"],"s":[]}`, `{"channel":"web"}`, `{"x":"web","s":[]}`},
		{"event metadata is not knowledge", `{"m":{"at":"{message.created_at ?? event.time | unix}","type":"{event.name}"}}`, `{}`, `{}`},
		{"the root is always an object", `{"a":"{contact.name | null}"}`, `{}`, `{"a":null}`},
		{"nested braces stay inside the placeholder", `{"a":"{message.content_attributes | default:{}}"}`, `{"message":{"content_attributes":{"items":[1]}}}`, `{"a":{"items":[1]}}`},
		{"event data", `{"d":"{event.data}","t":"{event.type}"}`, `{"channel":"web"}`, `{"d":{"channel":"web"},"t":"message.received"}`},
		{"invalid UTF-8 becomes U+FFFD", `{"a":"{message.content}"}`, "{\"message\":{\"content\":\"a\xffb\"}}", "{\"a\":\"a\uFFFDb\"}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRendering(t, tc.tmpl, tc.data, eventTime, tc.want)
		})
	}
}

// The event's time reads as its RFC 3339 text does: a time filter on a
// time whose text has no four-digit year finds no time.
func TestEventTimeRendering(t *testing.T) {
	tmpl := `{"t":"{event.time}","ms":"{event.time | iso8601ms}","u":"{event.time | unix}","s":"at {event.time | unix}"}`
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"in UTC", eventTime, `{"t":"2024-06-18T23:22:36.56Z","ms":"2024-06-18T23:22:36.560Z","u":1718752956,"s":"at 1718752956"}`},
		{"with an offset", eventTime.In(time.FixedZone("", -3*3600)), `{"t":"2024-06-18T20:22:36.56-03:00","ms":"2024-06-18T23:22:36.560Z","u":1718752956,"s":"at 1718752956"}`},
		{"beyond year 9999", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), `{"t":"10000-01-01T00:00:00Z","s":"at "}`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRendering(t, tmpl, `{}`, tc.at, tc.want) })
	}
}

// checkRendering renders tmpl for an event of data at a time.
func checkRendering(t *testing.T, tmpl, data string, at time.Time, want string) {
	t.Helper()
	compiled, err := Parse(tmpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{ID: "evt_1", Type: event.MessageReceived, Time: at, Data: []byte(data)}
	if got := string(compiled.Render(nil, ev, "x")); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}
