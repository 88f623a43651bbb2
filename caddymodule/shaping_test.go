package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// campaignBot is a stand-in WhatsApp campaign chatbot backend: it accepts the
// user's answer to a campaign step and acknowledges it.
func campaignBot(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"next_step":"Welcome Message 2"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// One exchange, three receivers: each gets its own platform's payload, and
// only for the events it subscribed to.
func TestThreeWebhooksGetThreeShapesOfOneExchange(t *testing.T) {
	bot := campaignBot(t)
	chatvolt, chatzuri, campaign := newReceiver(t), newReceiver(t), newReceiver(t)
	loadCaddy(t, fmt.Sprintf(`
		rule campaign_answer {
			match method POST
			match path /bot/campaigns/{campaign}/answer
			field channel =whatsapp
			field conversation.id request.body.session
			field contact.phone request.body.phone
			field message.content request.body.text
			field campaign.id request.path.campaign
			field campaign.label request.body.step
			field campaign.response request.body.text
			event message.received
			event campaign.response
		}
		agent_id agent_abc123
		agent_name "Campaign Bot"
		webhook %s/chatvolt {
			schema chatvolt
			events USER_MESSAGE_RECEIVED
		}
		webhook %s/chatzuri {
			schema chatzuri
			events message.received
		}
		webhook %s/campaign {
			schema campaign
			events campaign.response
			body source caddy
		}
`, chatvolt.URL, chatzuri.URL, campaign.URL), "reverse_proxy "+bot.Listener.Addr().String())

	resp, err := http.Post(fmt.Sprintf("http://localhost:%d/bot/campaigns/13010/answer", withModulePort), "application/json",
		strings.NewReader(`{"session":"conv_xyz","phone":"+525500000000","step":"Welcome Message","text":"John Doe"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	cv := chatvolt.next(t, 2*time.Second).body
	cz := chatzuri.next(t, 2*time.Second).body
	cp := campaign.next(t, 2*time.Second).body
	checks := []struct {
		name    string
		payload []byte
		want    map[string]string // gjson path -> raw JSON
	}{
		{"chatvolt", cv, map[string]string{"eventType": `"USER_MESSAGE_RECEIVED"`, "userMessage": `"John Doe"`,
			"conversationId": `"conv_xyz"`, "agentId": `"agent_abc123"`, "channel": `"whatsapp"`, "userPhoneNumber": `"+525500000000"`}},
		{"chatzuri", cz, map[string]string{"eventType": `"message.received"`, "channel": `"whatsapp"`, "agentId": `"agent_abc123"`,
			"payload.from": `"+525500000000"`, "payload.message": `"John Doe"`, "payload.conversationId": `"conv_xyz"`}},
		{"campaign", cp, map[string]string{"campaignId": `"13010"`, "label": `"Welcome Message"`, "phoneNumber": `"+525500000000"`,
			"response": `"John Doe"`, "source": `"caddy"`}},
	}
	for _, c := range checks {
		for path, want := range c.want {
			if got := gjson.GetBytes(c.payload, path).Raw; got != want {
				t.Errorf("%s %s = %s, want %s\n%s", c.name, path, got, want, c.payload)
			}
		}
	}
	if date := gjson.GetBytes(cp, "date").String(); len(date) != len("2024-06-18T23:22:36.560Z") || !strings.HasSuffix(date, "Z") {
		t.Errorf("campaign date %q is not UTC with milliseconds", date)
	}
	// Each receiver subscribed to one event of the two: nothing else arrives.
	for _, r := range []*receiver{chatvolt, chatzuri, campaign} {
		r.none(t, 100*time.Millisecond)
	}
}

func TestUserInfoEnrichesContactWithCacheAndSurvivesFailure(t *testing.T) {
	var lookups atomic.Int32
	var failing atomic.Bool
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lookups.Add(1)
		if r.Header.Get("Authorization") != "Bearer crm-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `{"name":"Ana Souza","email":"ana@example.com","phone":"+5511999990000","plan":"gold","path":%q}`, r.URL.Path)
	}))
	defer crm.Close()
	backend := newChatBackend(t)
	close(backend.release)
	rcv := newReceiver(t)
	loadCaddy(t, fmt.Sprintf(`
		source openai
		user_info %s/users/{contact.id} {
			header Authorization "Bearer crm-token"
			cache 10m
			timeout 2s
		}
		webhook %s/hook {
			schema chatvolt
		}
`, crm.URL, rcv.URL), "reverse_proxy "+backend.Listener.Addr().String())

	send := func(user string) []byte {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions", withModulePort),
			strings.NewReader(fmt.Sprintf(`{"user":%q,"messages":[{"role":"user","content":"Hi"}]}`, user)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return rcv.next(t, 3*time.Second).body
	}
	first := send("user 42")
	for path, want := range map[string]string{"userName": "Ana Souza", "userEmail": "ana@example.com", "userPhoneNumber": "+5511999990000"} {
		if got := gjson.GetBytes(first, path).String(); got != want {
			t.Errorf("%s = %q, want %q: %s", path, got, want, first)
		}
	}
	send("user 42")
	if n := lookups.Load(); n != 1 {
		t.Errorf("second event of the same contact made %d lookups in all, want 1 (cached)", n)
	}
	failing.Store(true)
	degraded := send("user 43")
	if gjson.GetBytes(degraded, "userName").Exists() {
		t.Errorf("a failed lookup must leave the contact as it was: %s", degraded)
	}
	if gjson.GetBytes(degraded, "eventType").String() != "AGENT_USER_MESSAGE" {
		t.Errorf("the event must still go out after a failed lookup: %s", degraded)
	}
}

func TestCustomSchemaFromCaddyfile(t *testing.T) {
	backend := newChatBackend(t)
	close(backend.release)
	rcv := newReceiver(t)
	loadCaddy(t, fmt.Sprintf(`
		source openai
		schema my_crm {
			event message.replied chat.answered
			field kind {event.name}
			field data.question {message.content}
			field data.answer {reply.content}
			field data.customer.email {contact.email}
			field meta.source caddy
		}
		webhook %s/hook {
			schema my_crm
		}
`, rcv.URL), "reverse_proxy "+backend.Listener.Addr().String())
	resp := chatRequest(t, withModulePort, false)
	resp.Body.Close()
	got := string(rcv.next(t, 2*time.Second).body)
	want := `{"kind":"chat.answered","data":{"question":"When does my order ship?","answer":"Your order ships tomorrow."},"meta":{"source":"caddy"}}`
	// Absent fields (contact.email) are omitted. Member order is not
	// compared: Caddy's config loader sorts object keys.
	if !jsonEqual([]byte(got), []byte(want)) {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
}

// A rule written only in the Caddyfile understands a made-up chat API.
func TestCaddyfileRuleDerivesReplyFromMadeUpAPI(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"reply":{"text":"Your table for two is booked at 8pm.","id":"r-77"},"status":"ok"}`)
	}))
	defer api.Close()
	rcv := newReceiver(t)
	loadCaddy(t, fmt.Sprintf(`rule bookings {
			match method POST
			match path /bots/{bot}/say
			match status 2xx
			field conversation.id request.header.X-Session request.body.session
			field agent.id request.path.bot
			field contact.name request.body.from.name
			field message.content request.body.text
			field reply.id response.body.reply.id
			field reply.content response.body.reply.text
			field channel =web
			event message.replied if reply.content
			event message.received unless reply.content
		}
		agent_name "Booking Bot"
		webhook %s/hook {
			schema chatvolt
		}`, rcv.URL), "reverse_proxy "+api.Listener.Addr().String())
	resp, err := http.Post(fmt.Sprintf("http://localhost:%d/bots/concierge/say", withModulePort), "application/json",
		strings.NewReader(`{"session":"s-19","from":{"name":"Léa"},"text":"A table for two at 8pm, please"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := rcv.next(t, 2*time.Second).body
	for path, want := range map[string]string{"eventType": "AGENT_USER_MESSAGE", "conversationId": "s-19", "agentId": "concierge",
		"agentName": "Booking Bot", "userName": "Léa", "userMessage": "A table for two at 8pm, please",
		"agentResponse": "Your table for two is booked at 8pm.", "messageId": "r-77", "channel": "web"} {
		if v := gjson.GetBytes(got, path).String(); v != want {
			t.Errorf("%s = %q, want %q: %s", path, v, want, got)
		}
	}
}
