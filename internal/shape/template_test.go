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
