package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "chat-webhooks",
		Usage: "stats | messages [--state queued|delivered|dead] [--webhook <name>] [--conversation <id>] [--limit <n>] [--before <seq>] | show --id <id> [--webhook <name>] | dead-letters [--webhook <name>] [--limit <n>] | delete --webhook <name> --id <id> | replay [--webhook <name>] [--id <id>] | purge|enable --webhook <name> | rederive --har <file> [--webhook <name>] | try --har <file> [--config <file> [--adapter <name>]] [--site <site>] [--json] [--user-info] | ui [--listen <loopback:port>] [--address <admin>] [--config <file> [--adapter <name>]]",
		Short: "Inspects the webhook outbox, replays dead letters, tries and re-derives recorded traffic, serves the dashboard",
		Long: `
Talks to the admin API of a running Caddy and prints JSON:

  caddy chat-webhooks stats
  caddy chat-webhooks messages [--state queued|delivered|dead] [--webhook <name>] [--conversation <id>] [--limit <n>] [--before <seq>]
  caddy chat-webhooks show   --id <id> [--webhook <name>]   # queued, delivered or dead: payload, headers sent, attempts
  caddy chat-webhooks dead-letters [--webhook <name>] [--limit <n>]
  caddy chat-webhooks replay [--webhook <name>] [--id <id>]   # no id: every dead letter of the webhook
  caddy chat-webhooks delete --webhook <name> --id <id>
  caddy chat-webhooks purge  --webhook <name>   # its queued messages and dead letters
  caddy chat-webhooks rederive --har <file|-> [--webhook <name>]   # derive and enqueue recorded traffic
  caddy chat-webhooks enable --webhook <name>   # after disable_after disabled it
  caddy chat-webhooks ui [--listen 127.0.0.1:0]   # serves the dashboard; open the URL it prints

The dashboard is also at /chat_webhooks/ui/ on the admin endpoint, but
Caddy refuses browsers there (they send no Origin when a URL is opened):
"ui" serves it on a loopback port and forwards its calls to the admin API.

"messages" lists the newest first (delivered by default), 50 a page;
--before <next_before of the previous page> gives the next.

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
			cmd.Flags().Int("limit", 0, "at most this many messages or dead letters")
			cmd.Flags().String("state", "", "messages: queued, delivered or dead")
			cmd.Flags().String("conversation", "", "messages: of this conversation only")
			cmd.Flags().Uint64("before", 0, "messages: the page after this sequence number")
			cmd.Flags().String("listen", "127.0.0.1:0", "ui: the loopback address to serve the dashboard on")
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
	"messages":     {http.MethodGet, "/chat_webhooks/messages"},
	"show":         {http.MethodGet, "/chat_webhooks/message"},
	"enable":       {http.MethodPost, "/chat_webhooks/enable"},
	"dead-letters": {http.MethodGet, "/chat_webhooks/dead_letters"},
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
	state, _ := flags.GetString("state")
	conversation, _ := flags.GetString("conversation")
	before, _ := flags.GetUint64("before")
	harFile, _ := flags.GetString("har")

	if args[0] == "try" {
		return runTry(cmd)
	}
	if args[0] == "ui" {
		listen, _ := flags.GetString("listen")
		addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, configFile, adapter)
		if err != nil {
			return fmt.Errorf("finding the admin API: %v", err)
		}
		l, err := loopbackListen(listen)
		if err != nil {
			return err
		}
		return serveDashboard(l, addr, func(url string) {
			fmt.Fprintf(cmd.OutOrStdout(), "chat_webhooks dashboard for the admin API at %s: open %s (Ctrl-C stops it)\n", addr, url)
		})
	}
	route, ok := commandRoutes[args[0]]
	if !ok {
		return fmt.Errorf("unknown action %q: use stats, messages, show, dead-letters, replay, delete, purge, enable, rederive, try or ui", args[0])
	}
	switch {
	case args[0] == "delete" && (webhook == "" || id == ""):
		return fmt.Errorf("delete needs --webhook <name> and --id <id>")
	case args[0] == "show" && id == "":
		return fmt.Errorf("show needs --id <id>")
	case (args[0] == "purge" || args[0] == "enable") && webhook == "":
		return fmt.Errorf("%s needs --webhook <name>", args[0])
	case args[0] == "rederive" && harFile == "":
		return fmt.Errorf("rederive needs --har <file> (or --har - for standard input)")
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
	if before > 0 {
		q.Set("before", fmt.Sprint(before))
	}
	for k, v := range map[string]string{"state": state, "conversation": conversation} {
		if v != "" {
			q.Set(k, v)
		}
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, configFile, adapter)
	if err != nil {
		return fmt.Errorf("finding the admin API: %v", err)
	}
	// rederive posts the HAR file; the other actions send no body.
	var header http.Header
	var body io.Reader
	if args[0] == "rederive" {
		data, err := readHAR(cmd, harFile)
		if err != nil {
			return err
		}
		header, body = http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(data)
	}
	uri := route[1]
	if len(q) > 0 {
		uri += "?" + q.Encode()
	}
	resp, err := caddycmd.AdminAPIRequest(addr, route[0], uri, header, body)
	if err != nil {
		return adminError(addr, err)
	}
	defer resp.Body.Close()
	return printJSON(cmd, resp.Body)
}

// adminError words an AdminAPIRequest failure: an answer from the admin API
// (no such dead letter, bad parameters) is not a connection problem.
func adminError(addr string, err error) error {
	status, body, ok := adminAnswer(err)
	if !ok {
		return fmt.Errorf("is Caddy running with its admin API at %s? %v", addr, err)
	}
	// Keep the status and the error's text.
	var apiErr struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(body), &apiErr) == nil && apiErr.Error != "" {
		return fmt.Errorf("HTTP %d: %s", status, apiErr.Error)
	}
	return fmt.Errorf("HTTP %d: %s", status, strings.TrimSpace(body))
}

// adminAnswer reads the admin API's status and body out of an
// AdminAPIRequest error, which carries them as text when the API answered
// with an error; ok is false when it did not answer.
func adminAnswer(err error) (status int, body string, ok bool) {
	rest, ok := strings.CutPrefix(err.Error(), "caddy responded with error: HTTP ")
	if !ok {
		return 0, "", false
	}
	code, body, ok := strings.Cut(rest, ": ")
	status, convErr := strconv.Atoi(code)
	if !ok || convErr != nil {
		return 0, "", false
	}
	return status, body, true
}

// printJSON writes an admin API answer indented, or as it came when it is
// not JSON.
func printJSON(cmd *cobra.Command, r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(body)
	}
	fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(pretty.String()))
	return nil
}
