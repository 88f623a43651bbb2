// Package enrich fills an event's contact from the operator's user lookup
// service (user_info), with a bounded cache and one request in flight per
// lookup address.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/event"
	"github.com/chatwebhooks/chatwebhooks/internal/jsondoc"
	"github.com/chatwebhooks/chatwebhooks/internal/lru"
	"github.com/chatwebhooks/chatwebhooks/internal/template"
	"github.com/tidwall/gjson"
	"golang.org/x/sync/singleflight"
)

// Defaults of Config.
const (
	defaultTimeout    = 5 * time.Second
	defaultCacheTTL   = 10 * time.Minute
	defaultFailureTTL = 30 * time.Second
	defaultCacheSize  = 10000
	// maxUserInfo bounds a lookup answer; a user record is small.
	maxUserInfo = 1 << 20
)

// defaultUserFields maps contact fields to the keys lookup services commonly
// use for them, tried in order; "a+b" joins the values of a and b with a space.
var defaultUserFields = map[string][]string{
	"contact.name":   {"name", "fullName", "full_name", "displayName", "display_name", "firstName+lastName", "first_name+last_name"},
	"contact.email":  {"email", "emailAddress", "email_address"},
	"contact.phone":  {"phone", "phoneNumber", "phone_number", "mobile"},
	"contact.avatar": {"avatar", "avatarUrl", "avatar_url", "picture"},
}

// Config configures the lookup of a contact's details in the operator's
// user service ("Fetch External User Information" in the widget platform's
// settings).
type Config struct {
	// URL is the lookup address. Its path and query may hold placeholders
	// of the template language ({contact.id}, {contact.id ?? contact.email}),
	// filled URL-escaped from the event; its scheme and host are fixed here,
	// so traffic can never choose where the lookup goes.
	URL string
	// Header is sent with every lookup (e.g. Authorization).
	Header http.Header
	// Timeout bounds one lookup; 0 means 5 s.
	Timeout time.Duration
	// CacheTTL is how long an answer is reused; 0 means 10 min.
	CacheTTL time.Duration
	// FailureTTL is how long a failed lookup is remembered, so that a dead
	// lookup service is not asked again for every event; 0 means
	// 30 s, and it never exceeds CacheTTL.
	FailureTTL time.Duration
	// CacheSize bounds the cached answers; 0 means 10000.
	CacheSize int
	// Root is the gjson path of the user object in the answer, e.g. "data";
	// empty means the answer itself.
	Root string
	// Fields maps contact fields to the answer's keys (gjson paths); nil
	// means the keys lookup services commonly use (name, fullName,
	// email, phoneNumber, avatarUrl...). The answer's other top-level members go to
	// contact.attributes.
	Fields map[string][]string
	// Client sends the lookups; nil means a plain http.Client. Redirects
	// are never followed.
	Client *http.Client
}

// Enricher fills an event's contact from an external lookup service, with
// a bounded cache and one request in flight per lookup address. It is safe
// for concurrent use.
type Enricher struct {
	url        template.Text
	header     http.Header
	timeout    time.Duration
	ttl        time.Duration
	failureTTL time.Duration
	root       string
	fields     []userField
	client     *http.Client

	cache    *lru.Cache[*userInfo]
	inflight singleflight.Group
}

type userField struct {
	key  string // member of contact
	from []string
}

// userInfo is one lookup's outcome: members for contact and for
// contact.attributes, or the error.
type userInfo struct {
	fields []jsondoc.Entry
	attrs  []jsondoc.Entry
	err    error
}

// New checks a configuration and builds its Enricher.
func New(cfg Config) (*Enricher, error) {
	e := &Enricher{
		header:     cfg.Header.Clone(),
		timeout:    orDefault(cfg.Timeout, defaultTimeout),
		ttl:        orDefault(cfg.CacheTTL, defaultCacheTTL),
		failureTTL: orDefault(cfg.FailureTTL, defaultFailureTTL),
		root:       cfg.Root,
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = defaultCacheSize
	}
	e.cache = lru.New[*userInfo](size)
	e.failureTTL = min(e.failureTTL, e.ttl)
	var err error
	if e.url, err = parseLookupURL(cfg.URL); err != nil {
		return nil, err
	}
	fields := cfg.Fields
	if fields == nil {
		fields = defaultUserFields
	}
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		key, ok := strings.CutPrefix(f, "contact.")
		if !ok || !event.KnownField(f) || key == "attributes" || len(fields[f]) == 0 {
			return nil, fmt.Errorf("user_info field %q: want a contact field (contact.name, contact.email, contact.phone...) and the answer's keys", f)
		}
		e.fields = append(e.fields, userField{key: key, from: fields[f]})
	}
	client := http.Client{}
	if cfg.Client != nil {
		client = *cfg.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.client = &client
	return e, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// parseLookupURL compiles a URL template, refusing placeholders before the
// path so that the host stays fixed.
func parseLookupURL(raw string) (template.Text, error) {
	fail := func(format string, args ...any) (template.Text, error) {
		return template.Text{}, fmt.Errorf("user_info URL: "+format, args...)
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	authority := len(raw)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = len(scheme) + len("://") + i
	}
	if scheme != "http" && scheme != "https" || authority == len(scheme)+len("://") {
		return fail("want http:// or https:// and a host")
	}
	if strings.Contains(raw[:authority], "{") {
		return fail("placeholders may stand only in the path and query, after the host")
	}
	t, err := template.ParseText(raw)
	if err != nil {
		return fail("%v", err)
	}
	return t, nil
}

// address fills the URL from the event, each value escaped for its place
// (the query once a "?" was written, else the path); ok is false when a
// placeholder has no value, so there is nothing to look up.
func (e *Enricher) address(ev *event.Event) (string, bool) {
	return e.url.Fill(ev, func(before, value string) string {
		if strings.Contains(before, "?") {
			return url.QueryEscape(value)
		}
		return url.PathEscape(value)
	})
}

// Enrich returns ev with its contact filled from the lookup service:
// contact fields the event lacks, and the answer's other members under
// contact.attributes (the event's own values win). ev is not modified.
// When the lookup fails (timeout, non-2xx answer, bad JSON), or failed
// recently, Enrich returns ev unchanged and the error, for the caller to
// count. An event without the values the URL needs is returned unchanged
// with no error.
func (e *Enricher) Enrich(ctx context.Context, ev event.Event) (event.Event, error) {
	addr, ok := e.address(&ev)
	if !ok {
		return ev, nil
	}
	info := e.get(ctx, addr)
	if info.err != nil {
		return ev, info.err
	}
	data, err := info.apply(ev.Data)
	if err != nil {
		return ev, err
	}
	ev.Data = data
	return ev, nil
}

// get answers from the cache, or joins or starts the lookup of addr. The
// lookup outlives a caller that gives up: others may be waiting for it, and
// its answer is cached for the next.
func (e *Enricher) get(ctx context.Context, addr string) *userInfo {
	if info := e.cached(addr); info != nil {
		return info
	}
	done := e.inflight.DoChan(addr, func() (any, error) {
		// A lookup that finished after this caller missed the cache has
		// left its answer there.
		if info := e.cached(addr); info != nil {
			return info, nil
		}
		return e.run(addr), nil
	})
	select {
	case r := <-done:
		return r.Val.(*userInfo)
	case <-ctx.Done():
		return &userInfo{err: fmt.Errorf("user_info: %w", ctx.Err())}
	}
}

// cached returns the fresh cached answer for addr, or nil.
func (e *Enricher) cached(addr string) *userInfo {
	info, _ := e.cache.Get(addr, time.Now(), 0)
	return info
}

// run performs one lookup on behalf of every caller waiting for it, and
// caches the outcome.
func (e *Enricher) run(addr string) *userInfo {
	info := e.fetch(addr)
	ttl := e.ttl
	if info.err != nil {
		ttl = e.failureTTL
	}
	e.cache.Put(addr, info, time.Now().Add(ttl))
	return info
}

func (e *Enricher) fetch(addr string) *userInfo {
	fail := func(err error) *userInfo { return &userInfo{err: fmt.Errorf("user_info: %w", err)} }
	// The lookup outlives any one caller: others may be waiting for it.
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return fail(errors.New("the filled URL is invalid"))
	}
	req.Header = e.header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		// The URL may carry a token or personal data: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserInfo+1))
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fail(fmt.Errorf("lookup answered %d", resp.StatusCode))
	case err != nil:
		return fail(err)
	case len(body) > maxUserInfo:
		return fail(fmt.Errorf("answer exceeds %d bytes", maxUserInfo))
	case !gjson.ValidBytes(body):
		return fail(errors.New("answer is not JSON"))
	}
	user := gjson.ParseBytes(body)
	if e.root != "" {
		user = user.Get(e.root)
	}
	if !user.IsObject() {
		return fail(errors.New("answer holds no user object"))
	}
	return e.read(user)
}

// read maps a user object onto contact fields and attributes.
func (e *Enricher) read(user gjson.Result) *userInfo {
	info := &userInfo{}
	mapped := map[string]bool{} // the answer's members read as fields
	for _, f := range e.fields {
		var value []string
		for _, from := range f.from {
			var texts []string
			for _, k := range strings.Split(from, "+") {
				top, _, _ := strings.Cut(k, ".")
				mapped[top] = true
				if r := user.Get(k); jsondoc.HasValue(r) {
					texts = append(texts, r.String())
				}
			}
			if value == nil {
				value = texts
			}
		}
		if value != nil {
			info.fields = append(info.fields, jsondoc.Entry{Path: f.key, Raw: jsondoc.AppendString(nil, strings.Join(value, " "))})
		}
	}
	user.ForEach(func(k, v gjson.Result) bool {
		if !mapped[k.Str] && v.Type != gjson.Null {
			info.attrs = append(info.attrs, jsondoc.Entry{Path: k.Str, Raw: jsondoc.AppendValue(nil, v)})
		}
		return true
	})
	return info
}

// apply returns data with the lookup's members added to contact, leaving
// what the event already knows.
func (info *userInfo) apply(data []byte) ([]byte, error) {
	doc := gjson.ParseBytes(data)
	contact := doc.Get("contact")
	if contact.Exists() && !contact.IsObject() {
		return nil, errors.New("user_info: the event's contact is not an object")
	}
	var add []jsondoc.Entry
	for _, f := range info.fields {
		if !jsondoc.HasValue(contact.Get(f.Path)) {
			add = append(add, f)
		}
	}
	attrs := contact.Get("attributes")
	if len(info.attrs) > 0 && (!attrs.Exists() || attrs.IsObject()) {
		var extra []jsondoc.Entry
		for _, a := range info.attrs {
			if !hasMember(attrs, a.Path) {
				extra = append(extra, a)
			}
		}
		if len(extra) > 0 {
			add = append(add, jsondoc.Entry{Path: "attributes", Raw: withMembers(nil, attrs, extra)})
		}
	}
	if len(add) == 0 {
		return data, nil
	}
	return withMembers(nil, doc, []jsondoc.Entry{{Path: "contact", Raw: withMembers(nil, contact, add)}}), nil
}

func hasMember(obj gjson.Result, key string) bool {
	found := false
	obj.ForEach(func(k, _ gjson.Result) bool {
		found = k.Str == key
		return !found
	})
	return found
}

// withMembers writes object obj (or a new one) with set's members replacing
// those of the same key in place, the others appended. Keys are plain member
// names, never paths, so any text is safe.
func withMembers(dst []byte, obj gjson.Result, set []jsondoc.Entry) []byte {
	dst = append(dst, '{')
	done := make([]bool, len(set))
	first := true
	member := func(key string, raw []byte) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(jsondoc.AppendString(dst, key), ':')
		dst = append(dst, raw...)
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		raw := []byte(v.Raw)
		for i, s := range set {
			if s.Path == k.Str {
				raw, done[i] = s.Raw, true
			}
		}
		member(k.Str, raw)
		return true
	})
	for i, s := range set {
		if !done[i] {
			member(s.Path, s.Raw)
		}
	}
	return append(dst, '}')
}
