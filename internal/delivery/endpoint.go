package delivery

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/chatwebhooks/chatwebhooks/signer"
)

// Endpoint is one receiver and how to deliver to it. The Caddy layer
// passes the whole set to Engine.Apply on every config load.
type Endpoint struct {
	// Name identifies the endpoint in storage, metrics and the admin API.
	// Keep it stable across config reloads: pending messages follow it.
	Name string
	// Identity digests everything that shapes or authorises a delivery
	// (URL, payload shape, headers, secrets, TLS...); endpoints of one
	// identity share their connections across reloads. Messages carry the
	// identity they were shaped for and are sent only with the settings of
	// an endpoint of that identity: when a reload changes it, what was
	// queued before keeps the settings it was shaped for, and after a
	// restart it becomes a dead letter (ReasonChanged) rather than going
	// out with settings it was not made for.
	Identity string
	// URL is the absolute http:// or https:// address messages are POSTed to.
	URL string
	// Schema is the payload schema's name, used as a metric label only.
	Schema string
	// Scheme signs each attempt; nil sends unsigned.
	Scheme signer.Scheme
	// Header holds static headers sent with every attempt, e.g. an
	// Authorization header; they override the defaults Content-Type:
	// application/json and User-Agent: chatwebhooks. CR and LF are
	// stripped from values.
	Header http.Header
	// Retry is the list of delays before the 2nd, 3rd, ... attempts, each
	// jittered by ±20%. nil means DefaultRetry(); an empty non-nil slice
	// means a single attempt.
	Retry []time.Duration
	// Timeout bounds one attempt, from connect to the end of the response.
	// Default 15s.
	Timeout time.Duration
	// Ordered delivers the messages of a lane one at a time, in enqueue
	// order: the next is not attempted until the previous one is delivered
	// or dead-lettered. A failing message holds back only its own lane.
	Ordered bool
	// ExpectBody, if set, is a JSON object whose members must all appear
	// with equal values in a 2xx response body for the attempt to count as
	// delivered, e.g. {"status":"accepted"}.
	ExpectBody string
	// MaxConcurrency bounds the attempts in flight, and so the connections,
	// to this endpoint. Default 10.
	MaxConcurrency int
	// DenyPrivate refuses to connect to loopback, private, link-local,
	// CGNAT, unspecified, multicast and cloud metadata addresses. The check
	// applies to the resolved address at connect time.
	DenyPrivate bool
	// TLS configures HTTPS (custom CAs, a client certificate for mTLS).
	// nil means the system roots, with verification.
	TLS *tls.Config
	// RateLimit and RatePeriod space attempts evenly, at most RateLimit
	// per RatePeriod; messages wait their turn, none is dropped. Zero
	// means no limit.
	RateLimit  int
	RatePeriod time.Duration
	// DisableAfter disables the endpoint once every attempt has failed for
	// this long: nothing more is attempted, its messages stay queued, and
	// Engine.Enable resumes it. Zero never disables.
	DisableAfter time.Duration
}

const (
	defaultTimeout        = 15 * time.Second
	defaultMaxConcurrency = 10
	userAgent             = "chatwebhooks"
)

// endpointConfig is an Endpoint checked, completed with defaults and given
// its own HTTP client. It is immutable once built: attempts in flight keep
// using the one they started with across a reload.
type endpointConfig struct {
	Endpoint
	expect map[string]any
	client *http.Client
}

// connectsAs reports whether o would open the same connections as c, so
// that o can use c's: same identity (which covers the URL and TLS), same
// address policy and connection cap.
func (c *endpointConfig) connectsAs(o *endpointConfig) bool {
	return c.Identity != "" && c.Identity == o.Identity && c.URL == o.URL &&
		c.DenyPrivate == o.DenyPrivate && c.MaxConcurrency == o.MaxConcurrency
}

func newEndpointConfig(ep Endpoint) (*endpointConfig, error) {
	if ep.Name == "" {
		return nil, errors.New("delivery: an endpoint needs a name")
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("delivery: endpoint %q: "+format, append([]any{ep.Name}, args...)...)
	}
	// The URL itself is never quoted in errors: it may carry a token.
	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fail("URL must be absolute and start with http:// or https://, e.g. https://hooks.example.com/in")
	}
	if ep.DenyPrivate {
		if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && deniedAddr(ip) {
			return nil, fail("%w", &DeniedAddressError{Addr: ip.Unmap()})
		}
	}
	if ep.Timeout < 0 || ep.MaxConcurrency < 0 || ep.DisableAfter < 0 {
		return nil, fail("timeout, max concurrency and disable_after must not be negative")
	}
	if ep.RateLimit < 0 || (ep.RateLimit > 0) != (ep.RatePeriod > 0) || ep.RateLimit > 0 && ep.RatePeriod/time.Duration(ep.RateLimit) <= 0 {
		return nil, fail("rate limit must be a positive number per positive duration, e.g. 10/1s")
	}
	if slices.ContainsFunc(ep.Retry, func(d time.Duration) bool { return d < 0 }) {
		return nil, fail("retry delays must not be negative")
	}
	c := &endpointConfig{Endpoint: ep}
	if ep.ExpectBody != "" {
		if err := json.Unmarshal([]byte(ep.ExpectBody), &c.expect); err != nil || c.expect == nil {
			return nil, fail(`expect_body must be a JSON object, e.g. {"status":"accepted"}`)
		}
	}
	if c.Retry == nil {
		c.Retry = DefaultRetry()
	} else {
		c.Retry = slices.Clone(c.Retry)
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = defaultMaxConcurrency
	}
	// Canonical keys, so that a static header replaces a default one
	// instead of going out beside it.
	c.Header = http.Header{}
	for k, vs := range ep.Header {
		for _, v := range vs {
			c.Header.Add(k, v)
		}
	}
	cleanHeader(c.Header)
	c.client = newClient(c)
	return c, nil
}

// Check reports what would make Apply or SetEndpoint refuse ep, without
// changing anything: for a configuration that must be checked whole before
// it is applied.
func (ep Endpoint) Check() error {
	_, err := newEndpointConfig(ep)
	return err
}

// newClient gives each endpoint its own transport, because TLS settings,
// the private-address policy and the connection cap differ per endpoint.
func newClient(c *endpointConfig) *http.Client {
	t := &http.Transport{
		// No proxy from the environment: a proxy would connect on our
		// behalf and bypass DenyPrivate.
		Proxy:               nil,
		DialContext:         newDialer(c.DenyPrivate).DialContext,
		TLSClientConfig:     c.TLS.Clone(),
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxConnsPerHost:     c.MaxConcurrency,
		MaxIdleConnsPerHost: c.MaxConcurrency,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport: t,
		// A redirect is a failed delivery (Standard Webhooks), and following
		// it could lead the signed body anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// cleanHeader strips CR and LF from every value in place, so that no value,
// static or set by a signer, can split headers.
func cleanHeader(h http.Header) {
	for _, vs := range h {
		for i, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				vs[i] = strings.NewReplacer("\r", "", "\n", "").Replace(v)
			}
		}
	}
}
