package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwebhooks/chatwebhooks/internal/nodereceiver"
)

// Real chat traffic with awkward text goes through Caddy, the outbox and the
// delivery engine to Chatzuri's own receiver code running in Node; every
// delivery must verify there and be acknowledged with {"status":"accepted"}.
func TestChatzuriReceiverVerifiesEveryDelivery(t *testing.T) {
	const secret = "chatzuri-shared-secret"
	node := nodereceiver.Chatzuri(t, secret)
	// The backend echoes the user's text in its answer, so the payload
	// carries it twice, in both directions.
	backend := newTurnBackend(t).Listener.Addr().String()
	loadCaddy(t, fmt.Sprintf(`source openai
		agent_id agent_abc123
		webhook %s/webhook {
			name chatzuri-node
			schema chatzuri
			sign chatzuri %s
			expect_body `+"`"+`{"status":"accepted"}`+"`"+`
			retry off
		}`, node, secret), "reverse_proxy "+backend)

	texts := []string{
		"Olá! Já recebi o pedido nº 1024, obrigado 🙏",
		"ご注文ありがとうございます。配送は明日です。",
		"שלום, מתי ההזמנה תגיע?",
		`<script>alert("x")</script> & "quotes" \ backslash`,
		"line\nbreak\ttab and U+2028 \u2028 and U+2029 \u2029",
		"price 1.50 EUR, 1e5 units, -0, 0.1+0.2, 9007199254740993",
		"emoji 👩🏽‍💻 and combining é vs é",
	}
	before := testutil.ToFloat64(metrics.delivered.WithLabelValues("chatzuri-node", "chatzuri"))
	for i, text := range texts {
		body, _ := json.Marshal(map[string]any{"user": fmt.Sprintf("user-%d", i),
			"messages": []map[string]string{{"role": "user", "content": text}}})
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions", withModulePort), strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && testutil.ToFloat64(metrics.delivered.WithLabelValues("chatzuri-node", "chatzuri"))-before < float64(len(texts)) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(metrics.delivered.WithLabelValues("chatzuri-node", "chatzuri")) - before; got != float64(len(texts)) {
		_, engine, _ := currentEngine()
		dead, _ := engine.DeadLetters("chatzuri-node", 0)
		for _, d := range dead {
			t.Logf("dead letter: %s (%s)", d.Body, d.LastError)
		}
		t.Fatalf("%v of %d deliveries accepted by the Node receiver", got, len(texts))
	}
}
