package signer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// schemeFixtures configure every scheme for the shared sign/verify tests.
var schemeFixtures = []struct {
	name        string
	cfg         Config
	wrongSecret string
	timestamped bool     // the timestamp is signed and checked
	required    []string // headers Verify cannot do without
}{
	{"standard v1", Config{Secrets: []string{testSecret}}, testSecret2, true,
		[]string{"webhook-id", "webhook-timestamp", "webhook-signature"}},
	{"standard v1a", Config{Name: "standard", Secrets: []string{testSigningKey}}, "whsk_" + strings.Repeat("A", 43) + "=", true,
		[]string{"webhook-id", "webhook-timestamp", "webhook-signature"}},
	{"chatzuri", Config{Name: "chatzuri", Secrets: []string{"zuri-secret"}}, "zuri-other", false,
		[]string{"x-chatzuri-signature"}},
	{"chatwoot", Config{Name: "chatwoot", Secrets: []string{"woot-secret"}}, "woot-other", true,
		[]string{"X-Chatwoot-Signature", "X-Chatwoot-Timestamp"}},
	{"hmac like GitHub", Config{Name: "hmac", Secrets: []string{"hub-secret"},
		HMACOptions: HMACOptions{Header: "X-Hub-Signature-256", Prefix: "sha256=", IDHeader: "X-GitHub-Delivery"}}, "hub-other", false,
		[]string{"X-Hub-Signature-256"}},
	{"hmac sha512 base64 with signed timestamp", Config{Name: "hmac", Secrets: []string{"h-secret"},
		HMACOptions: HMACOptions{Algorithm: "sha512", Encoding: "base64", Header: "X-Signature", TimestampHeader: "X-Timestamp", SignedTimestamp: true}}, "h-other", true,
		[]string{"X-Signature", "X-Timestamp"}},
	{"hmac sha1 with unsigned timestamp", Config{Name: "hmac", Secrets: []string{"h-secret"},
		HMACOptions: HMACOptions{Algorithm: "sha1", Header: "X-Signature", Prefix: "v0=", TimestampHeader: "X-Timestamp"}}, "h-other", false,
		[]string{"X-Signature"}},
}

func TestSignThenVerify(t *testing.T) {
	body := []byte(`{"message":"Olá <b>&amp;</b> 😀","n":1.5,"0":[null,true]}`)
	tampered := []byte(`{"message":"Olá <b>&amp;</b> 😀","n":2.5,"0":[null,true]}`)
	now := time.Now()
	for _, f := range schemeFixtures {
		t.Run(f.name, func(t *testing.T) {
			s, err := f.cfg.Scheme()
			if err != nil {
				t.Fatal(err)
			}
			v, err := f.cfg.Verifier()
			if err != nil {
				t.Fatal(err)
			}
			sent, err := s.Prepare(body)
			if err != nil {
				t.Fatal(err)
			}
			check := func(name string, v Verifier, body []byte, h http.Header, want error) {
				t.Helper()
				err := v.Verify(body, h)
				if want == nil && err != nil || !errors.Is(err, want) {
					t.Errorf("%s: Verify: %v, want %v", name, err, want)
				}
				for _, secret := range append(f.cfg.Secrets, f.wrongSecret) {
					if err != nil && strings.Contains(err.Error(), secret) {
						t.Errorf("%s: error %q contains a secret", name, err)
					}
				}
			}
			check("fresh", v, sent, signed(t, s, "msg_1", now, sent), nil)
			check("4 minutes old", v, sent, signed(t, s, "msg_1", now.Add(-4*time.Minute), sent), nil)
			check("tampered body", v, tampered, signed(t, s, "msg_1", now, sent), ErrSignatureMismatch)

			wrong, err := Config{Name: f.cfg.Name, Secrets: []string{f.wrongSecret}, HMACOptions: f.cfg.HMACOptions}.Verifier()
			if err != nil {
				t.Fatal(err)
			}
			check("wrong secret", wrong, sent, signed(t, s, "msg_1", now, sent), ErrSignatureMismatch)
			rotating, err := Config{Name: f.cfg.Name, Secrets: append([]string{f.wrongSecret}, f.cfg.Secrets...), HMACOptions: f.cfg.HMACOptions}.Verifier()
			if err != nil {
				t.Fatal(err)
			}
			check("verifier holding the old and new secrets", rotating, sent, signed(t, s, "msg_1", now, sent), nil)

			for _, name := range f.required {
				h := signed(t, s, "msg_1", now, sent)
				h.Del(name)
				check("without "+name, v, sent, h, ErrMissingHeader)
			}

			if !f.timestamped {
				check("a day old, unsigned time", v, sent, signed(t, s, "msg_1", now.Add(-24*time.Hour), sent), nil)
				return
			}
			check("6 minutes old", v, sent, signed(t, s, "msg_1", now.Add(-6*time.Minute), sent), ErrTimestampOutOfRange)
			check("6 minutes ahead", v, sent, signed(t, s, "msg_1", now.Add(6*time.Minute), sent), ErrTimestampOutOfRange)
			strict := f.cfg
			strict.Tolerance = Duration(time.Minute)
			sv, err := strict.Verifier()
			if err != nil {
				t.Fatal(err)
			}
			check("2 minutes old, 1 minute tolerance", sv, sent, signed(t, s, "msg_1", now.Add(-2*time.Minute), sent), ErrTimestampOutOfRange)
			h := signed(t, s, "msg_1", now, sent)
			for name := range h {
				if strings.Contains(strings.ToLower(name), "timestamp") {
					h.Set(name, "yesterday")
				}
			}
			check("timestamp not a number", v, sent, h, ErrMalformedHeader)
			for _, absurd := range []string{"9223372036854775807", "-9223372036854775808", "99999999999999", "-1"} {
				h := signed(t, s, "msg_1", now, sent)
				for name := range h {
					if strings.Contains(strings.ToLower(name), "timestamp") {
						h.Set(name, absurd)
					}
				}
				check("timestamp "+absurd, v, sent, h, ErrTimestampOutOfRange)
			}
		})
	}
}

func TestSignReplacesTheHeadersOfAPreviousAttempt(t *testing.T) {
	for _, f := range schemeFixtures {
		s, _ := f.cfg.Scheme()
		h := signed(t, s, "msg_1", time.Now().Add(-time.Hour), []byte("{}"))
		if err := s.Sign(h, "msg_1", time.Now(), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		for name, values := range h {
			if len(values) != 1 {
				t.Errorf("%s: %s has %d values", f.name, name, len(values))
			}
		}
	}
}
