package shape

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/tidwall/gjson"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenTime is the campaign chatbot documentation's example date, so that
// campaign payloads match its examples byte for byte.
var goldenTime = time.Date(2024, 6, 18, 23, 22, 36, 560e6, time.UTC)

// richData knows every field, with the platforms' documented example values
// where they have them (Chatwoot's message, browser and account). Events of every
// type are built from it, so that a schema leaving a field out of an event
// is the schema's choice, never a gap in the data.
const richData = `{
	"channel": "web",
	"agent": {"id": "agent_abc123", "name": "Support Bot"},
	"account": {"id": 1, "name": "Chatwoot"},
	"inbox": {"id": 2, "name": "Website"},
	"conversation": {
		"id": 150, "status": "open", "priority": "high", "ai_enabled": true, "team_id": 4,
		"assignee": {"id": 7, "name": "Agent", "email": "agent@example.com"},
		"labels": ["billing", "vip"], "attributes": {"plan": "pro"},
		"additional_attributes": {
			"browser": {"device_name": "Macbook", "browser_name": "Chrome", "platform_name": "Macintosh", "browser_version": "80.0.3987.122", "platform_version": "10.15.2"},
			"referer": "http://www.chatwoot.com",
			"initiated_at": {"timestamp": "Tue Mar 03 2020 18:37:38 GMT-0700 (Mountain Standard Time)"}
		},
		"summary": "Asks about an order", "frustration": "0.2", "created_at": 1583265900,
		"can_reply": true, "unread_count": 1, "snoozed_until": "2020-03-04T09:00:00Z",
		"waiting_since": 1583266000, "first_reply_created_at": "2020-03-03T13:06:30Z",
		"agent_last_seen_at": 1583266100, "contact_last_seen_at": "1583266200", "last_activity_at": 1583266300
	},
	"message": {"id": 1, "content": "Hi", "direction": "incoming", "content_type": "text", "content_attributes": {},
		"private": false, "created_at": "2020-03-03 13:05:57 UTC"},
	"reply": {"id": "812", "content": "Hello! How can I help?", "created_at": 1583240758},
	"contact": {"id": "42", "name": "contact-name", "email": "contact@example.com", "phone": "+1234567890",
		"avatar": "https://example.com/a.png", "attributes": {"tier": "gold"}},
	"contact_inbox": {"id": 9, "created_at": 1583265800, "updated_at": 1583265800, "hmac_verified": false},
	"source_id": "8fbd4ad7-4ca1-4c31-9ab6-0ac3d3ad4e11",
	"group": {"id": "120363041234567890@g.us", "name": "Order support"},
	"scenario": {"id": "sc_1", "name": "Onboarding"}, "step": {"id": "st_2", "name": "Ask email"}
}`

// agentMessage is the message of events where the agent (not the contact)
// wrote it.
const agentMessage = `{"message": {"id": 3, "content": "Our team will reach out shortly.", "direction": "outgoing",
	"content_type": "input_select", "content_attributes": {"items": [{"title": "Option 1", "value": "option_1"}]},
	"sender": {"id": 7, "name": "Agent", "email": "agent@example.com", "type": "user"}}}`

// perType adds what only some event types carry to richData.
var perType = map[string]string{
	event.MessageSent:          agentMessage,
	event.MessageFollowUp:      agentMessage,
	event.MessageBlocked:       agentMessage,
	event.MessageNoted:         agentMessage,
	event.MessageUpdated:       `{"message": {"direction": "outgoing", "content_attributes": {"submitted_values": [{"title": "Option 1", "value": "option_1"}]}, "sender": {"id": 7, "name": "Agent", "email": "agent@example.com", "type": "user"}}}`,
	event.ConversationUpdated:  `{"conversation": {"changed": [{"priority": {"previous_value": "low", "current_value": "high"}}]}}`,
	event.ConversationStatus:   `{"conversation": {"status": "resolved"}}`,
	event.GroupMessageReceived: `{"channel": "whatsapp"}`,
	event.WidgetOpened: `{"widget": {"event_info": {"initiated_at": {"timestamp": "Tue Mar 03 2020 18:37:38 GMT-0700"}, "referer": "http://www.chatwoot.com",
		"widget_language": "en", "browser_language": "en",
		"browser": {"browser_name": "Chrome", "browser_version": "80.0.3987.122", "device_name": "Macbook", "platform_name": "Macintosh", "platform_version": "10.15.2"}}}}`,
}

// goldenCase is one canonical event rendered by one schema.
type goldenCase struct {
	schema, name, typ string
	data              string // event data; empty means richData with perType
	documented        string // the platform documentation's example payload, byte for byte, when it gives one
}

func goldenCases() []goldenCase {
	var cases []goldenCase
	for _, schema := range []string{"chatvolt", "voxsig", "chatwoot", "standard"} {
		for _, typ := range sortedEventTypes(schema) {
			cases = append(cases, goldenCase{schema: schema, name: typ, typ: typ})
		}
	}
	const noise = `"account": {"id": 1}, "contact": {"name": "John Doe"}, "agent": {"id": "agent_abc123", "name": "Bot"}`
	chatzuri := []struct{ channel, fields, documented string }{
		{"whatsapp", `"contact": {"phone": "+1234567890"}, "message": {"content": "Hello, I need help with my order"}`,
			`{"eventType":"message.received","channel":"whatsapp","agentId":"agent_abc123","payload":{"from":"+1234567890","message":"Hello, I need help with my order","conversationId":"conv_xyz"}}`},
		{"telegram", `"contact": {"platform_id": "123456789", "username": "john_doe"}, "message": {"content": "What are your opening hours?"}`,
			`{"eventType":"message.received","channel":"telegram","agentId":"agent_abc123","payload":{"chatId":123456789,"username":"john_doe","message":"What are your opening hours?","conversationId":"conv_xyz"}}`},
		{"facebook", `"contact": {"platform_id": "fb_user_123"}, "page": {"id": "fb_page_456"}, "message": {"content": "Is this product still available?"}`,
			`{"eventType":"message.received","channel":"facebook","agentId":"agent_abc123","payload":{"senderId":"fb_user_123","pageId":"fb_page_456","message":"Is this product still available?","conversationId":"conv_xyz"}}`},
		{"instagram", `"contact": {"platform_id": "ig_user_789"}, "message": {"content": "Do you ship internationally?"}`,
			`{"eventType":"message.received","channel":"instagram","agentId":"agent_abc123","payload":{"senderId":"ig_user_789","message":"Do you ship internationally?","conversationId":"conv_xyz"}}`},
		{"email", `"contact": {"email": "customer@example.com"}, "message": {"subject": "Order inquiry", "content": "I placed an order yesterday and have not received a confirmation."}`,
			`{"eventType":"message.received","channel":"email","agentId":"agent_abc123","payload":{"from":"customer@example.com","subject":"Order inquiry","message":"I placed an order yesterday and have not received a confirmation.","conversationId":"conv_xyz"}}`},
		{"web", `"widget": {"session_id": "session_abc", "page_url": "https://yoursite.com/pricing"}, "message": {"content": "Hi, I need help!"}`,
			`{"eventType":"message.received","channel":"web","agentId":"agent_abc123","payload":{"sessionId":"session_abc","message":"Hi, I need help!","conversationId":"conv_xyz","pageUrl":"https://yoursite.com/pricing"}}`},
		{"api", `"message": {"content": "Where is my parcel?"}`,
			`{"eventType":"message.received","channel":"api","agentId":"agent_abc123","payload":{"message":"Where is my parcel?","conversationId":"conv_xyz"}}`},
	}
	for _, c := range chatzuri {
		data := mergeJSON(`{`+noise+`}`, `{"channel": "`+c.channel+`", "conversation": {"id": "conv_xyz"}, `+c.fields+`}`)
		cases = append(cases, goldenCase{schema: "chatzuri", name: event.MessageReceived + "." + c.channel, typ: event.MessageReceived, data: data, documented: c.documented})
	}
	webReply := mergeJSON(`{`+noise+`}`, `{"channel": "web", "conversation": {"id": "conv_xyz"}, "widget": {"session_id": "session_abc", "page_url": "https://yoursite.com/pricing"},
		"message": {"content": "Hi, I need help!"}, "reply": {"content": "Sure, what do you need?"}}`)
	return append(cases,
		goldenCase{schema: "chatzuri", name: event.MessageReplied, typ: event.MessageReplied, data: webReply,
			documented: `{"eventType":"message.received","channel":"web","agentId":"agent_abc123","payload":{"sessionId":"session_abc","message":"Hi, I need help!","conversationId":"conv_xyz","pageUrl":"https://yoursite.com/pricing"}}`},
		goldenCase{schema: "chatzuri", name: event.LeadSubmitted, typ: event.LeadSubmitted,
			data:       `{"channel": "web", "agent": {"id": "agent_abc123"}, "conversation": {"id": "conv_xyz"}, "contact": {"email": "john@example.com", "name": "John Doe", "phone": "+1234567890"}}`,
			documented: `{"eventType":"lead.submit","agentId":"agent_abc123","payload":{"conversationId":"conv_xyz","customerEmail":"john@example.com","customerName":"John Doe","customerPhone":"+1234567890"}}`},
		goldenCase{schema: "campaign", name: event.CampaignResponse, typ: event.CampaignResponse,
			data:       `{"campaign": {"id": 13010, "label": "Welcome Message", "response": "John Doe"}, "contact": {"phone": "+525500000000", "name": "John"}, "message": {"content": "John Doe"}}`,
			documented: `{"campaignId":"13010","label":"Welcome Message","phoneNumber":"+525500000000","date":"2024-06-18T23:22:36.560Z","response":"John Doe"}`},
		goldenCase{schema: "campaign", name: event.CampaignOption, typ: event.CampaignOption,
			data:       `{"campaign": {"id": "13010", "label": "Welcome Message", "option": "One month", "keyword": "1"}, "contact": {"phone": "+525500000000"}, "message": {"created_at": 1718753174206}}`,
			documented: `{"campaignId":"13010","label":"Welcome Message","option":"One month","keyword":1,"phoneNumber":"+525500000000","date":"2024-06-18T23:26:14.206Z"}`},
	)
}

func sortedEventTypes(schema string) []string {
	var types []string
	for typ := range schemas[schema].Events {
		types = append(types, typ)
	}
	sort.Strings(types)
	return types
}

func (c goldenCase) event() *event.Event {
	data := c.data
	if data == "" {
		data = mergeJSON(richData, perType[c.typ])
	}
	return &event.Event{ID: "evt_000000000000000000000001", Type: c.typ, Time: goldenTime, Data: []byte(data)}
}

func (c goldenCase) render(t *testing.T) []Payload {
	t.Helper()
	s, err := New(Config{Schema: c.schema})
	if err != nil {
		t.Fatal(err)
	}
	out := s.Shape(c.event())
	if len(out) == 0 {
		t.Fatalf("%s/%s: no payload", c.schema, c.name)
	}
	for _, p := range out {
		if !json.Valid(p.Body) {
			t.Fatalf("%s/%s: invalid JSON: %s", c.schema, c.name, p.Body)
		}
	}
	return out
}

// mergeJSON lays over's members on base, objects member by member.
func mergeJSON(base, over string) string {
	var b, o map[string]any
	if err := json.Unmarshal([]byte(base), &b); err != nil {
		panic(err)
	}
	if over != "" {
		if err := json.Unmarshal([]byte(over), &o); err != nil {
			panic(err)
		}
	}
	out, _ := json.Marshal(deepMerge(b, o))
	return string(out)
}

func deepMerge(base, over map[string]any) map[string]any {
	for k, v := range over {
		if bm, ok := base[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				base[k] = deepMerge(bm, om)
				continue
			}
		}
		base[k] = v
	}
	return base
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		t.Run(c.schema+"/"+c.name, func(t *testing.T) {
			var doc bytes.Buffer
			doc.WriteByte('[')
			for i, p := range c.render(t) {
				if i > 0 {
					doc.WriteByte(',')
				}
				fmt.Fprintf(&doc, `{"event":%q,"payload":%s}`, p.Event, p.Body)
			}
			doc.WriteByte(']')
			var got bytes.Buffer
			if err := json.Indent(&got, doc.Bytes(), "", "\t"); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')
			file := filepath.Join("testdata", "golden", c.schema, c.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from the golden file (go test -run TestGolden -update):\n%s", file, got.Bytes())
			}
		})
	}
}

// TestPlatformDocumentationExamples renders the platforms' own documented
// example values and wants their documented example payloads, byte for byte
// (order included).
func TestPlatformDocumentationExamples(t *testing.T) {
	for _, c := range goldenCases() {
		if c.documented == "" {
			continue
		}
		t.Run(c.schema+"/"+c.name, func(t *testing.T) {
			if got := string(c.render(t)[0].Body); got != c.documented {
				t.Errorf("\n got %s\nwant %s", got, c.documented)
			}
		})
	}
}

// The platforms' documented structures, as data. A spec is a type name
// ("string", "number", "integer", "boolean", "null", "object" for any
// object, "[string]" for an array of strings, or "a|b"), an obj whose keys
// must be exactly those given (a key ending in "?" may be absent), a
// one-element []any for an array of that spec, or anyOf.
type obj = map[string]any

type anyOf []any

// agentBot is the sender of the AI's replies, as Chatwoot writes an agent
// bot; its id is the configured agent id, which need not be an integer.
var agentBot = obj{"id": "integer|string", "name": "string", "type": "string"}

// join builds an object spec from parts.
func join(parts ...obj) obj {
	out := obj{}
	for _, p := range parts {
		for k, v := range p {
			out[k] = v
		}
	}
	return out
}

// chatvoltSpecs follows ChatVolt's "Attribute Details & Conditional
// Inclusion" list literally: every attribute group is included for
// exactly the events ChatVolt's documentation names for it.
func chatvoltSpecs() map[string]obj {
	core := obj{"eventType": "string", "conversationId": "string", "agentId": "string", "agentName": "string", "channel": "string",
		"conversationStatus": "string", "conversationPriority": "string", "isAiEnabled": "boolean", "organizationId": "string"}
	optional := obj{"assignee": "string", "assigneeName": "string", "userName": "string", "userEmail": "string", "userPhoneNumber": "string",
		"summary": "string", "createdAt": "string", "frustration": "number", "tags": "[string]"}
	groups := []struct {
		attrs  obj
		events []string
	}{
		{obj{"messageId": "string"}, []string{"USER_MESSAGE_RECEIVED", "AGENT_MESSAGE_SENDED", "AGENT_USER_MESSAGE", "AGENT_MESSAGE_NOTED", "GROUP_MESSAGE_RECEIVED"}},
		{obj{"userMessage": "string"}, []string{"USER_MESSAGE_RECEIVED", "AGENT_USER_MESSAGE", "GROUP_MESSAGE_RECEIVED"}},
		{obj{"agentResponse": "string"}, []string{"AGENT_MESSAGE_SENDED", "AGENT_USER_MESSAGE", "AGENT_MESSAGE_BLOCKED", "AGENT_MESSAGE_NOTED"}},
		{obj{"groupId": "string", "groupName": "string"}, []string{"GROUP_MESSAGE_RECEIVED"}},
		{obj{"scenarioId": "string", "scenarioName": "string", "stepId": "string", "stepName": "string"}, []string{"STEP_ENTERED"}},
	}
	specs := map[string]obj{}
	for _, ev := range []string{"USER_MESSAGE_RECEIVED", "AGENT_MESSAGE_SENDED", "AGENT_USER_MESSAGE", "AGENT_MESSAGE_FOLLOW_UP",
		"AGENT_MESSAGE_BLOCKED", "AGENT_MESSAGE_NOTED", "GROUP_MESSAGE_RECEIVED", "STEP_ENTERED"} {
		spec := join(core, optional)
		for _, g := range groups {
			if slices.Contains(g.events, ev) {
				spec = join(spec, g.attrs)
			}
		}
		specs[ev] = spec
	}
	return specs
}

// voxsigSpecs is Voxsig's documented objects and events.
func voxsigSpecs() map[string]obj {
	account := obj{"id": "integer", "name": "string"}
	inbox := obj{"id": "integer", "name": "string"}
	contact := obj{"id": "integer", "name": "string", "avatar": "string", "type": "string", "account": account}
	user := obj{"id": "integer", "name": "string", "email": "string", "type": "string"}
	message := obj{"id": "integer", "content": "string", "message_type": "integer", "created_at": "integer", "private": "boolean",
		"source_id": "string|null", "content_type": "string", "content_attributes": "object", "sender?": anyOf{contact, user, agentBot}}
	conversation := obj{
		"additional_attributes": obj{
			"browser":      obj{"device_name": "string", "browser_name": "string", "platform_name": "string", "browser_version": "string", "platform_version": "string"},
			"referer":      "string",
			"initiated_at": obj{"timestamp": "string"},
		},
		"can_reply": "boolean", "channel": "string", "id": "integer", "inbox_id": "integer",
		"contact_inbox": obj{"id": "integer", "contact_id": "integer", "inbox_id": "integer", "source_id": "string",
			"created_at": "string", "updated_at": "string", "hmac_verified": "boolean"},
		"messages":           []any{message},
		"meta":               obj{"sender": contact, "assignee": user},
		"status":             "string",
		"unread_count":       "integer",
		"agent_last_seen_at": "integer", "contact_last_seen_at": "integer", "timestamp": "integer", "account_id": "integer",
	}
	messageEvent := join(message, obj{"event": "string", "account": account, "conversation": conversation, "inbox": inbox})
	event := obj{"event": "string"}
	return map[string]obj{
		"conversation_created":        join(event, conversation),
		"conversation_updated":        join(event, conversation, obj{"changed_attributes": []any{obj{"priority": obj{"current_value": "string", "previous_value": "string"}}}}),
		"conversation_status_changed": join(event, conversation),
		"message_created":             messageEvent,
		"message_updated":             messageEvent,
		"webwidget_triggered": {"id": "integer", "contact": contact, "inbox": inbox, "account": account, "current_conversation": conversation,
			"source_id": "string", "event": "string", "event_info": obj{
				"initiated_at": obj{"timestamp": "string"}, "referer": "string", "widget_language": "string", "browser_language": "string",
				"browser": obj{"browser_name": "string", "browser_version": "string", "device_name": "string", "platform_name": "string", "platform_version": "string"},
			}},
	}
}

// chatwootSpecs is what Chatwoot 4.x sends (its models' webhook_data and
// push_event_data), keeping the members of Chatwoot's first webhook
// documentation (a message's top-level contact, a conversation's
// display_id). Members marked optional are Chatwoot's that traffic never
// tells (a contact's blocked flag, the assignee's type).
func chatwootSpecs() map[string]obj {
	account := obj{"id": "integer", "name": "string"}
	inbox := obj{"id": "integer", "name": "string"}
	contactFields := obj{"id": "integer", "name": "string", "email": "string", "phone_number": "string", "thumbnail": "string",
		"custom_attributes": "object", "identifier?": "string", "additional_attributes?": "object", "blocked?": "boolean"}
	// A contact as a message's sender and in contact events: no type.
	contact := join(contactFields, obj{"account": account, "avatar": "string"})
	// A contact as a conversation's meta.sender.
	contactPush := join(contactFields, obj{"type": "string"})
	user := obj{"id": "integer", "name": "string", "email": "string", "type": "string"}
	message := obj{"id": "integer", "content": "string", "created_at": "string", "message_type": "string", "content_type": "string",
		"content_attributes": "object", "additional_attributes": "object", "source_id": "string|null", "private": "boolean",
		"sender?": anyOf{contact, user, agentBot}, "attachments?": []any{"object"}}
	pushMessage := obj{"id": "integer", "content": "string", "account_id": "integer", "inbox_id": "integer", "conversation_id": "integer",
		"message_type": "integer", "created_at": "integer", "private": "boolean", "source_id": "string|null", "content_type": "string",
		"content_attributes": "object", "sender_type?": "string", "sender_id?": "integer|string", "sender?": anyOf{contactPush, user, agentBot}}
	conversation := obj{
		"additional_attributes": obj{
			"browser":      obj{"device_name": "string", "browser_name": "string", "platform_name": "string", "browser_version": "string", "platform_version": "string"},
			"referer":      "string",
			"initiated_at": obj{"timestamp": "string"},
		},
		"can_reply": "boolean", "channel": "string", "id": "integer", "display_id": "integer", "inbox_id": "integer",
		"contact_inbox": obj{"id": "integer", "contact_id": "integer", "inbox_id": "integer", "source_id": "string",
			"created_at": "string", "updated_at": "string", "hmac_verified": "boolean"},
		"messages": []any{pushMessage}, "labels": "[string]",
		"meta":   obj{"sender": contactPush, "assignee": user, "assignee_type?": "string", "team": obj{"id": "integer"}, "hmac_verified": "boolean"},
		"status": "string", "custom_attributes": "object", "snoozed_until": "string|null", "unread_count": "integer",
		"first_reply_created_at": "string|null", "priority": "string|null", "waiting_since": "integer",
		"agent_last_seen_at": "integer", "contact_last_seen_at": "integer", "last_activity_at": "integer",
		"timestamp": "integer", "created_at": "integer", "updated_at": "number", "account_id": "integer", "account": account,
	}
	messageEvent := join(message, obj{"event": "string", "contact": contact, "conversation": conversation, "account": account, "inbox": inbox})
	event := obj{"event": "string"}
	changed := func(attr string) obj {
		return obj{"changed_attributes": []any{obj{attr: obj{"current_value": "string", "previous_value": "string"}}}}
	}
	return map[string]obj{
		"conversation_created":        join(event, conversation),
		"conversation_updated":        join(event, conversation, changed("priority")),
		"conversation_status_changed": join(event, conversation, obj{"changed_attributes": "null"}),
		"contact_created":             join(event, contact),
		"message_created":             messageEvent,
		"message_updated":             messageEvent,
		"webwidget_triggered": {"id": "integer", "contact": contact, "inbox": inbox, "account": account, "current_conversation": conversation,
			"source_id": "string", "event": "string", "event_info": "object"},
	}
}

// TestChatwootPayloadsHaveTodaysTopLevelMembers lists the top-level members
// of the message_created and conversation_updated webhooks Chatwoot 4.x
// sends; a chatwoot payload without one of them breaks its receivers.
func TestChatwootPayloadsHaveTodaysTopLevelMembers(t *testing.T) {
	conversation := []string{"event", "id", "status", "priority", "labels", "custom_attributes", "snoozed_until", "unread_count",
		"first_reply_created_at", "waiting_since", "agent_last_seen_at", "contact_last_seen_at", "last_activity_at", "timestamp",
		"created_at", "updated_at", "additional_attributes", "contact_inbox", "meta", "messages", "account", "can_reply", "channel", "inbox_id"}
	members := map[string][]string{
		"message_created": {"event", "id", "content", "created_at", "message_type", "content_type", "content_attributes",
			"additional_attributes", "private", "source_id", "sender", "inbox", "account", "conversation"},
		"conversation_updated": append(conversation, "changed_attributes"),
	}
	seen := map[string]bool{}
	for _, c := range goldenCases() {
		if c.schema != "chatwoot" {
			continue
		}
		for _, p := range c.render(t) {
			want, ok := members[p.Event]
			if !ok {
				continue
			}
			seen[p.Event] = true
			var doc map[string]any
			if err := json.Unmarshal(p.Body, &doc); err != nil {
				t.Fatal(err)
			}
			for _, m := range want {
				if _, ok := doc[m]; !ok {
					t.Errorf("%s (%s): no %q", c.name, p.Event, m)
				}
			}
		}
	}
	if len(seen) != len(members) {
		t.Errorf("rendered %v, want every one of %v", seen, members)
	}
}

func chatzuriSpecs() map[string]obj {
	return map[string]obj{
		"lead.submit": {"eventType": "string", "agentId": "string",
			"payload": obj{"conversationId": "string", "customerEmail": "string", "customerName": "string", "customerPhone": "string"}},
	}
}

func TestGoldenPayloadsFollowThePlatformsDocumentedStructure(t *testing.T) {
	specs := map[string]map[string]obj{"chatvolt": chatvoltSpecs(), "voxsig": voxsigSpecs(), "chatwoot": chatwootSpecs(), "chatzuri": chatzuriSpecs()}
	checked := map[string]bool{}
	for _, c := range goldenCases() {
		for _, p := range c.render(t) {
			spec, ok := specs[c.schema][p.Event]
			if !ok {
				continue
			}
			checked[c.schema+"/"+p.Event] = true
			var doc any
			if err := json.Unmarshal(p.Body, &doc); err != nil {
				t.Fatal(err)
			}
			for _, problem := range checkSpec("", spec, doc) {
				t.Errorf("%s/%s (%s): %s", c.schema, c.name, p.Event, problem)
			}
		}
	}
	for schema, events := range specs {
		for ev := range events {
			if !checked[schema+"/"+ev] {
				t.Errorf("%s: no golden case renders %s", schema, ev)
			}
		}
	}
}

// checkSpec lists how v departs from spec.
func checkSpec(path string, spec, v any) []string {
	switch s := spec.(type) {
	case anyOf:
		for _, alt := range s {
			if len(checkSpec(path, alt, v)) == 0 {
				return nil
			}
		}
		return []string{fmt.Sprintf("%s: %s matches none of the alternatives", path, compact(v))}
	case []any:
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			return []string{fmt.Sprintf("%s: want a non-empty array, got %s", path, compact(v))}
		}
		var out []string
		for i, e := range arr {
			out = append(out, checkSpec(fmt.Sprintf("%s[%d]", path, i), s[0], e)...)
		}
		return out
	case obj:
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %s", path, compact(v))}
		}
		var out []string
		for key, sub := range s {
			name, optional := strings.CutSuffix(key, "?")
			got, present := m[name]
			if !present {
				if !optional {
					out = append(out, fmt.Sprintf("%s.%s: missing", path, name))
				}
				continue
			}
			out = append(out, checkSpec(path+"."+name, sub, got)...)
		}
		for key := range m {
			_, want := s[key]
			_, wantOptional := s[key+"?"]
			if !want && !wantOptional {
				out = append(out, fmt.Sprintf("%s.%s: not in the platform's documented structure", path, key))
			}
		}
		return out
	}
	for _, typ := range strings.Split(spec.(string), "|") {
		if jsonType(v, typ) {
			return nil
		}
	}
	return []string{fmt.Sprintf("%s: want %s, got %s", path, spec, compact(v))}
}

func jsonType(v any, typ string) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "null":
		return v == nil
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "[string]":
		arr, ok := v.([]any)
		for _, e := range arr {
			ok = ok && jsonType(e, "string")
		}
		return ok
	}
	panic("unknown spec type " + typ)
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestChatVoltCoreAttributesAreAlwaysPresent renders an event that knows
// nothing: the core attributes are null, optional ones are left out.
func TestChatVoltCoreAttributesAreAlwaysPresent(t *testing.T) {
	s, err := New(Config{Schema: "chatvolt"})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Shape(&event.Event{ID: "evt_1", Type: event.MessageFollowUp, Time: goldenTime, Data: []byte(`{}`)})
	want := `{"eventType":"AGENT_MESSAGE_FOLLOW_UP","conversationId":null,"agentId":null,"agentName":null,"channel":null,` +
		`"conversationStatus":null,"conversationPriority":null,"isAiEnabled":null,"organizationId":null,"createdAt":"2024-06-18T23:22:36.560Z"}`
	if len(got) != 1 || string(got[0].Body) != want {
		t.Errorf("\n got %s\nwant %s", got[0].Body, want)
	}
}

// TestEveryMappedEventHasAGoldenCase keeps the golden files complete as
// schemas grow.
func TestEveryMappedEventHasAGoldenCase(t *testing.T) {
	have := map[string]bool{}
	for _, c := range goldenCases() {
		have[c.schema+"/"+c.typ] = true
	}
	for _, name := range SchemaNames() {
		for typ := range schemas[name].Events {
			if !have[name+"/"+typ] {
				t.Errorf("schema %s maps %s but no golden case renders it", name, typ)
			}
		}
	}
	if !reflect.DeepEqual(SchemaNames(), []string{"campaign", "chatvolt", "chatwoot", "chatzuri", "standard", "voxsig"}) {
		t.Errorf("built-in schemas %v", SchemaNames())
	}
}

// Each schema does with incomplete text what its platform would: a platform
// never creates half a message, so a message or reply whose text was cut is
// left out where the platform would report it; the standard envelope carries
// the marker itself.
func TestSchemasLeaveOutIncompleteText(t *testing.T) {
	cutReply := `{"reply": {"incomplete": true}}`
	cutMessage := `{"message": {"incomplete": true}}`
	tests := []struct {
		name, typ, data string
		want            map[string][]string // schema: platform events, with the message_type of chatwoot and voxsig ones
	}{
		{"a cut reply", event.MessageReplied, cutReply, map[string][]string{
			"standard": {"message.replied"}, "chatvolt": nil, "chatzuri": {"message.received"},
			"chatwoot": {"message_created incoming"}, "voxsig": {"message_created 0"},
		}},
		{"a reply to a message whose text was cut", event.MessageReplied, cutMessage, map[string][]string{
			"standard": {"message.replied"}, "chatvolt": {"AGENT_USER_MESSAGE"}, "chatzuri": nil,
			"chatwoot": {"message_created outgoing"}, "voxsig": {"message_created 1"},
		}},
		{"a message whose text was cut", event.MessageReceived, cutMessage, map[string][]string{
			"standard": {"message.received"}, "chatvolt": nil, "chatzuri": nil, "chatwoot": nil, "voxsig": nil,
		}},
		{"an agent message whose text was cut", event.MessageSent, cutMessage, map[string][]string{
			"standard": {"message.sent"}, "chatvolt": nil, "chatwoot": nil, "voxsig": nil,
		}},
		{"a campaign response whose text was cut", event.CampaignResponse, cutMessage, map[string][]string{
			"standard": {"campaign.response"}, "campaign": nil,
		}},
	}
	for _, tc := range tests {
		for schema, want := range tc.want {
			t.Run(tc.name+"/"+schema, func(t *testing.T) {
				s, err := New(Config{Schema: schema})
				if err != nil {
					t.Fatal(err)
				}
				data := mergeJSON(mergeJSON(richData, perType[tc.typ]), tc.data)
				var got []string
				for _, p := range s.Shape(&event.Event{ID: "evt_1", Type: tc.typ, Time: goldenTime, Data: []byte(data)}) {
					name := p.Event
					if mt := gjson.GetBytes(p.Body, "message_type"); mt.Exists() {
						name += " " + mt.String()
					}
					got = append(got, name)
					if schema == "standard" && gjson.GetBytes(p.Body, "data").Raw != gjson.Get(data, "@this").Raw {
						t.Errorf("standard data %s, want the event's data", gjson.GetBytes(p.Body, "data").Raw)
					}
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("got %v, want %v", got, want)
				}
			})
		}
	}
}
