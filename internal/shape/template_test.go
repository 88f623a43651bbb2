package shape

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

// shapeOne renders one event through a schema built from payload and defs.
func shapeOne(t *testing.T, s Schema, typ, data string) []Payload {
	t.Helper()
	if s.Name == "" {
		s.Name = "test"
	}
	sh, err := New(Config{Schema: s.Name, Custom: []Schema{s}})
	if err != nil {
		t.Fatal(err)
	}
	return sh.Shape(&event.Event{ID: "evt_1", Type: typ, Time: goldenTime, Data: []byte(data)})
}

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
			got := shapeOne(t, Schema{Payload: json.RawMessage(tc.tmpl), Events: map[string][]SchemaEvent{event.MessageReceived: {{Name: "x"}}}}, event.MessageReceived, tc.data)
			if len(got) != 1 || string(got[0].Body) != tc.want {
				t.Errorf("\n got %s\nwant %s", got[0].Body, tc.want)
			}
		})
	}
}

func TestDefsAndVariants(t *testing.T) {
	s := Schema{
		Defs: map[string]json.RawMessage{
			"account": json.RawMessage(`{"id":"{account.id}","name":"{account.name}"}`),
			"contact": json.RawMessage(`{"id":"{contact.id}","type":"contact","account":{"$ref":"account"}}`),
		},
		Payload: json.RawMessage(`{"event":"{event.name}","contact":{"$ref":"contact"}}`),
		Events: map[string][]SchemaEvent{
			event.MessageReceived: {{Name: "received", Payload: json.RawMessage(`{"contact":{"type":"visitor"}}`), Variants: []Variant{
				{When: map[string]json.RawMessage{"channel": json.RawMessage(`["whatsapp","telegram"]`)}, Payload: json.RawMessage(`{"kind":"chat"}`)},
				{When: map[string]json.RawMessage{"channel": json.RawMessage(`"email"`), "message.subject": json.RawMessage(`null`)}, Payload: json.RawMessage(`{"kind":"mail without subject"}`)},
				{When: map[string]json.RawMessage{"channel": json.RawMessage(`"email"`)}, Payload: json.RawMessage(`{"kind":"mail"}`)},
			}}},
		},
	}
	tests := []struct{ data, want string }{
		{`{"channel":"telegram","contact":{"id":1},"account":{"id":2}}`, `{"event":"received","contact":{"id":1,"type":"visitor","account":{"id":2}},"kind":"chat"}`},
		{`{"channel":"email","message":{"subject":""}}`, `{"event":"received","kind":"mail without subject"}`},
		{`{"channel":"email","message":{"subject":"Hi"}}`, `{"event":"received","kind":"mail"}`},
		{`{"channel":"web"}`, ``},
	}
	for _, tc := range tests {
		got := shapeOne(t, s, event.MessageReceived, tc.data)
		var body string
		if len(got) > 0 {
			body = string(got[0].Body)
		}
		if body != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.data, body, tc.want)
		}
	}
}

func TestBadSchemasFailWithAClearError(t *testing.T) {
	ev := func(payload string, variants ...Variant) map[string][]SchemaEvent {
		return map[string][]SchemaEvent{event.MessageReceived: {{Name: "x", Payload: json.RawMessage(payload), Variants: variants}}}
	}
	tests := []struct {
		name string
		s    Schema
		want string
	}{
		{"unknown field", Schema{Events: ev(`{"a":"{contact.nmae}"}`)}, `unknown event field "contact.nmae"`},
		{"unknown filter", Schema{Events: ev(`{"a":"{contact.name | upper}"}`)}, `unknown filter "upper"`},
		{"unknown def", Schema{Events: ev(`{"$ref":"nope"}`)}, `unknown def "nope"`},
		{"cyclic defs", Schema{Defs: map[string]json.RawMessage{"a": json.RawMessage(`{"b":{"$ref":"b"}}`), "b": json.RawMessage(`{"a":{"$ref":"a"}}`)}, Events: ev(`{}`)}, "refers to itself"},
		{"unknown when field", Schema{Events: ev(`{}`, Variant{When: map[string]json.RawMessage{"chanel": json.RawMessage(`"web"`)}})}, `when: unknown event field "chanel"`},
		{"object in when", Schema{Events: ev(`{}`, Variant{When: map[string]json.RawMessage{"channel": json.RawMessage(`{"a":1}`)}})}, "want a scalar"},
		{"unclosed placeholder", Schema{Events: ev(`{"a":"{contact.name"}`)}, "unclosed placeholder"},
		{"unknown event type", Schema{Events: map[string][]SchemaEvent{"message.exploded": {{Name: "x", Payload: json.RawMessage(`{}`)}}}}, `unknown canonical event type "message.exploded"`},
		{"no payload", Schema{Events: map[string][]SchemaEvent{event.MessageReceived: {{Name: "x"}}}}, "no payload template"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Name = "bad"
			err := CheckSchema(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestTemplateFromFields(t *testing.T) {
	tmpl, err := TemplateFromFields([][2]string{
		{"eventType", "{event.name}"},
		{"payload.from", "{contact.phone}"},
		{"payload.message", "{message.content}"},
		{"payload.greeting", "Hi {contact.name}"},
		{"message_type", "0"},
		{"private", "false"},
		{"meta", "{}"},
		{"label", `"1"`},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"eventType":"{event.name}","payload":{"from":"{contact.phone}","message":"{message.content}","greeting":"Hi {contact.name}"},"message_type":0,"private":false,"meta":{},"label":"1"}`
	if string(tmpl) != want {
		t.Fatalf("\n got %s\nwant %s", tmpl, want)
	}
	got := shapeOne(t, Schema{Events: map[string][]SchemaEvent{event.MessageReceived: {{Name: "in", Payload: tmpl}}}}, event.MessageReceived, `{"message":{"content":"Hello"}}`)
	if want := `{"eventType":"in","payload":{"message":"Hello","greeting":"Hi "},"message_type":0,"private":false,"meta":{},"label":"1"}`; string(got[0].Body) != want {
		t.Errorf("\n got %s\nwant %s", got[0].Body, want)
	}
	for _, bad := range []struct {
		pairs [][2]string
		want  string
	}{
		{[][2]string{{"a", "1"}, {"a", "2"}}, "conflicts"},
		{[][2]string{{"a", "1"}, {"a.b", "2"}}, "conflicts"},
		{[][2]string{{"a.b", "1"}, {"a", "2"}}, "conflicts"},
		{[][2]string{{"a..b", "1"}}, "dotted path"},
		{[][2]string{{"a", "{contact.nmae}"}}, "unknown event field"},
	} {
		if _, err := TemplateFromFields(bad.pairs); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want it to mention %q", bad.pairs, err, bad.want)
		}
	}
}

func TestShaperFiltersEventsAndAddsBody(t *testing.T) {
	sh, err := New(Config{Schema: "voxsig", Events: []string{"message_created"}, Body: json.RawMessage(`{"source":"caddy","tenant":"{account.id}"}`)})
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{ID: "evt_1", Type: event.MessageReplied, Time: goldenTime, Data: []byte(`{"account":{"id":1},"message":{"content":"Hi"},"reply":{"content":"Hello"}}`)}
	out := sh.Shape(ev)
	if len(out) != 2 {
		t.Fatalf("message.replied gave %d voxsig payloads, want 2 (the message and the reply)", len(out))
	}
	for i, want := range []string{`"message_type":0`, `"message_type":1`} {
		if b := string(out[i].Body); !strings.Contains(b, want) || !strings.HasSuffix(b, `"source":"caddy","tenant":1}`) {
			t.Errorf("payload %d: %s", i, b)
		}
	}
	ev.Type = event.ConversationCreated
	if out := sh.Shape(ev); len(out) != 0 {
		t.Errorf("filtered event delivered: %s", out[0].Body)
	}
	if _, err := New(Config{Schema: "chatzuri", Events: []string{"message_created"}}); err == nil {
		t.Error("an event name the schema lacks must be refused")
	}
}
