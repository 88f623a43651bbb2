package delivery

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDeniedAddr(t *testing.T) {
	denied := []string{
		"127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1",
		"100.100.100.200", "169.254.169.254", "169.254.1.1", "0.0.0.0", "0.1.2.3",
		"224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254",
		"ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"}
	for _, s := range denied {
		if !deniedAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s allowed, want denied", s)
		}
	}
	for _, s := range allowed {
		if deniedAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s denied, want allowed", s)
		}
	}
}

func TestDenyPrivateRefusesALiteralLoopbackURL(t *testing.T) {
	h := newHarness(t, NewMemoryStore(), Options{})
	err := h.eng.SetEndpoint(endpoint("http://127.0.0.1:8080/in", func(e *Endpoint) { e.DenyPrivate = true }))
	var de *DeniedAddressError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "deny_private") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("SetEndpoint = %v, want a DeniedAddressError naming 127.0.0.1 and deny_private", err)
	}
}

// TestDenyPrivateRefusesAtConnectTime uses a host name, so only the check
// of the resolved address can catch it.
func TestDenyPrivateRefusesAtConnectTime(t *testing.T) {
	rx := newReceiver(t, answers(response{status: 200}))
	h := newHarness(t, NewMemoryStore(), Options{})
	url := strings.Replace(rx.URL, "127.0.0.1", "localhost", 1)
	h.set(endpoint(url, func(e *Endpoint) { e.DenyPrivate = true; e.Retry = []time.Duration{} }))
	h.enqueue(msg("A", 1))
	h.waitCount("failed:rx:"+ReasonDenied, 1)
	dl, err := h.eng.DeadLetter("rx", "msg_A1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.LastError, "refusing to connect") || rx.count() != 0 {
		t.Errorf("last error %q, %d requests reached the receiver", dl.LastError, rx.count())
	}
}

func TestSetEndpointValidates(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		want string // "" = valid
	}{
		{"https", Endpoint{Name: "a", URL: "https://hooks.example.com/in"}, ""},
		{"http with port", Endpoint{Name: "a", URL: "http://hooks.example.com:8080/in?k=v"}, ""},
		{"public literal with deny_private", Endpoint{Name: "a", URL: "https://8.8.8.8/", DenyPrivate: true}, ""},
		{"no name", Endpoint{URL: "https://hooks.example.com/"}, "needs a name"},
		{"ftp", Endpoint{Name: "a", URL: "ftp://hooks.example.com/"}, "http:// or https://"},
		{"no scheme", Endpoint{Name: "a", URL: "hooks.example.com/in"}, "http:// or https://"},
		{"no host", Endpoint{Name: "a", URL: "https:///in"}, "http:// or https://"},
		{"empty", Endpoint{Name: "a"}, "http:// or https://"},
		{"metadata literal", Endpoint{Name: "a", URL: "http://169.254.169.254/latest", DenyPrivate: true}, "refusing"},
		{"IPv6 loopback literal", Endpoint{Name: "a", URL: "http://[::1]:80/", DenyPrivate: true}, "refusing"},
		{"expect_body not an object", Endpoint{Name: "a", URL: "https://x.example/", ExpectBody: `["accepted"]`}, "expect_body must be a JSON object"},
		{"expect_body not JSON", Endpoint{Name: "a", URL: "https://x.example/", ExpectBody: `accepted`}, "expect_body must be a JSON object"},
		{"negative timeout", Endpoint{Name: "a", URL: "https://x.example/", Timeout: -time.Second}, "negative"},
		{"negative retry", Endpoint{Name: "a", URL: "https://x.example/", Retry: []time.Duration{-time.Second}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newEndpointConfig(tt.ep)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A URL may carry a secret: errors never quote it.
	_, err := newEndpointConfig(Endpoint{Name: "a", URL: "ftp://user:s3cret@x/"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v leaks the URL", err)
	}
}
