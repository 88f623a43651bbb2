package caddymodule

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"
)

// The JSON config works on its own, without the Caddyfile adapter.
func TestJSONConfigDeliversLikeTheCaddyfile(t *testing.T) {
	backend := newChatBackend(t)
	close(backend.release)
	rcv := newReceiver(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(fmt.Sprintf(`{
		"admin": {"listen": "localhost:2999"},
		"apps": {
			"chat_webhooks": {"outbox": {"kind": "memory"}},
			"http": {"http_port": %d, "servers": {"chat": {
				"listen": [":%d"],
				"routes": [{"handle": [
					{
						"handler": "chat_webhooks",
						"sources": ["openai"],
						"agent_id": "agent_json",
						"webhooks": [{
							"url": "%s/hook",
							"schema": "chatvolt",
							"sign": {"scheme": "standard", "secrets": ["%s"]},
							"body": {"origin": "json-config"},
							"retry": ["10ms", "20ms"]
						}]
					},
					{"handler": "reverse_proxy", "upstreams": [{"dial": "%s"}]}
				]}]
			}}}
		}
	}`, withModulePort, withModulePort, rcv.URL, testSecret, backend.Listener.Addr()), "json")
	resp := chatRequest(t, withModulePort, false)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := rcv.next(t, 2*time.Second)
	if gjson.GetBytes(d.body, "agentId").String() != "agent_json" || gjson.GetBytes(d.body, "origin").String() != "json-config" ||
		gjson.GetBytes(d.body, "eventType").String() != "AGENT_USER_MESSAGE" {
		t.Errorf("payload %s", d.body)
	}
	if d.header.Get("webhook-signature") == "" {
		t.Error("not signed")
	}
}
