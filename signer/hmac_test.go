package signer

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// Known answers computed outside Go (openssl dgst -hmac), so that a shared
// bug in signing and verifying cannot hide.
func TestHMACSchemesSetTheKnownHeaders(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	github, err := NewHMAC(HMACOptions{Header: "X-Hub-Signature-256", Prefix: "sha256=", IDHeader: "X-GitHub-Delivery"}, "It's a Secret to Everybody")
	if err != nil {
		t.Fatal(err)
	}
	chatwoot, err := NewChatwoot("woot-secret")
	if err != nil {
		t.Fatal(err)
	}
	chatzuri, err := NewChatzuri("zuri-secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		s      *HMAC
		body   string
		id     string
		header http.Header
	}{
		{"GitHub's documented example", github, "Hello, World!", "d1f0", http.Header{
			"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"},
			"X-Github-Delivery":   {"d1f0"},
		}},
		{"chatwoot", chatwoot, `{"event":"message_created","id":811,"content":"Olá"}`, "6d2f7c1e-0b8a-4c1e-9a57-3f3c2b1d0e9f", http.Header{
			"X-Chatwoot-Signature": {"sha256=2abc323212f1e60a6c8a7ba964a43724a84b99d0fee1293f9471b2d09781a9d2"},
			"X-Chatwoot-Timestamp": {"1700000000"},
			"X-Chatwoot-Delivery":  {"6d2f7c1e-0b8a-4c1e-9a57-3f3c2b1d0e9f"},
		}},
		{"chatzuri", chatzuri, `{"eventType":"lead.submit","agentId":"agent_abc123","payload":{"conversationId":"conv_xyz","customerName":"Zoë"}}`, "ignored", http.Header{
			"X-Chatzuri-Signature": {"8eedd9676da30cc54e9c704146c0aab2fe04bee8"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := signed(t, c.s, c.id, ts, []byte(c.body))
			if len(h) != len(c.header) {
				t.Errorf("headers %v, want %v", h, c.header)
			}
			for name, want := range c.header {
				if got := h.Get(name); got != want[0] {
					t.Errorf("%s: %q, want %q", name, got, want[0])
				}
			}
		})
	}
}

func TestHMACVerifyRejectsMalformedSignatures(t *testing.T) {
	s, _ := NewHMAC(HMACOptions{Header: "X-Hub-Signature-256", Prefix: "sha256="}, "hub-secret")
	for _, v := range []string{
		"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", // no prefix
		"sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
		"sha256=not-hex",
	} {
		h := http.Header{"X-Hub-Signature-256": {v}}
		if err := s.Verify([]byte("{}"), h); !errors.Is(err, ErrMalformedHeader) {
			t.Errorf("%q: %v, want ErrMalformedHeader", v, err)
		}
	}
}

func TestHMACSignRequiresAnIDWhenItSendsOne(t *testing.T) {
	s, _ := NewChatwoot("woot-secret")
	if err := s.Sign(http.Header{}, "", time.Now(), nil); err == nil {
		t.Error("chatwoot Sign with an empty id: no error")
	}
	z, _ := NewChatzuri("zuri-secret")
	if err := z.Sign(http.Header{}, "", time.Now(), []byte("{}")); err != nil {
		t.Errorf("chatzuri, which sends no id, Sign with an empty id: %v", err)
	}
}
