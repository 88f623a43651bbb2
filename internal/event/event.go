// Package event defines the canonical chat event: its types and the
// vocabulary of its data, which rules write and schemas read.
package event

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"

	"github.com/tidwall/gjson"
)

// Canonical event types: one vocabulary inside, translated by each schema.
const (
	MessageReceived      = "message.received"
	MessageReplied       = "message.replied"
	MessageSent          = "message.sent"
	MessageFollowUp      = "message.follow_up"
	MessageBlocked       = "message.blocked"
	MessageNoted         = "message.noted"
	MessageUpdated       = "message.updated"
	GroupMessageReceived = "group.message.received"
	ConversationCreated  = "conversation.created"
	ConversationUpdated  = "conversation.updated"
	ConversationStatus   = "conversation.status_changed"
	WidgetOpened         = "widget.opened"
	LeadSubmitted        = "lead.submitted"
	StepEntered          = "step.entered"
	CampaignResponse     = "campaign.response"
	CampaignOption       = "campaign.option"
)

// types lists every canonical event type.
var types = []string{
	MessageReceived, MessageReplied, MessageSent, MessageFollowUp, MessageBlocked,
	MessageNoted, MessageUpdated, GroupMessageReceived, ConversationCreated,
	ConversationUpdated, ConversationStatus, WidgetOpened, LeadSubmitted,
	StepEntered, CampaignResponse, CampaignOption,
}

// fields is the canonical vocabulary of an event's data: the paths a rule may
// set and a schema may read. A path ending in ".*" admits any sub-path. Rules
// are checked against it when they are compiled, so a typo fails at
// provision instead of silently producing empty payloads.
var fields = []string{
	"channel",
	"agent.id", "agent.name",
	"account.id", "account.name",
	"inbox.id", "inbox.name",
	"conversation.id", "conversation.status", "conversation.priority",
	"conversation.ai_enabled", "conversation.assignee.id", "conversation.assignee.name",
	"conversation.assignee.email", "conversation.labels", "conversation.attributes",
	"conversation.additional_attributes", "conversation.changed", "conversation.summary",
	"conversation.frustration", "conversation.created_at", "conversation.team_id",
	"message.id", "message.content", "message.direction", "message.content_type",
	"message.content_attributes", "message.private", "message.source_id",
	"message.created_at", "message.subject", "message.status",
	"reply.id", "reply.content", "reply.created_at",
	"contact.id", "contact.name", "contact.email", "contact.phone", "contact.avatar",
	"contact.username", "contact.platform_id", "contact.attributes",
	"group.id", "group.name",
	"scenario.id", "scenario.name", "step.id", "step.name",
	"campaign.id", "campaign.label", "campaign.option", "campaign.keyword", "campaign.response",
	"widget.session_id", "widget.page_url", "widget.event_info",
	"page.id", "source_id",
	"extra.*",
	// Who wrote the message when it is not the contact (a human agent, a bot).
	"message.sender.id", "message.sender.name", "message.sender.email", "message.sender.type",
	// Chatwoot/Voxsig conversation state, for their Conversation object.
	"conversation.can_reply", "conversation.unread_count", "conversation.snoozed_until",
	"conversation.waiting_since", "conversation.first_reply_created_at",
	"conversation.agent_last_seen_at", "conversation.contact_last_seen_at",
	"conversation.last_activity_at",
	// The contact's link to an inbox (Chatwoot contact_inbox); its source id
	// is source_id.
	"contact_inbox.id", "contact_inbox.created_at", "contact_inbox.updated_at",
	"contact_inbox.hmac_verified",
	"message.additional_attributes",
	// true when the text is not whole: read from a stream that ended early,
	// or (message) missing because the request was cut. Absent otherwise.
	"message.incomplete", "reply.incomplete",
	// true when the reply is the model's refusal; reply.content holds its
	// text.
	"reply.refusal",
}

// Event is one canonical chat event. Data is a JSON object whose paths are
// those of the vocabulary (KnownField); fields that were not known are absent, never invented.
type Event struct {
	// ID is unique and stable across retries, so receivers can de-duplicate.
	ID   string
	Type string
	Time time.Time
	Data []byte
}

// Get returns the value at a vocabulary path of the event's data.
func (e *Event) Get(path string) gjson.Result {
	return gjson.GetBytes(e.Data, path)
}

// NewID returns a fresh event id: "evt_" and 24 hex digits of randomness.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "evt_" + hex.EncodeToString(b[:])
}

// Types lists every canonical event type, in a fixed order.
func Types() []string { return slices.Clone(types) }

// IsType reports whether t is a canonical event type.
func IsType(t string) bool { return slices.Contains(types, t) }

// KnownField reports whether path is in the canonical vocabulary.
func KnownField(path string) bool {
	for _, f := range fields {
		if f == path {
			return true
		}
		if n := len(f); f[n-1] == '*' && len(path) > n-1 && path[:n-1] == f[:n-1] {
			return true
		}
	}
	return false
}
