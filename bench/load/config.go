package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/signer"
)

// webhook is one webhook of the module site and where the receiver finds
// the request's token in its payloads.
type webhook struct {
	name, schema, scheme string
	tokenAt              string // gjson path of the user's message, whose last word is the token
	removable            bool   // the reload storm removes it and adds it back
}

var webhooks = []webhook{
	{name: "chatvolt", schema: "chatvolt", scheme: "standard", tokenAt: "userMessage"},
	{name: "chatzuri", schema: "chatzuri", scheme: "chatzuri", tokenAt: "payload.message", removable: true},
}

func (w webhook) path() string { return "/" + w.name }

func webhookAt(path string) (webhook, bool) {
	for _, w := range webhooks {
		if w.path() == path {
			return w, true
		}
	}
	return webhook{}, false
}

// token returns the request token a payload of w carries.
func (w webhook) token(body []byte) string {
	return lastWord(gjson.GetBytes(body, w.tokenAt).String())
}

// present reports whether configuration generation gen has w: a removable
// webhook leaves every fourth generation and comes back in the next.
func (w webhook) present(gen int) bool { return !w.removable || gen%4 != 3 }

// secret is w's signing secret in generation gen: every generation signs
// differently, so a signature proves which configuration sent it.
func (w webhook) secret(gen int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "bench %s secret, generation %d", w.name, gen))
	if w.scheme == "standard" {
		return "whsec_" + base64.StdEncoding.EncodeToString(sum[:24])
	}
	return hex.EncodeToString(sum[:16])
}

// caddyfile is the configuration under test in generation gen, on the
// env's ports and outbox.
func (e *env) caddyfile(gen int) string {
	return e.caddyfileFor(gen, e.ports, e.outbox)
}

// caddyfileFor is the configuration of generation gen listening on ports
// (admin, plain site, module site) with the chat_webhooks outbox option
// outbox (empty: a bbolt file in the run's directory). Everything that
// identifies a webhook's deliveries changes with the generation: the
// URL's gen query parameter, the X-Config-Gen header, the signing secret,
// and the payload member bench_gen, which is shaped into the payload.
func (e *env) caddyfileFor(gen int, ports []int, outbox string) string {
	if outbox == "" {
		outbox = "outbox bbolt " + filepath.Join(e.dir, "outbox.db")
	}
	w := ""
	if *workers > 0 {
		w = fmt.Sprintf("workers %d", *workers)
	}
	if *noJournal {
		w += "\n\t\tjournal off"
	}
	var hooks strings.Builder
	for _, wh := range webhooks {
		if !wh.present(gen) {
			continue
		}
		fmt.Fprintf(&hooks, `
		webhook http://%s%s?gen=%d {
			name %s
			schema %s
			sign %s %s
			header X-Config-Gen %d
			body bench_gen %d
			retry 1s 2s 5s 10s 30s 60s 120s 300s
		}`, e.rx.addr, wh.path(), gen, wh.name, wh.schema, wh.scheme, wh.secret(gen), gen, gen)
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	log {
		level ERROR
	}
	chat_webhooks {
		%s
		max_queued 250000
		%s
	}
}
http://127.0.0.1:%d {
	reverse_proxy %s
}
http://127.0.0.1:%d {
	chat_webhooks {
		source openai
		conversation_id request.header.X-Conversation-Id
		agent_id agent_1
		agent_name "Support Bot"%s
	}
	reverse_proxy %s
}
`, ports[0], outbox, w, ports[1], e.backendAdr, ports[2], hooks.String(), e.backendAdr)
}

// identity is what one delivery says about the configuration behind it.
type identity struct {
	payloadGen, headerGen, queryGen string
	signed                          bool // the signature holds under payloadGen's secret
}

func (id identity) matches() bool {
	return id.signed && id.headerGen == id.payloadGen && id.queryGen == id.payloadGen
}

func (id identity) String() string {
	return fmt.Sprintf("payload gen %s, header gen %s, query gen %s, signed with gen %s's secret: %t",
		id.payloadGen, id.headerGen, id.queryGen, id.payloadGen, id.signed)
}

// verifiers checks signatures with the secret of any generation.
type verifiers struct {
	mu sync.Mutex
	by map[string]signer.Verifier // by webhook name and generation
}

// identify reads a delivery of w: the generation that shaped the payload,
// the one its header and URL name, and whether its signature holds under
// the shaping generation's secret.
func (v *verifiers) identify(w webhook, r *http.Request, body []byte) identity {
	id := identity{payloadGen: gjson.GetBytes(body, "bench_gen").String(),
		headerGen: r.Header.Get("X-Config-Gen"), queryGen: r.URL.Query().Get("gen")}
	gen, err := strconv.Atoi(id.payloadGen)
	if err != nil {
		return id
	}
	key := fmt.Sprintf("%s/%d", w.name, gen)
	v.mu.Lock()
	ver := v.by[key]
	if ver == nil {
		if ver, err = (signer.Config{Name: w.scheme, Secrets: []string{w.secret(gen)}}).Verifier(); err != nil {
			v.mu.Unlock()
			return id
		}
		if v.by == nil {
			v.by = map[string]signer.Verifier{}
		}
		v.by[key] = ver
	}
	v.mu.Unlock()
	id.signed = ver.Verify(body, r.Header) == nil
	return id
}
