package har

import (
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Masked replaces every value Redact hides.
const Masked = "REDACTED"

// credentialNames are header and query parameter names that carry
// credentials whatever their spelling's other parts.
var credentialNames = []string{"auth", "cookie", "key", "token", "secret", "password"}

// Sensitive reports whether a header or query parameter of this name may
// carry a credential: Authorization, Cookie, Set-Cookie, X-Api-Key, Api-Key,
// Chatwoot's api_access_token, a ?key= or ?access_token= parameter…
func Sensitive(name string) bool {
	name = strings.ToLower(name)
	for _, c := range credentialNames {
		if strings.Contains(name, c) {
			return true
		}
	}
	return false
}

// Redact masks the entry's credentials (see Sensitive) in headers, cookies
// and the query, and the values at paths (gjson syntax) in JSON bodies.
func (e *Entry) Redact(paths []string) {
	maskPairs(e.Request.Headers)
	maskPairs(e.Response.Headers)
	maskPairs(e.Request.QueryString)
	e.Request.Cookies, e.Response.Cookies = []NameValue{}, []NameValue{}
	if u, err := url.Parse(e.Request.URL); err == nil && u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if Sensitive(k) {
				q[k] = []string{Masked}
			}
		}
		u.RawQuery = q.Encode()
		e.Request.URL = u.String()
	}
	if pd := e.Request.PostData; pd != nil && pd.Encoding == "" {
		pd.Text = maskPaths(pd.Text, paths)
	}
	if c := &e.Response.Content; c.Encoding == "" {
		c.Text = maskPaths(c.Text, paths)
	}
}

func maskPairs(pairs []NameValue) {
	for i := range pairs {
		if Sensitive(pairs[i].Name) {
			pairs[i].Value = Masked
		}
	}
}

func maskPaths(text string, paths []string) string {
	if len(paths) == 0 || !gjson.Valid(text) {
		return text
	}
	for _, p := range paths {
		if gjson.Get(text, p).Exists() {
			if out, err := sjson.Set(text, p, Masked); err == nil {
				text = out
			}
		}
	}
	return text
}
