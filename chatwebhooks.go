// Package chatwebhooks is a Caddy module that watches the traffic to a chat
// backend, derives chat events from it, and delivers them as signed webhooks
// in the payload shape each receiver expects.
//
// Importing this package registers the module, so that
//
//	xcaddy build --with github.com/chatwebhooks/chatwebhooks
//
// builds a Caddy that has it. The code lives in caddymodule (the Caddy
// layer), signer, and the pipeline's stages under internal/: derive, enrich,
// shape and delivery.
package chatwebhooks

import (
	// Registers the chat_webhooks app, handler, Caddyfile directive,
	// admin API and command.
	_ "github.com/chatwebhooks/chatwebhooks/caddymodule"
)
