package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "chat-webhooks",
		Usage: "stats | dead-letters [--webhook <name>] [--limit <n>] | show|delete --webhook <name> --id <id> | replay [--webhook <name>] [--id <id>]",
		Short: "Inspects the webhook outbox and replays dead letters of a running Caddy",
		Long: `
Talks to the admin API of a running Caddy (--address, default localhost:2019)
and prints JSON:

  caddy chat-webhooks stats
  caddy chat-webhooks dead-letters [--webhook <name>] [--limit <n>]
  caddy chat-webhooks show   --webhook <name> --id <id>
  caddy chat-webhooks replay [--webhook <name>] [--id <id>]   # no id: every dead letter of the webhook
  caddy chat-webhooks delete --webhook <name> --id <id>

Webhook names are those of "caddy chat-webhooks stats".`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "localhost:2019", "the admin API's address")
			cmd.Flags().String("webhook", "", "the webhook's name")
			cmd.Flags().String("id", "", "the event id")
			cmd.Flags().Int("limit", 0, "at most this many dead letters")
			cmd.Args = cobra.ExactArgs(1)
			cmd.RunE = runCommand
		},
	})
}

func runCommand(cmd *cobra.Command, args []string) error {
	flags := cmd.Flags()
	addr, _ := flags.GetString("address")
	webhook, _ := flags.GetString("webhook")
	id, _ := flags.GetString("id")
	limit, _ := flags.GetInt("limit")
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
	routes := map[string][2]string{
		"stats":        {http.MethodGet, "/chat_webhooks/stats"},
		"dead-letters": {http.MethodGet, "/chat_webhooks/dead_letters"},
		"show":         {http.MethodGet, "/chat_webhooks/dead_letter"},
		"replay":       {http.MethodPost, "/chat_webhooks/replay"},
		"delete":       {http.MethodDelete, "/chat_webhooks/dead_letter"},
	}
	route, ok := routes[args[0]]
	if !ok {
		return fmt.Errorf("unknown action %q: use stats, dead-letters, show, replay or delete", args[0])
	}
	resp, err := caddycmd.AdminAPIRequest(addr, route[0], route[1]+"?"+q.Encode(), nil, nil)
	if err != nil {
		return fmt.Errorf("is Caddy running with its admin API at %s? %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	fmt.Fprintln(os.Stdout, pretty.String())
	return nil
}
