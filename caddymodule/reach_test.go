package caddymodule

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/chatwebhooks/chatwebhooks/internal/derive"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
)

// A webhook whose schema takes none of the events its route's sources emit
// is warned about at provision: it would never receive anything.
func TestWebhookThatCanNeverReceiveIsWarnedAbout(t *testing.T) {
	campaignRule := derive.Rule{Name: "poll", Match: derive.Match{Paths: []string{"/poll"}},
		Fields: []derive.Field{{To: "campaign.response", From: []string{"request.body.answer"}}},
		Emit:   []derive.Emit{{Event: event.CampaignResponse}}}
	tests := []struct {
		name    string
		sources []string
		rules   []derive.Rule
		wh      Webhook
		warn    bool
	}{
		{"campaign behind openai", []string{"openai"}, nil, Webhook{Schema: "campaign"}, true},
		{"campaign behind a rule that emits campaign responses", []string{"openai"}, []derive.Rule{campaignRule}, Webhook{Schema: "campaign"}, false},
		{"chatvolt behind openai", []string{"openai"}, nil, Webhook{Schema: "chatvolt"}, false},
		{"chatvolt filtered to an event openai never yields", []string{"openai"}, nil, Webhook{Schema: "chatvolt", Events: []string{"STEP_ENTERED"}}, true},
		{"chatwoot filtered to its conversation events behind chatwoot", []string{"chatwoot"}, nil, Webhook{Schema: "chatwoot", Events: []string{"conversation_updated"}}, false},
		{"voxsig behind whatsapp", []string{"whatsapp"}, nil, Webhook{Schema: "voxsig"}, false},
		{"chatzuri behind chatwoot's lead events only", []string{"chatwoot"}, nil, Webhook{Schema: "chatzuri", Events: []string{"lead.submit"}}, false},
		{"standard behind anything", []string{"email"}, nil, Webhook{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := derive.New(derive.Config{Presets: tc.sources, Rules: tc.rules})
			if err != nil {
				t.Fatal(err)
			}
			tc.wh.URL = "https://hooks.example.com/in"
			wh, err := tc.wh.compile(caddy.NewReplacer(), nil)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.WarnLevel)
			warnUnreachable(zap.New(core), &route{deriver: d, webhooks: []*webhook{wh}})
			if got := logs.Len() == 1; got != tc.warn {
				t.Errorf("warned %t, want %t: %v", got, tc.warn, logs.All())
			}
		})
	}
}
