package caddymodule

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/tidwall/gjson"
)

// runChatWebhooks runs `caddy chat-webhooks <args>` as Caddy's CLI builds
// it from the registered command, and returns what it printed.
func runChatWebhooks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runChatWebhooksWithInput(t, "", args...)
}

// runChatWebhooksWithInput is runChatWebhooks with stdin as standard input.
func runChatWebhooksWithInput(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	reg, ok := caddycmd.Commands()["chat-webhooks"]
	if !ok {
		t.Fatal("the chat-webhooks command is not registered")
	}
	cmd := &cobra.Command{Use: reg.Name, Short: reg.Short, SilenceUsage: true, SilenceErrors: true}
	reg.CobraFunc(cmd)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestChatWebhooksCommandInspectsAndReplaysDeadLetters(t *testing.T) {
	sink, healthy := deadLetterScenario(t, http.StatusBadGateway)
	for _, conv := range []string{"cli-a", "cli-b"} {
		mustTurn(t, withModulePort, conv, turnLabel(conv, 0))
	}
	dead := waitDeadLetters(t, "crm", 2)
	addr := []string{"--address", testAdmin}
	run := func(args ...string) string {
		t.Helper()
		out, err := runChatWebhooks(t, append(args, addr...)...)
		if err != nil {
			t.Fatalf("caddy chat-webhooks %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	out := run("stats")
	if gjson.Get(out, "endpoints.crm.dead_letters").Int() != 2 {
		t.Errorf("stats:\n%s", out)
	}
	out = run("dead-letters", "--webhook", "crm", "--limit", "1")
	if n := gjson.Get(out, "#").Int(); n != 1 || gjson.Get(out, "0.id").String() != dead[0].ID || gjson.Get(out, "0.reason").String() != "exhausted" {
		t.Errorf("dead-letters --limit 1 printed %d:\n%s", n, out)
	}
	out = run("show", "--webhook", "crm", "--id", dead[1].ID)
	if gjson.Get(out, "0.body.eventType").String() != "AGENT_USER_MESSAGE" || gjson.Get(out, "0.last_status").Int() != http.StatusBadGateway ||
		gjson.Get(out, "0.state").String() != "dead" || gjson.Get(out, "0.history.0.status").Int() != http.StatusBadGateway {
		t.Errorf("show:\n%s", out)
	}
	out = run("messages", "--state", "dead", "--webhook", "crm", "--limit", "1")
	if gjson.Get(out, "messages.#").Int() != 1 || gjson.Get(out, "messages.0.id").String() != dead[1].ID || !gjson.Get(out, "next_before").Exists() {
		t.Errorf("messages --state dead --limit 1, newest first:\n%s", out)
	}

	healthy.Store(true)
	out = run("replay", "--webhook", "crm", "--id", dead[0].ID)
	if gjson.Get(out, "replayed").Int() != 1 {
		t.Errorf("replay:\n%s", out)
	}
	if got := sink.waitDistinct(1, 5*time.Second); got[0].id != dead[0].ID {
		t.Errorf("replayed %s, want %s", got[0].id, dead[0].ID)
	}
	out = run("delete", "--webhook", "crm", "--id", dead[1].ID)
	if gjson.Get(out, "deleted").Int() != 1 {
		t.Errorf("delete:\n%s", out)
	}
	out = run("replay")
	if gjson.Get(out, "replayed").Int() != 0 {
		t.Errorf("replay of nothing left:\n%s", out)
	}

	// Mistakes: said plainly, and not blamed on a stopped Caddy.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "--webhook", "crm", "--id", dead[1].ID}, "404"},
		{[]string{"show", "--webhook", "crm"}, "needs --id <id>"},
		{[]string{"delete", "--webhook", "crm"}, "needs --webhook <name> and --id <id>"},
		{[]string{"enable"}, "needs --webhook <name>"},
		{[]string{"enable", "--webhook", "nope"}, "404"},
		{[]string{"replay", "--id", "evt_x"}, "needs --webhook"},
		{[]string{"explode"}, "unknown action"},
	} {
		out, err := runChatWebhooks(t, append(tc.args, addr...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "is Caddy running") {
			t.Errorf("chat-webhooks %s: %v (printed %q), want an error about %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
	if _, err := runChatWebhooks(t, "stats", "--address", "localhost:1"); err == nil || !strings.Contains(err.Error(), "is Caddy running") {
		t.Errorf("stats against no Caddy: %v", err)
	}

	// Like caddy reload, the admin address can come from the Caddyfile.
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	os.WriteFile(caddyfile, []byte(chatConfig("", "source openai", "127.0.0.1:9")), 0o644)
	if out, err := runChatWebhooks(t, "stats", "--config", caddyfile, "--adapter", "caddyfile"); err != nil || !gjson.Valid(out) || !gjson.Get(out, "endpoints").Exists() {
		t.Errorf("stats --config: %v\n%s", err, out)
	}
}
