package transform

import (
	"fmt"
	"time"
)

// DefaultDecodeLimit bounds the decoded size of one body (after content
// decoding or stream reassembly).
const DefaultDecodeLimit = 8 << 20

// DeriverConfig says which sources turn exchanges into events.
type DeriverConfig struct {
	// Presets names built-in sources, e.g. "openai".
	Presets []string
	// Rules are the user's own derivation rules, tried after the presets.
	Rules []Rule
	// ConversationID sources are tried before a rule's own conversation.id
	// sources, so that users can say where their conversation id lives.
	ConversationID []string
	// Defaults fill event fields that a rule left absent (e.g. agent.id).
	Defaults []Field
	// DecodeLimit bounds decoded body size; 0 means DefaultDecodeLimit.
	DecodeLimit int64
}

// Deriver turns exchanges into canonical events. It is safe for concurrent
// use: its state is fixed once it is built.
type Deriver struct {
	rules    []*compiledRule
	convID   []source
	defaults []compiledField
	limit    int64
}

// Outcome is what one exchange yielded.
type Outcome struct {
	Events []Event
	// Problems names what was wrong with the traffic (see Problem*), for
	// metrics; the events may be partial when there are problems.
	Problems []string
}

// NewDeriver compiles a configuration; errors name the rule and what is wrong.
func NewDeriver(cfg DeriverConfig) (*Deriver, error) {
	d := &Deriver{limit: cfg.DecodeLimit}
	if d.limit <= 0 {
		d.limit = DefaultDecodeLimit
	}
	var rules []Rule
	for _, name := range cfg.Presets {
		p, ok := presets[name]
		if !ok {
			return nil, fmt.Errorf("unknown source %q; built-in sources: %s", name, presetNames())
		}
		rules = append(rules, p.Rules...)
	}
	rules = append(rules, cfg.Rules...)
	for _, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return nil, err
		}
		d.rules = append(d.rules, c)
	}
	for _, s := range cfg.ConversationID {
		src, err := parseSource(s)
		if err != nil {
			return nil, fmt.Errorf("conversation_id: %v", err)
		}
		d.convID = append(d.convID, src)
	}
	var err error
	if d.defaults, err = compileFields(cfg.Defaults); err != nil {
		return nil, err
	}
	return d, nil
}

// Wants reports whether any rule could match a request with this method,
// path and header, before its response exists. The proxy captures nothing for
// requests no rule wants, so unrelated traffic costs nothing.
func (d *Deriver) Wants(method, path string, h map[string][]string) bool {
	v := view{ex: &Exchange{Method: method, Path: path, RequestHeader: h}}
	for _, r := range d.rules {
		v.params = v.params[:0]
		if r.matchesRequest(&v) {
			return true
		}
	}
	return false
}

// Derive returns the events of every rule that matches the exchange.
func (d *Deriver) Derive(ex *Exchange) Outcome {
	var out Outcome
	v := view{ex: ex, limit: d.limit, problems: &out.Problems}
	if ex.Aborted {
		v.problem(ProblemAborted)
	}
	when := ex.End
	if when.IsZero() {
		when = time.Now()
	}
	for _, r := range d.rules {
		v.params = v.params[:0]
		if !r.matches(&v) {
			continue
		}
		if r.stream != nil && !v.respDone {
			v.respStream = r.stream
		}
		data := d.build(&v, r.fields, nil)
		for _, e := range r.emit {
			if (e.If != "" && !data.has(e.If)) || (e.Unless != "" && data.has(e.Unless)) {
				continue
			}
			doc := data.doc
			if len(e.fields) > 0 {
				doc = d.build(&v, r.fields, e.fields).doc
			}
			out.Events = append(out.Events, Event{ID: NewID(), Type: e.Event, Time: when.UTC(), Data: doc})
		}
	}
	return out
}

// builtData is an event document and the paths it holds.
type builtData struct {
	doc     []byte
	entries []docEntry
}

func (b builtData) has(path string) bool {
	for _, e := range b.entries {
		if e.path == path {
			return true
		}
	}
	return false
}

// build resolves fields, then more (an emit's own fields, which win), then
// the conversation id and the defaults for whatever is still absent.
func (d *Deriver) build(v *view, fields, more []compiledField) builtData {
	entries := make([]docEntry, 0, len(fields)+len(more)+len(d.defaults)+1)
	var vals []byte
	set := func(to string, from []source) bool {
		for i := range from {
			start := len(vals)
			var ok bool
			if vals, ok = from[i].appendValue(vals, v); ok {
				entries = append(entries, docEntry{path: to, raw: vals[start:len(vals):len(vals)]})
				return true
			}
			vals = vals[:start]
		}
		return false
	}
	convSet := set("conversation.id", d.convID)
	for _, list := range [][]compiledField{more, fields} {
		for _, f := range list {
			if (f.to == "conversation.id" && convSet) || (builtData{entries: entries}).has(f.to) {
				continue
			}
			set(f.to, f.from)
		}
	}
	for _, f := range d.defaults {
		if !(builtData{entries: entries}).has(f.to) {
			set(f.to, f.from)
		}
	}
	return builtData{doc: buildDoc(make([]byte, 0, len(vals)+16*len(entries)), entries), entries: entries}
}
