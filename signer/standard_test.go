package signer

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Secrets for tests; none is used anywhere else.
const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecret2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

var (
	testSeed       = []byte("0123456789abcdef0123456789abcdef")
	testSigningKey = "whsk_" + base64.StdEncoding.EncodeToString(testSeed)
	testPublicKey  = "whpk_" + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(testSeed).Public().(ed25519.PublicKey))
)

func signed(t *testing.T, s Scheme, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	h := http.Header{}
	if err := s.Sign(h, id, ts, body); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return h
}

func TestStandardSignaturesVerifyWithTheStandardWebhooksLibrary(t *testing.T) {
	body := []byte(`{"type":"message.received","data":{"text":"Olá 😀"}}`)
	for _, c := range []struct {
		name     string
		signWith []string
		verifier string // the library's secret
	}{
		{"one secret", []string{testSecret}, testSecret},
		{"secret without prefix", []string{strings.TrimPrefix(testSecret, "whsec_")}, testSecret},
		{"rotation, library has the new secret", []string{testSecret, testSecret2}, testSecret},
		{"rotation, library has the old secret", []string{testSecret, testSecret2}, testSecret2},
		{"an ed25519 signature beside is ignored", []string{testSigningKey, testSecret}, testSecret},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewStandard(c.signWith...)
			if err != nil {
				t.Fatal(err)
			}
			h := signed(t, s, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", time.Now(), body)
			wh, err := standardwebhooks.NewWebhook(c.verifier)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(body, h); err != nil {
				t.Errorf("library rejects %q: %v", h.Get("webhook-signature"), err)
			}
		})
	}
}

func TestStandardSignatureIsTheLibrarysForTheSameInput(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	s, err := NewStandard(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := signed(t, s, "msg_1", ts, body)
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	want, _ := wh.Sign("msg_1", ts, body)
	if got := h.Get("webhook-signature"); got != want {
		t.Errorf("webhook-signature %q, library signs %q", got, want)
	}
	if h.Get("webhook-id") != "msg_1" || h.Get("webhook-timestamp") != "1700000000" {
		t.Errorf("headers %v", h)
	}
}

func TestStandardVerifiesTheLibrarysSignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	now := time.Now()
	wh, _ := standardwebhooks.NewWebhook(testSecret)
	sig, _ := wh.Sign("msg_1", now, body)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	s, _ := NewStandard(testSecret2, testSecret)
	if err := s.Verify(body, h); err != nil {
		t.Error(err)
	}
}

func TestStandardEd25519(t *testing.T) {
	body := []byte(`{"a":1}`)
	priv := ed25519.NewKeyFromSeed(testSeed)
	longKey := "whsk_" + base64.StdEncoding.EncodeToString(priv)
	for _, c := range []struct {
		name   string
		sign   string
		verify []string
	}{
		{"seed key, verified by its public key", testSigningKey, []string{testPublicKey}},
		{"64-byte key, verified by its public key", longKey, []string{testPublicKey}},
		{"verified by the signing key itself", testSigningKey, []string{testSigningKey}},
		{"verified among other keys", testSigningKey, []string{testSecret, testPublicKey}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewStandard(c.sign)
			if err != nil {
				t.Fatal(err)
			}
			h := signed(t, s, "msg_1", time.Now(), body)
			version, sig, _ := strings.Cut(h.Get("webhook-signature"), ",")
			raw, err := base64.StdEncoding.DecodeString(sig)
			if version != "v1a" || err != nil {
				t.Fatalf("webhook-signature %q", h.Get("webhook-signature"))
			}
			msg := h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)
			if !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte(msg), raw) {
				t.Error("not an ed25519 signature of <id>.<timestamp>.<body>")
			}
			v, err := Config{Secrets: c.verify}.Verifier()
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(body, h); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStandardSignsWithEveryKey(t *testing.T) {
	s, err := NewStandard(testSecret, testSigningKey, testSecret2)
	if err != nil {
		t.Fatal(err)
	}
	sigs := strings.Fields(signed(t, s, "msg_1", time.Now(), []byte("{}")).Get("webhook-signature"))
	var versions []string
	for _, sig := range sigs {
		v, _, _ := strings.Cut(sig, ",")
		versions = append(versions, v)
	}
	if got := strings.Join(versions, " "); got != "v1 v1 v1a" {
		t.Errorf("signature versions %q, want v1 v1 v1a", got)
	}
	// Each key alone verifies, so receivers can hold any one of them.
	for _, key := range []string{testSecret, testSecret2, testPublicKey} {
		v, _ := Config{Secrets: []string{key}}.Verifier()
		if err := v.Verify([]byte("{}"), signed(t, s, "msg_1", time.Now(), []byte("{}"))); err != nil {
			t.Errorf("verifier with one key: %v", err)
		}
	}
}

func TestStandardSignRequiresAnID(t *testing.T) {
	s, _ := NewStandard(testSecret)
	if err := s.Sign(http.Header{}, "", time.Now(), nil); err == nil {
		t.Error("Sign with an empty id: no error")
	}
}

func TestStandardVerifierWithOnlyPublicKeysCannotSign(t *testing.T) {
	v, err := Config{Secrets: []string{testPublicKey}}.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.(Scheme).Sign(http.Header{}, "msg_1", time.Now(), nil); err == nil {
		t.Error("Sign without a signing key: no error")
	}
}

func TestStandardVerifyRejectsAHeaderWithoutKnownSignatures(t *testing.T) {
	s, _ := NewStandard(testSecret)
	h := signed(t, s, "msg_1", time.Now(), nil)
	h.Set("webhook-signature", "v2,abc= v1 garbage")
	if err := s.Verify(nil, h); !errors.Is(err, ErrMalformedHeader) {
		t.Errorf("Verify: %v, want ErrMalformedHeader", err)
	}
}
