package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "chat-webhooks",
		Usage: "stats | dead-letters [--webhook <name>] [--limit <n>] | show|delete --webhook <name> --id <id> | replay [--webhook <name>] [--id <id>] | purge --webhook <name> | rederive --har <file> [--webhook <name>] | try --har <file> [--config <file> [--adapter <name>]] [--site <site>] [--json] [--user-info]",
		Short: "Inspects the webhook outbox, replays dead letters, tries and re-derives recorded traffic",
		Long: `
Talks to the admin API of a running Caddy and prints JSON:

  caddy chat-webhooks stats
  caddy chat-webhooks dead-letters [--webhook <name>] [--limit <n>]
  caddy chat-webhooks show   --webhook <name> --id <id>
  caddy chat-webhooks replay [--webhook <name>] [--id <id>]   # no id: every dead letter of the webhook
  caddy chat-webhooks delete --webhook <name> --id <id>
  caddy chat-webhooks purge  --webhook <name>   # its queued messages and dead letters
  caddy chat-webhooks rederive --har <file|-> [--webhook <name>]   # derive and enqueue recorded traffic

The admin API is found as for "caddy stop" and "caddy reload": --address,
else the admin address of --config, else CADDY_ADMIN or localhost:2019.
Webhook names are those of "caddy chat-webhooks stats". rederive gives each
event an id derived from its HAR entry: posting a file twice sends the same
webhook ids, which receivers de-duplicate.

Without a running Caddy:

  caddy chat-webhooks try --config <file> [--adapter <name>] [--site <host, address or webhook name>] --har <file|-> [--json] [--user-info]

runs each entry of a HAR file (as browsers' devtools, mitmproxy or the
handler's record option write it), or one exchange as JSON, through a
handler's sources, rules and conversation memory, and prints the events and,
per webhook, the payload and headers it would send (signed, credentials
masked). Nothing is sent: no delivery, and no user_info lookup unless
--user-info. It fails on configuration errors and unreadable entries.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "", "the admin API's address")
			cmd.Flags().StringP("config", "c", "", "read the admin address from this configuration file")
			cmd.Flags().StringP("adapter", "a", "", "the adapter of --config")
			cmd.Flags().String("webhook", "", "the webhook's name")
			cmd.Flags().String("id", "", "the event id")
			cmd.Flags().Int("limit", 0, "at most this many dead letters")
			cmd.Flags().String("har", "", "a HAR file, or - for standard input (try, rederive)")
			cmd.Flags().String("site", "", "the handler to try: a host of its site, an address it listens on, or a webhook name")
			cmd.Flags().Bool("json", false, "print try's results as JSON")
			cmd.Flags().Bool("user-info", false, "let try run the handler's user_info lookups")
			cmd.Args = cobra.ExactArgs(1)
			cmd.RunE = runCommand
		},
	})
}

// commandRoutes maps each action to its admin API route.
var commandRoutes = map[string][2]string{
	"stats":        {http.MethodGet, "/chat_webhooks/stats"},
	"dead-letters": {http.MethodGet, "/chat_webhooks/dead_letters"},
	"show":         {http.MethodGet, "/chat_webhooks/dead_letter"},
	"replay":       {http.MethodPost, "/chat_webhooks/replay"},
	"delete":       {http.MethodDelete, "/chat_webhooks/dead_letter"},
	"purge":        {http.MethodDelete, "/chat_webhooks/queue"},
	"rederive":     {http.MethodPost, "/chat_webhooks/rederive"},
}

func runCommand(cmd *cobra.Command, args []string) error {
	flags := cmd.Flags()
	addr, _ := flags.GetString("address")
	configFile, _ := flags.GetString("config")
	adapter, _ := flags.GetString("adapter")
	webhook, _ := flags.GetString("webhook")
	id, _ := flags.GetString("id")
	limit, _ := flags.GetInt("limit")

	if args[0] == "try" {
		return runTry(cmd)
	}
	route, ok := commandRoutes[args[0]]
	if !ok {
		return fmt.Errorf("unknown action %q: use stats, dead-letters, show, replay, delete, purge, rederive or try", args[0])
	}
	switch {
	case (args[0] == "show" || args[0] == "delete") && (webhook == "" || id == ""):
		return fmt.Errorf("%s needs --webhook <name> and --id <id>", args[0])
	case args[0] == "purge" && webhook == "":
		return fmt.Errorf("purge needs --webhook <name>")
	case args[0] == "replay" && id != "" && webhook == "":
		return fmt.Errorf("replay --id needs --webhook <name> too")
	case limit < 0:
		return fmt.Errorf("--limit must not be negative")
	}
	q := url.Values{}
	if webhook != "" {
		q.Set("webhook", webhook)
	}
	if id != "" {
		q.Set("id", id)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, configFile, adapter)
	if err != nil {
		return fmt.Errorf("finding the admin API: %v", err)
	}
	if args[0] == "rederive" {
		return runRederive(cmd, addr, q)
	}
	uri := route[1]
	if len(q) > 0 {
		uri += "?" + q.Encode()
	}
	resp, err := caddycmd.AdminAPIRequest(addr, route[0], uri, nil, nil)
	if err != nil {
		return adminError(addr, err)
	}
	defer resp.Body.Close()
	return printJSON(cmd, resp.Body)
}

// adminError words an AdminAPIRequest failure: an answer from the admin API
// (no such dead letter, bad parameters) is not a connection problem.
func adminError(addr string, err error) error {
	const answered = "caddy responded with error: "
	msg := err.Error()
	if !strings.HasPrefix(msg, answered) {
		return fmt.Errorf("is Caddy running with its admin API at %s? %v", addr, err)
	}
	msg = strings.TrimPrefix(msg, answered)
	// "HTTP 404: {"error":"..."}": keep the status and the error's text.
	if status, body, ok := strings.Cut(msg, ": "); ok {
		var apiErr struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(body), &apiErr) == nil && apiErr.Error != "" {
			return fmt.Errorf("%s: %s", status, apiErr.Error)
		}
	}
	return fmt.Errorf("%s", strings.TrimSpace(msg))
}
