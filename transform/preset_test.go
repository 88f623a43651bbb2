package transform

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture reads a file under testdata/presets.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "presets", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// traffic describes one exchange in terms of fixture files.
type traffic struct {
	method, target string // target is path?query
	reqType        string // request media type; default application/json
	reqHeader      http.Header
	req            string // fixture file, or inline body when it starts with '{'
	status         int
	respType       string // default application/json, text/event-stream for .sse
	resp           string
	cut            string // cut the response body before this text
}

func (tr traffic) exchange(t testing.TB) *Exchange {
	t.Helper()
	u, err := url.Parse(tr.target)
	if err != nil {
		t.Fatal(err)
	}
	body := func(s string) []byte {
		if s == "" || strings.HasPrefix(s, "{") {
			return []byte(s)
		}
		return fixture(t, s)
	}
	ex := &Exchange{Method: tr.method, Path: u.Path, Query: u.Query(), Status: tr.status,
		RequestHeader: http.Header{}, ResponseHeader: http.Header{}, RequestBody: body(tr.req), ResponseBody: body(tr.resp)}
	for k, v := range tr.reqHeader {
		ex.RequestHeader[k] = v
	}
	ex.RequestHeader.Set("Content-Type", "application/json")
	if tr.reqType != "" {
		ex.RequestHeader.Set("Content-Type", tr.reqType)
	}
	switch {
	case tr.respType != "":
		ex.ResponseHeader.Set("Content-Type", tr.respType)
	case strings.HasSuffix(tr.resp, ".sse"):
		ex.ResponseHeader.Set("Content-Type", "text/event-stream")
	case tr.resp != "":
		ex.ResponseHeader.Set("Content-Type", "application/json; charset=utf-8")
	}
	if tr.cut != "" {
		i := bytes.Index(ex.ResponseBody, []byte(tr.cut))
		if i < 0 {
			t.Fatalf("cut %q not in %s", tr.cut, tr.resp)
		}
		ex.ResponseBody = ex.ResponseBody[:i]
	}
	return ex
}

// want is one expected event: its type and its whole data document.
type want struct {
	typ, data string
}

// allPresetsDeriver enables every preset at once, so each case also proves
// that no other preset claims its traffic.
func allPresetsDeriver(t testing.TB, state StateStore) *Deriver {
	t.Helper()
	d, err := NewDeriver(DeriverConfig{Presets: PresetNames(), State: state})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkEvents compares events with the expected ones, data as JSON values.
func checkEvents(t *testing.T, got []Event, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for _, ev := range got {
			t.Logf("got %s %s", ev.Type, ev.Data)
		}
		t.Fatalf("got %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		ev := got[i]
		var g, e any
		if err := json.Unmarshal(ev.Data, &g); err != nil {
			t.Fatalf("event %d data is not JSON: %v: %s", i, err, ev.Data)
		}
		if err := json.Unmarshal([]byte(w.data), &e); err != nil {
			t.Fatalf("bad expectation %d: %v", i, err)
		}
		if ev.Type != w.typ || !reflect.DeepEqual(g, e) {
			t.Errorf("event %d\n got %s %s\nwant %s %s", i, ev.Type, ev.Data, w.typ, w.data)
		}
	}
}

func TestPresetsDeriveCanonicalEvents(t *testing.T) {
	tests := []struct {
		name     string
		tr       traffic
		want     []want
		problems []string
	}{
		{name: "openai chat message given as text parts yields its text",
			tr: traffic{method: "POST", target: "/v1/chat/completions", req: "openai/chat_parts.request.json"},
			want: []want{
				{MessageReceived, `{"channel":"api","conversation":{"id":"1724fecb7e57f94ad4ee8c278d4b33db"},"contact":{"id":"visitor-7"},"message":{"content":"What is in this picture? It arrived broken.","direction":"incoming"},"extra":{"model":"gpt-4o"}}`},
			}},
		{name: "openai responses json answer is a reply",
			tr: traffic{method: "POST", target: "/v1/responses", req: "openai/responses.request.json", status: 200, resp: "openai/responses.response.json"},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true,"id":"7058f5bf3a0bfe2e9e17ff0b5852ae42"},"channel":"api","contact":{"id":"visitor-7"},"message":{"content":"Where is my parcel?","direction":"incoming"},"reply":{"id":"resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b","content":"It ships today."},"extra":{"model":"gpt-4.1-2025-04-14"}}`},
			}},
		{name: "openai responses stream ends with the completed response",
			tr: traffic{method: "POST", target: "/v1/responses", req: "openai/responses.request.json", status: 200, resp: "openai/responses.sse"},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true,"id":"7058f5bf3a0bfe2e9e17ff0b5852ae42"},"channel":"api","contact":{"id":"visitor-7"},"message":{"content":"Where is my parcel?","direction":"incoming"},"reply":{"id":"resp_stream_1","content":"It ships today."},"extra":{"model":"gpt-4.1-2025-04-14"}}`},
			}},
		{name: "openai responses stream cut before completion keeps the deltas",
			tr: traffic{method: "POST", target: "/v1/responses", req: "openai/responses.request.json", status: 200, resp: "openai/responses.sse", cut: "today."},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true,"id":"7058f5bf3a0bfe2e9e17ff0b5852ae42"},"channel":"api","contact":{"id":"visitor-7"},"message":{"content":"Where is my parcel?","direction":"incoming"},"reply":{"id":"resp_stream_1","content":"It ships "},"extra":{"model":"gpt-4.1-2025-04-14"}}`},
			}, problems: []string{ProblemTruncated}},
		{name: "openai responses string input without answer is a received message",
			tr: traffic{method: "POST", target: "/v1/responses", req: `{"model":"gpt-4.1","input":"Tell me a joke"}`},
			want: []want{
				{MessageReceived, `{"channel":"api","conversation":{"id":"4a813479fd8a5c70652b77a300903fc0"},"message":{"content":"Tell me a joke","direction":"incoming"},"extra":{"model":"gpt-4.1"}}`},
			}},
		{name: "chatvolt json answer is a reply from the agent in the path",
			tr: traffic{method: "POST", target: "/agents/clx1agent001/query", req: "chatvolt/query.request.json", status: 200, resp: "chatvolt/query.response.json"},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true,"id":"clx1conv0001"},"channel":"api","agent":{"id":"clx1agent001"},"contact":{"id":"clx1contact01","name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678"},"message":{"content":"Do you ship to Lisbon?","direction":"incoming"},"reply":{"id":"clx1msg000099","content":"Yes, we ship to Lisbon in 2-3 days."}}`},
			}},
		{name: "chatvolt stream prefers the endpoint response",
			tr: traffic{method: "POST", target: "/agents/clx1agent001/query", req: "chatvolt/new_visitor.request.json", status: 200, resp: "chatvolt/query.sse"},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true,"id":"clx1conv0002"},"channel":"api","agent":{"id":"clx1agent001"},"contact":{"id":"clx1visitor02"},"message":{"content":"Hi","direction":"incoming"},"reply":{"id":"clx1msg000100","content":"Yes, we ship to Lisbon ✈️ (1+1=2% days)."}}`},
			}},
		{name: "chatvolt stream cut before the endpoint response decodes the answer chunks",
			tr: traffic{method: "POST", target: "/agents/clx1agent001/query", req: "chatvolt/new_visitor.request.json", status: 200, resp: "chatvolt/query.sse", cut: "event: endpoint_response"},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true},"channel":"api","agent":{"id":"clx1agent001"},"message":{"content":"Hi","direction":"incoming"},"reply":{"content":"Yes, we ship to Lisbon ✈️ (1+1=2% days)."}}`},
			}, problems: []string{ProblemTruncated}},
		{name: "chatvolt query with the upstream down is a received message",
			tr: traffic{method: "POST", target: "/api/agents/clx1agent001/query", req: "chatvolt/query.request.json"},
			want: []want{
				{MessageReceived, `{"channel":"api","agent":{"id":"clx1agent001"},"conversation":{"id":"clx1conv0001"},"contact":{"id":"clx1contact01","name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678"},"message":{"content":"Do you ship to Lisbon?","direction":"incoming"}}`},
			}},
		{name: "chatwoot conversation create with a message",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations", req: "chatwoot/conversation_create.request.json", status: 200, resp: "chatwoot/conversation.response.json"},
			want: []want{
				{ConversationCreated, `{"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150,"status":"open","priority":"low","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id": "1024"},"additional_attributes":{"referer": "https://shop.example.com/orders"},"created_at":1763177700,"can_reply":true,"unread_count":0,"waiting_since":1763177700,"agent_last_seen_at":0,"contact_last_seen_at":0,"last_activity_at":1763177700},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678","avatar":"https://chat.example.com/rails/active_storage/ana.png"},"source_id":"4b2a6c1e-2f0d-4c5e-9a1b-8d7e6f5a4b3c"}`},
				{MessageSent, `{"message":{"content":"Hello Ana, your order #1024 is on its way.","direction":"outgoing"},"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150,"status":"open","priority":"low","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id": "1024"},"additional_attributes":{"referer": "https://shop.example.com/orders"},"created_at":1763177700,"can_reply":true,"unread_count":0,"waiting_since":1763177700,"agent_last_seen_at":0,"contact_last_seen_at":0,"last_activity_at":1763177700},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678","avatar":"https://chat.example.com/rails/active_storage/ana.png"},"source_id":"4b2a6c1e-2f0d-4c5e-9a1b-8d7e6f5a4b3c"}`},
			}},
		{name: "chatwoot priority patch is a conversation update",
			tr: traffic{method: "PATCH", target: "/api/v1/accounts/1/conversations/150", req: "chatwoot/priority_patch.request.json", status: 200, resp: "chatwoot/priority_patch.response.json"},
			want: []want{
				{ConversationUpdated, `{"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150,"status":"open","priority":"high","assignee":{"id":7,"name":"John Agent","email":"john@acme.example"},"labels":["shipping"],"attributes":{"order_id":"1024"},"additional_attributes":{"referer":"https://shop.example.com/orders"},"created_at":1763177700,"can_reply":true,"unread_count":0,"waiting_since":1763177700,"agent_last_seen_at":0,"contact_last_seen_at":0,"last_activity_at":1763177900},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678","avatar":"https://chat.example.com/rails/active_storage/ana.png"}}`},
			}},
		{name: "chatwoot conversation filter is no conversation",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/filter", req: `{"payload":[{"attribute_key":"status","filter_operator":"equal_to","values":["open"]}]}`, status: 200, resp: `{"meta":{"all_count":0},"payload":[]}`}},
		{name: "chatwoot outgoing message is sent",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/messages", req: "chatwoot/message_outgoing.request.json", status: 200, resp: "chatwoot/message_outgoing.response.json"},
			want: []want{
				{MessageSent, `{"message":{"direction":"outgoing","id":811,"content":"Your parcel left our warehouse today.","content_type":"text","content_attributes":{},"private":false,"status":"sent","created_at":1763177800,"sender":{"id":7,"name":"John Agent","type":"user"}},"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150}}`},
			}},
		{name: "chatwoot private message is a note",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/messages", req: "chatwoot/message_private.request.json", status: 200, resp: "chatwoot/message_private.response.json"},
			want: []want{
				{MessageNoted, `{"message":{"direction":"outgoing","id":812,"content":"Customer is a VIP, expedite.","content_type":"text","content_attributes":{},"private":true,"status":"sent","created_at":1763177810,"sender":{"id":7,"name":"John Agent","type":"user"}},"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150}}`},
			}},
		{name: "chatwoot incoming message is received from its sender",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/messages", req: "chatwoot/message_incoming.request.json", status: 200, resp: "chatwoot/message_incoming.response.json"},
			want: []want{
				{MessageReceived, `{"message":{"direction":"incoming","id":813,"content":"Thanks! When will it arrive?","content_type":"text","content_attributes":{},"private":false,"status":"sent","created_at":1763177820,"sender":{"id":42,"name":"Ana Lopes","email":"ana@example.com","type":"contact"}},"contact":{"id":42,"name":"Ana Lopes","email":"ana@example.com","phone":"+351912345678"},"account":{"id":"1"},"inbox":{"id":3},"conversation":{"id":150}}`},
			}},
		{name: "chatwoot message type from the request when the response is unreadable",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/messages", req: `{"content":"Hi from the API channel","message_type":"incoming"}`, status: 200, respType: "text/html", resp: "{html"},
			want: []want{
				{MessageReceived, `{"message":{"direction":"incoming","content":"Hi from the API channel"},"account":{"id":"1"},"conversation":{"id":"150"}}`},
			}, problems: []string{ProblemNotJSON}},
		{name: "chatwoot message rejected by the backend yields nothing",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/messages", req: "chatwoot/message_outgoing.request.json", status: 404, resp: `{"error":"Resource could not be found"}`}},
		{name: "chatwoot toggle status changes status and updates the conversation",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/toggle_status", req: "chatwoot/toggle_status.request.json", status: 200, resp: "chatwoot/toggle_status.response.json"},
			want: []want{
				{ConversationStatus, `{"account":{"id":"1"},"conversation":{"id":150,"status":"resolved"}}`},
				{ConversationUpdated, `{"account":{"id":"1"},"conversation":{"id":150,"status":"resolved"}}`},
			}},
		{name: "chatwoot assignment updates the assignee",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/assignments", req: "chatwoot/assignment.request.json", status: 200, resp: "chatwoot/assignment.response.json"},
			want: []want{
				{ConversationUpdated, `{"conversation":{"assignee":{"name":"Maria Silva","email":"maria@acme.example","id":9},"id":"150"},"account":{"id":"1"}}`},
			}},
		{name: "chatwoot team assignment updates the team",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/assignments", req: `{"team_id":4}`, status: 200, resp: `{"id":4,"name":"billing","description":"","allow_auto_assign":true,"account_id":1,"is_member":true}`},
			want: []want{
				{ConversationUpdated, `{"account":{"id":"1"},"conversation":{"id":"150","team_id":4}}`},
			}},
		{name: "chatwoot labels update the conversation",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/conversations/150/labels", req: `{"labels":["shipping","vip"]}`, status: 200, resp: `{"payload":["shipping","vip"]}`},
			want: []want{
				{ConversationUpdated, `{"account":{"id":"1"},"conversation":{"id":"150","labels":["shipping","vip"]}}`},
			}},
		{name: "chatwoot contact create is a lead",
			tr: traffic{method: "POST", target: "/api/v1/accounts/1/contacts", req: "chatwoot/contact_create.request.json", status: 200, resp: "chatwoot/contact_create.response.json"},
			want: []want{
				{LeadSubmitted, `{"account":{"id":"1"},"inbox":{"id":3},"contact":{"id":57,"name":"Rui Costa","email":"rui@example.com","phone":"+351934567890","platform_id":"crm-77","attributes":{"plan":"gold"}},"source_id":"9c8b7a6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"}`},
			}},
		{name: "chatwoot public api message is received",
			tr: traffic{method: "POST", target: "/public/api/v1/inboxes/AbCdEfGh12/contacts/9c8b7a6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d/conversations/151/messages", req: "chatwoot/public_message.request.json", status: 200, resp: "chatwoot/public_message.response.json"},
			want: []want{
				{MessageReceived, `{"channel":"api","conversation":{"id":151},"source_id":"9c8b7a6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d","extra":{"inbox_identifier":"AbCdEfGh12"},"message":{"id":820,"content":"Is anyone there?","content_type":"text","created_at":1763178100,"direction":"incoming"},"contact":{"id":57,"name":"Rui Costa","email":"rui@example.com"}}`},
			}},
		{name: "chatwoot widget message is received on the web with its page",
			tr: traffic{method: "POST", target: "/api/v1/widget/messages?website_token=wT0k3nPub&locale=en", reqHeader: http.Header{"X-Auth-Token": {"eyJhbGciOiJIUzI1NiJ9.visitor.sig"}}, req: "chatwoot/widget_message.request.json", status: 200, resp: "chatwoot/widget_message.response.json"},
			want: []want{
				{MessageReceived, `{"channel":"web","conversation":{"id":152},"message":{"id":830,"content":"Do you have this in blue?","content_type":"text","created_at":1763200900,"direction":"incoming"},"contact":{"id":60,"name":"fragrant-sun-123"},"widget":{"session_id":"01ff58f07189afd548ef11f8a9fba932","page_url":"https://shop.example.com/products/sneaker"},"extra":{"website_token":"wT0k3nPub"}}`},
			}},
		{name: "chatwoot widget trigger opens the widget",
			tr: traffic{method: "POST", target: "/api/v1/widget/events?website_token=wT0k3nPub", reqHeader: http.Header{"X-Auth-Token": {"eyJhbGciOiJIUzI1NiJ9.visitor.sig"}}, req: "chatwoot/widget_event.request.json", status: 204},
			want: []want{
				{WidgetOpened, `{"channel":"web","widget":{"session_id":"01ff58f07189afd548ef11f8a9fba932","page_url":"https://shop.example.com/pricing","event_info":{"initiated_at":{"timestamp":"Sat Nov 15 2025 10:00:00 GMT+0000"},"referer":"https://shop.example.com/pricing","widget_language":"en","browser_language":"pt","browser":{"browser_name":"Chrome","browser_version":"131.0","device_name":"Macintosh","platform_name":"macOS","platform_version":"15.1"}}},"extra":{"website_token":"wT0k3nPub"}}`},
			}},
		{name: "whatsapp text message",
			tr: traffic{method: "POST", target: "/webhooks/whatsapp", req: "whatsapp/text_message.json", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"whatsapp","conversation":{"id":"16505551234"},"contact":{"phone":"16505551234","name":"Sheena Nelson"},"inbox":{"id":"106540352242922","name":"15550783881"},"message":{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","content":"Does it come in another color?","content_type":"text","created_at":1749416383,"direction":"incoming"}}`},
			}},
		{name: "whatsapp batched entries yield one event per message",
			tr: traffic{method: "POST", target: "/webhooks/whatsapp", req: "whatsapp/batched.json", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"whatsapp","conversation":{"id":"16505551234"},"contact":{"phone":"16505551234","name":"Sheena Nelson"},"inbox":{"id":"106540352242922","name":"15550783881"},"message":{"id":"wamid.A1","content":"Hi","content_type":"text","created_at":1749416383,"direction":"incoming"}}`},
				{MessageReceived, `{"channel":"whatsapp","conversation":{"id":"16505551234"},"contact":{"phone":"16505551234","name":"Sheena Nelson"},"inbox":{"id":"106540352242922","name":"15550783881"},"message":{"id":"wamid.A2","content":"Track my order","content_type":"interactive","created_at":1749416390,"direction":"incoming"}}`},
				{MessageReceived, `{"channel":"whatsapp","conversation":{"id":"447700900123"},"contact":{"phone":"447700900123","name":"Kai Tanaka"},"inbox":{"id":"106540352242923","name":"15550783882"},"message":{"id":"wamid.B1","content":"This one arrived broken","content_type":"image","created_at":1749416400,"direction":"incoming"}}`},
			}},
		{name: "whatsapp status update yields nothing",
			tr: traffic{method: "POST", target: "/webhooks/whatsapp", req: "whatsapp/status_only.json", status: 200}},
		{name: "whatsapp webhook the backend rejected yields nothing",
			tr: traffic{method: "POST", target: "/webhooks/whatsapp", req: "whatsapp/text_message.json", status: 401}},
		{name: "telegram private message",
			tr: traffic{method: "POST", target: "/telegram/bot-webhook", req: "telegram/private.json", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"telegram","conversation":{"id":123456789},"contact":{"platform_id":123456789,"username":"john_doe","name":"John Doe"},"message":{"id":1365,"content":"What are your opening hours?","created_at":1749416383,"direction":"incoming"}}`},
			}},
		{name: "telegram private message answered in the webhook response is a reply",
			tr: traffic{method: "POST", target: "/telegram/bot-webhook", req: "telegram/private.json", status: 200, resp: "telegram/reply.response.json"},
			want: []want{
				{MessageReplied, `{"channel":"telegram","conversation":{"id":123456789},"contact":{"platform_id":123456789,"username":"john_doe","name":"John Doe"},"message":{"id":1365,"content":"What are your opening hours?","created_at":1749416383,"direction":"incoming"},"reply":{"content":"We are open 9:00-18:00, Monday to Friday."}}`},
			}},
		{name: "telegram group message",
			tr: traffic{method: "POST", target: "/telegram/bot-webhook", req: "telegram/group.json", status: 200},
			want: []want{
				{GroupMessageReceived, `{"group":{"id":-1001234567890,"name":"Acme Customers"},"channel":"telegram","conversation":{"id":-1001234567890},"contact":{"platform_id":987654321,"username":"lena_k","name":"Lena"},"message":{"id":77,"content":"Anyone else waiting for the new batch?","created_at":1749416400,"direction":"incoming"}}`},
			}},
		{name: "telegram callback query yields nothing",
			tr: traffic{method: "POST", target: "/telegram/bot-webhook", req: "telegram/callback_query.json", status: 200}},
		{name: "messenger batch yields messages and postbacks, not echoes or deliveries",
			tr: traffic{method: "POST", target: "/webhooks/meta", req: "messenger/page_batch.json", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"facebook","conversation":{"id":"fb_user_123"},"contact":{"platform_id":"fb_user_123"},"page":{"id":"fb_page_456"},"message":{"id":"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P","content":"Is this product still available?","direction":"incoming"}}`},
				{MessageReceived, `{"channel":"facebook","conversation":{"id":"fb_user_999"},"contact":{"platform_id":"fb_user_999"},"page":{"id":"fb_page_456"},"message":{"id":"m_postback_1","content":"Talk to a human","direction":"incoming"}}`},
			}},
		{name: "instagram direct message, not its echo or read receipt",
			tr: traffic{method: "POST", target: "/webhooks/meta", req: "instagram/dm.json", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"instagram","conversation":{"id":"ig_user_789"},"contact":{"platform_id":"ig_user_789"},"page":{"id":"17841400000000000"},"message":{"id":"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx","content":"Do you ship internationally?","direction":"incoming"}}`},
			}},
		{name: "mailgun url-encoded mail",
			tr: traffic{method: "POST", target: "/inbound/mail", reqType: "application/x-www-form-urlencoded", req: "email/mailgun.form", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"email","conversation":{"id":"010017432a12fe17c880eee0deede0c8"},"contact":{"email":"customer@example.com"},"message":{"id":"<CAF=+abc123@mail.example.com>","subject":"Order inquiry","content":"I placed an order yesterday and have not received a confirmation.","direction":"incoming"}}`},
			}},
		{name: "sendgrid multipart mail",
			tr: traffic{method: "POST", target: "/inbound/mail", reqType: "multipart/form-data; boundary=xYzZY", req: "email/sendgrid.multipart", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"email","conversation":{"id":"87755ad6e0e4cbc6230d9a75a5777825"},"contact":{"email":"rui@example.com"},"message":{"subject":"Shipping to Porto?","content":"Hello, do you ship to Porto?\n","direction":"incoming"}}`},
			}},
		{name: "postmark json mail",
			tr: traffic{method: "POST", target: "/inbound/mail", req: "email/postmark.json", status: 200},
			want: []want{
				{MessageReceived, `{"channel":"email","conversation":{"id":"84efcea10551759d108b0ff89d68fcb0"},"contact":{"email":"support@postmarkapp.com","name":"Postmarkapp Support"},"message":{"id":"73e6d360-66eb-11e1-8e72-a8904824019b","subject":"Test subject","content":"This is the reply text","direction":"incoming"}}`},
			}},
		{name: "widget message answered is a reply",
			tr: traffic{method: "POST", target: "/chat/send", req: "widget/message.json", status: 200, resp: "widget/reply.response.json"},
			want: []want{
				{MessageReplied, `{"conversation":{"ai_enabled":true,"id":"conv_xyz"},"channel":"web","widget":{"session_id":"session_abc","page_url":"https://yoursite.com/pricing"},"contact":{"id":"v_77","name":"Ana","email":"ana@example.com"},"message":{"id":"wm_1","content":"Hi, I need help!","direction":"incoming"},"reply":{"id":"wr_1","content":"Sure, what do you need?"}}`},
			}},
		{name: "widget message with the upstream down is received, page from the referer",
			tr: traffic{method: "POST", target: "/chat/send", reqHeader: http.Header{"Referer": {"https://yoursite.com/help"}}, req: `{"sessionId":"session_def","message":"Hello?"}`},
			want: []want{
				{MessageReceived, `{"channel":"web","widget":{"session_id":"session_def","page_url":"https://yoursite.com/help"},"conversation":{"id":"session_def"},"message":{"content":"Hello?","direction":"incoming"}}`},
			}},
		{name: "widget opened",
			tr: traffic{method: "POST", target: "/chat/event", req: "widget/opened.json", status: 204},
			want: []want{
				{WidgetOpened, `{"channel":"web","widget":{"session_id":"session_abc","page_url":"https://yoursite.com/pricing"},"conversation":{"id":"session_abc"}}`},
			}},
	}
	d := allPresetsDeriver(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := d.Derive(tc.tr.exchange(t))
			checkEvents(t, out.Events, tc.want)
			if strings.Join(out.Problems, ",") != strings.Join(tc.problems, ",") {
				t.Errorf("problems %v, want %v", out.Problems, tc.problems)
			}
		})
	}
}
