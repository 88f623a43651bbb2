// Package derive turns captured exchanges into canonical events: rules (the
// built-in presets are presets/*.json, in the same language users write)
// match traffic and read fields from decoded bodies, reassembled streams and
// forms.
package derive

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/capture"
	"github.com/chatwebhooks/chatwebhooks/internal/convstate"
	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/tidwall/gjson"
)

// DefaultDecodeLimit bounds the decoded size of one body (after content
// decoding or stream reassembly).
const DefaultDecodeLimit = 8 << 20

// Config says which sources turn exchanges into events.
type Config struct {
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
	// State, when set, remembers each conversation's attributes between
	// exchanges: conversation.updated events then carry conversation.changed,
	// and events fill in attributes their own exchange lacks.
	State convstate.Store
}

// Deriver turns exchanges into canonical events. It is safe for concurrent
// use: its own state is fixed once it is built, and State must be safe for
// concurrent use.
type Deriver struct {
	rules    []*compiledRule
	convID   []source
	defaults []compiledField
	limit    int64
	state    convstate.Store
}

// maxItems bounds the events one exchange yields through a rule's each, so
// that a crafted batch cannot flood the outbox.
const maxItems = 1000

// Outcome is what one exchange yielded.
type Outcome struct {
	Events []event.Event
	// Problems names what was wrong with the traffic (see Problem*), for
	// metrics; the events may be partial when there are problems.
	Problems []string
}

// New compiles a configuration; errors name the rule and what is wrong.
func New(cfg Config) (*Deriver, error) {
	d := &Deriver{limit: cfg.DecodeLimit, state: cfg.State}
	if d.limit <= 0 {
		d.limit = DefaultDecodeLimit
	}
	var rules []Rule
	for _, name := range cfg.Presets {
		p, ok := presets[name]
		if !ok {
			return nil, fmt.Errorf("unknown source %q; built-in sources: %s", name, strings.Join(PresetNames(), ", "))
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
	if d.defaults, err = compileFields(cfg.Defaults, 0); err != nil {
		return nil, err
	}
	for _, r := range d.rules {
		r.compilePaths(d.convID, d.defaults)
	}
	return d, nil
}

// Wants reports whether any rule could match a request with this method,
// path and header, before its response exists. The proxy captures nothing for
// requests no rule wants, so unrelated traffic costs nothing.
func (d *Deriver) Wants(method, path string, h map[string][]string) bool {
	v := view{ex: &capture.Exchange{Method: method, Path: path, RequestHeader: h}}
	for _, r := range d.rules {
		v.setRule(r)
		if r.matchesRequest(&v) {
			return true
		}
	}
	return false
}

// Emits returns the canonical event types the deriver's rules can emit,
// sorted.
func (d *Deriver) Emits() []string {
	var types []string
	for _, r := range d.rules {
		for _, e := range r.emit {
			if !slices.Contains(types, e.Event) {
				types = append(types, e.Event)
			}
		}
	}
	slices.Sort(types)
	return types
}

// Derive returns the events of every rule that matches the exchange.
func (d *Deriver) Derive(ex *capture.Exchange) Outcome {
	var out Outcome
	v := view{ex: ex, limit: d.limit, sc: scratchPool.Get().(*scratch)}
	defer v.sc.release()
	if ex.Aborted {
		v.problem(ProblemAborted)
	}
	when := ex.End
	if when.IsZero() {
		when = time.Now()
	}
	for _, r := range d.rules {
		v.setRule(r)
		if !r.matches(&v) {
			continue
		}
		if r.each == nil {
			d.emit(&v, r, when, &out)
			continue
		}
		r.forEach(&v, func() { d.emit(&v, r, when, &out) })
	}
	out.Problems = v.problems
	return out
}

// emit appends the events of one rule: for the exchange, or for the element
// of the rule's each that v holds.
func (d *Deriver) emit(v *view, r *compiledRule, when time.Time, out *Outcome) {
	data := d.build(v, r.fields)
	var conv *convstate.Conv
	for i := range r.emit {
		e := &r.emit[i]
		if (e.If != "" && !data.has(e.If)) || (e.Unless != "" && data.has(e.Unless)) || !condsHold(e.when, v, &data) {
			continue
		}
		ev := data
		if len(e.fields) > 0 {
			ev = d.override(v, data, e.fields)
		}
		ev, ok := markIncomplete(v, ev, e.Event)
		if !ok {
			continue
		}
		if d.state != nil {
			if conv == nil {
				conv = d.loadConv(&ev)
			}
			if ev.entries, ok = conv.Apply(ev.entries, e.Event); !ok {
				continue
			}
		}
		out.Events = append(out.Events, event.Event{ID: event.NewID(), Type: e.Event, Time: when.UTC(), Data: ev.render()})
	}
	conv.Save()
}

// loadConv reads the state of the event's conversation; nil when the event
// has no conversation id.
func (d *Deriver) loadConv(ev *builtData) *convstate.Conv {
	id, ok := ev.get("conversation.id")
	if !ok {
		return nil
	}
	acc, _ := ev.get("account.id")
	// The id is read in place from the scratch values, which the next
	// exchange overwrites: the state keeps a copy.
	return convstate.Load(d.state, strings.Clone(id.String()), acc.String())
}

// markIncomplete says in an event what its exchange did not tell in full:
// message.incomplete or reply.incomplete when that text was read from a
// stream that ended early, and message.incomplete when the request was cut
// and its text is missing. A message event that is left with neither
// message nor reply text is not emitted (false): it would be empty.
func markIncomplete(v *view, ev builtData, typ string) (builtData, bool) {
	msg, hasMsg := jsondoc.Find(ev.entries, "message.content")
	reply, hasReply := jsondoc.Find(ev.entries, "reply.content")
	msgCut := hasMsg && msg.Partial
	if !hasMsg && v.reqCut && (strings.HasPrefix(typ, "message.") || typ == event.GroupMessageReceived) {
		if !hasReply {
			return ev, false
		}
		msgCut = true
	}
	replyCut := hasReply && reply.Partial
	if !msgCut && !replyCut {
		return ev, true
	}
	entries := ev.entries[:len(ev.entries):len(ev.entries)] // never append into a slice another event shares
	for _, m := range []struct {
		path string
		cut  bool
	}{{"message.incomplete", msgCut}, {"reply.incomplete", replyCut}} {
		if _, set := findEntry(entries, m.path); m.cut && !set {
			entries = append(entries, jsondoc.Entry{Path: m.path, Raw: []byte("true")})
		}
	}
	ev.entries = entries
	return ev, true
}

// forEach calls fn once per innermost element of the rule's each, with
// v.item and v.parent set, stopping after maxItems elements.
func (c *compiledRule) forEach(v *view, fn func()) {
	list, ok := c.each.lookup(v)
	if !ok {
		return
	}
	n := 0
	var walk func(level int, r gjson.Result) bool
	walk = func(level int, r gjson.Result) bool {
		visit := func(_, el gjson.Result) bool {
			if level < len(c.eachPaths) {
				v.parent = el
				return walk(level+1, el.Get(c.eachPaths[level]))
			}
			if n == maxItems {
				v.problem(ProblemTooManyItems)
				return false
			}
			n++
			v.item = el
			fn()
			return true
		}
		if r.IsArray() {
			r.ForEach(visit)
			return n < maxItems
		}
		return !r.Exists() || r.Type == gjson.Null || visit(gjson.Result{}, r)
	}
	walk(0, list)
	v.item, v.parent = gjson.Result{}, gjson.Result{}
}

// builtData is an event's fields before they become its document.
type builtData struct {
	entries []jsondoc.Entry
	// vals holds the entries' values; what is beyond its length (and
	// beyond entries') is free for an emit's own fields.
	vals []byte
	// conv says that entries[0] is the conversation id from the configured
	// conversation id sources, which win over every rule field.
	conv bool
}

// has reports whether a field has a value: a field known to be null has
// none.
func (b builtData) has(path string) bool {
	_, ok := b.get(path)
	return ok
}

// get returns the value of a field; ok is false when it is absent or null.
func (b *builtData) get(path string) (gjson.Result, bool) {
	raw, ok := findEntry(b.entries, path)
	if !ok {
		return gjson.Result{}, false
	}
	r := gjson.Parse(jsondoc.StringView(raw))
	return r, r.Type != gjson.Null
}

func (b builtData) render() []byte {
	return jsondoc.Build(nil, b.entries)
}

func findEntry(entries []jsondoc.Entry, path string) ([]byte, bool) {
	e, ok := jsondoc.Find(entries, path)
	return e.Raw, ok
}

// override lays an emit's own fields (more) over data, the rule's fields as
// build resolved them, without resolving those again: more's values replace
// data's entries of the same path (a default's included), and a configured
// conversation id stays first and wins.
func (d *Deriver) override(v *view, data builtData, more []compiledField) builtData {
	// The new entries and values follow data's in the scratch space, so
	// that data's stay as they are for the next emit.
	n := len(data.entries)
	entries := data.entries[n:n]
	if data.conv {
		entries = append(entries, data.entries[0])
	}
	seed := len(entries)
	entries, vals := resolveFields(v, entries, data.vals, more)
	if len(entries) == seed {
		return data
	}
	own := entries[seed:]
	for _, e := range data.entries[seed:] {
		if _, ok := findEntry(own, e.Path); !ok {
			entries = append(entries, e)
		}
	}
	return builtData{entries: entries, vals: vals, conv: data.conv}
}

// build resolves the configured conversation id, then fields, then the
// defaults for whatever is still absent.
// Its entries and values are written into v's scratch space from its
// start: the previous emit's events are rendered.
func (d *Deriver) build(v *view, fields []compiledField) builtData {
	entries, vals := resolveFields(v, v.sc.entries[:0], v.sc.vals[:0], []compiledField{{to: "conversation.id", from: d.convID}})
	convSet := len(entries) > 0
	entries, vals = resolveFields(v, entries, vals, fields)
	entries, vals = resolveFields(v, entries, vals, d.defaults)
	return builtData{entries: entries, vals: vals, conv: convSet}
}

// resolveFields appends to entries each field whose path entries lacks and
// one of whose sources has a value; the values are appended to vals.
func resolveFields(v *view, entries []jsondoc.Entry, vals []byte, fields []compiledField) ([]jsondoc.Entry, []byte) {
	for _, f := range fields {
		if _, ok := findEntry(entries, f.to); ok {
			continue
		}
		for i := range f.from {
			start := len(vals)
			var ok bool
			if vals, ok = f.from[i].appendValue(vals, v); ok {
				partial := v.respPartial && f.from[i].readsResponse()
				entries = append(entries, jsondoc.Entry{Path: f.to, Raw: vals[start:len(vals):len(vals)], Partial: partial})
				break
			}
			vals = vals[:start]
		}
	}
	return entries, vals
}
