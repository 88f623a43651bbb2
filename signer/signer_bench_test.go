package signer

import (
	"net/http"
	"testing"
	"time"
)

// A ChatVolt AGENT_USER_MESSAGE payload and a Chatzuri message.received
// payload as the built-in schemas render the typical chat exchange of the
// derive benchmarks.
const (
	benchChatVolt = `{"eventType":"AGENT_USER_MESSAGE","conversationId":"5f2b8c1e9a7d4c3b2a1f0e9d8c7b6a59","agentId":"agent_1","agentName":"Support Bot","channel":"api","conversationStatus":null,"conversationPriority":null,"isAiEnabled":true,"organizationId":null,"createdAt":"2024-10-27T03:33:20.250Z","messageId":"chatcmpl-42","userMessage":"When does my order ship?","agentResponse":"Your order ships tomorrow."}`
	benchChatzuri = `{"eventType":"message.received","channel":"api","agentId":"agent_1","payload":{"message":"When does my order ship?","conversationId":"5f2b8c1e9a7d4c3b2a1f0e9d8c7b6a59"}}`
	benchID       = "evt_0123456789abcdef01234567"
)

func BenchmarkSign(b *testing.B) {
	ts := time.Unix(1730000000, 0)
	for _, tc := range []struct {
		name string
		cfg  Config
		body string
	}{
		{"standard", Config{Name: "standard", Secrets: []string{"whsec_c3RK6HfEHZMiksZOf85TGo0f3ZQYAJZI"}}, benchChatVolt},
		{"chatzuri", Config{Name: "chatzuri", Secrets: []string{"chatzuri-secret"}}, benchChatzuri},
	} {
		s, err := tc.cfg.Scheme()
		if err != nil {
			b.Fatal(err)
		}
		body, err := s.Prepare([]byte(tc.body))
		if err != nil {
			b.Fatal(err)
		}
		// Prepare runs once per stored message (JSON re-serialisation for
		// chatzuri, nothing for standard).
		raw := []byte(tc.body)
		b.Run(tc.name+"/prepare", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Prepare(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Sign runs once per delivery attempt, on a fresh request header.
		b.Run(tc.name+"/sign", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h := make(http.Header, 4)
				if err := s.Sign(h, benchID, ts, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
