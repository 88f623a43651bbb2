// Command caddy is Caddy with the chat_webhooks module, the same binary that
// `xcaddy build --with github.com/chatwebhooks/chatwebhooks` produces, built
// with a plain `go build ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules, as xcaddy includes them.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/chatwebhooks/chatwebhooks"
)

func main() {
	caddycmd.Main()
}
