package caddymodule

import "go.uber.org/zap"

// warnUnreachable warns about each webhook of the route that its sources can
// never give anything: its schema, or its events filter, takes none of the
// event types the sources emit (schema campaign behind source openai). The
// configuration still works, a rule may come later, so it only warns.
func warnUnreachable(logger *zap.Logger, r *route) {
	emits := r.deriver.Emits()
	for _, wh := range r.webhooks {
		if !wh.shaper.Receives(emits) {
			logger.Warn("webhook can never receive an event: its schema takes none of the events its route's sources emit",
				zap.String("webhook", wh.endpoint.Name), zap.String("schema", wh.endpoint.Schema), zap.Strings("emitted", emits))
		}
	}
}
