package delivery

import (
	"net/http"
	"testing"
	"time"

	"github.com/chatwebhooks/chatwebhooks/signer"
)

// What Preview shows verifies as a delivery of the same message does: the
// scheme's signature over the prepared body, the message id, the static
// headers.
func TestPreviewSignsAsAnAttemptDoes(t *testing.T) {
	cfg := signer.Config{Name: "chatzuri", Secrets: []string{"s3cret"}}
	scheme, err := cfg.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := cfg.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Name: "rx", URL: "http://127.0.0.1:9/hook", Scheme: scheme,
		Header: http.Header{"Authorization": {"Bearer t\r\nX: y"}}}
	body, h, err := ep.Preview("evt_1", time.Now(), []byte(`{"b":1, "a":[1.0]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := verifier.Verify(body, h); err != nil {
		t.Errorf("preview does not verify: %v\n%s %v", err, body, h)
	}
	for k, want := range map[string]string{"webhook-id": "evt_1", "Authorization": "Bearer tX: y", "Content-Type": "application/json"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
