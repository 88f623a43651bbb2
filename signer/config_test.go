package signer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestConfigFromJSON(t *testing.T) {
	for _, c := range []struct {
		json, want string // want: the scheme's String
	}{
		{`{"secrets":["` + testSecret + `"]}`, "standard (1 v1 secrets, 0 v1a signing keys, 0 v1a public keys)"},
		{`{"scheme":"standard","secrets":["` + testSecret + `","` + testSigningKey + `"],"tolerance":"2m"}`, "standard (1 v1 secrets, 1 v1a signing keys, 0 v1a public keys)"},
		{`{"scheme":"chatzuri","secrets":["s"]}`, "chatzuri (sha1 hex in X-Chatzuri-Signature, 1 secrets)"},
		{`{"scheme":"chatwoot","secrets":["s"],"tolerance":60000000000}`, "chatwoot (sha256 hex in X-Chatwoot-Signature, 1 secrets)"},
		{`{"scheme":"hmac","secrets":["s"],"algorithm":"sha256","encoding":"hex","header":"X-Hub-Signature-256","prefix":"sha256=","timestamp_header":"","signed_timestamp":false,"id_header":""}`,
			"hmac (sha256 hex in X-Hub-Signature-256, 1 secrets)"},
		{`{"scheme":"hmac","secrets":["s"],"algorithm":"sha512","encoding":"base64","header":"X-Sig","timestamp_header":"X-Ts","signed_timestamp":true,"id_header":"X-Id","tolerance":"30s"}`,
			"hmac (sha512 base64 in X-Sig, 1 secrets)"},
	} {
		var cfg Config
		if err := json.Unmarshal([]byte(c.json), &cfg); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		s, err := cfg.Scheme()
		if err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if got := fmt.Sprint(s); got != c.want {
			t.Errorf("%s: %s, want %s", c.json, got, c.want)
		}
	}
}

func TestConfigTolerance(t *testing.T) {
	for in, want := range map[string]time.Duration{`"5m"`: 5 * time.Minute, `"90s"`: 90 * time.Second, `60000000000`: time.Minute} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v, want %v", in, time.Duration(d), err, want)
		}
	}
	for _, in := range []string{`"5 minutes"`, `"5"`, `true`, `1.5`} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

// rawSecret appears in no valid position of any config below; no error may
// show it, nor the bytes it decodes to.
const rawSecret = "whsec_dGhpcy1pcy1hLXNlY3JldC1rZXk="

func TestConfigErrorsSayWhatToWriteAndNeverShowASecret(t *testing.T) {
	decoded, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(rawSecret, "whsec_"))
	hub := func(o HMACOptions) Config { return Config{Name: "hmac", Secrets: []string{rawSecret}, HMACOptions: o} }
	for _, c := range []struct {
		name       string
		cfg        Config
		verifyOnly bool // the error is Verifier's; Scheme's otherwise
		want       string
	}{
		{"unknown scheme", Config{Name: "svix", Secrets: []string{rawSecret}}, false, "write standard, chatzuri, chatwoot or hmac"},
		{"secret in the scheme's place", Config{Name: rawSecret, Secrets: []string{rawSecret}}, false, "unknown scheme"},
		{"no secret", Config{}, false, "no secret; configure one, such as whsec_<base64>"},
		{"empty secret", Config{Secrets: []string{rawSecret, ""}}, false, "secret 2 of 2 is empty; is its environment variable set?"},
		{"not base64", Config{Secrets: []string{rawSecret + "!"}}, false, "is not standard base64 after the whsec_ prefix"},
		{"empty after prefix", Config{Secrets: []string{"whsec_"}}, false, "is empty after its whsec_ prefix"},
		{"signing key of the wrong size", Config{Secrets: []string{"whsk_" + base64.StdEncoding.EncodeToString(decoded)}}, false, "decodes to 20 bytes; a whsk_ key is"},
		{"inconsistent 64-byte key", Config{Secrets: []string{"whsk_" + base64.StdEncoding.EncodeToString(make([]byte, 64))}}, false, "does not match its seed"},
		{"public key to sign", Config{Secrets: []string{testPublicKey}}, false, "can only verify; to sign, write the whsk_ private key"},
		{"public key of the wrong size", Config{Secrets: []string{"whpk_" + base64.StdEncoding.EncodeToString(decoded)}}, true, "decodes to 20 bytes; a whpk_ key is"},
		{"hmac options on chatwoot", Config{Name: "chatwoot", Secrets: []string{rawSecret}, HMACOptions: HMACOptions{Header: "X-Sig"}}, false, "are for scheme hmac only; remove them"},
		{"two secrets for chatzuri", Config{Name: "chatzuri", Secrets: []string{rawSecret, rawSecret}}, false, "sign with the new secret alone"},
		{"tolerance without a timestamp", Config{Name: "chatzuri", Secrets: []string{rawSecret}, Tolerance: Duration(time.Minute)}, true, "tolerance applies only to a signed timestamp"},
		{"negative tolerance", Config{Secrets: []string{testSecret}, Tolerance: -1}, true, "tolerance is negative"},
		{"unknown algorithm", hub(HMACOptions{Header: "X-Sig", Algorithm: rawSecret}), false, "unknown algorithm; write sha1, sha256 or sha512"},
		{"unknown encoding", hub(HMACOptions{Header: "X-Sig", Encoding: "base32"}), false, "unknown encoding; write hex or base64"},
		{"no header", hub(HMACOptions{}), false, "no signature header; name one, such as X-Signature"},
		{"header with a space", hub(HMACOptions{Header: "X Sig"}), false, "not a valid HTTP field name"},
		{"header that is a secret", hub(HMACOptions{Header: rawSecret}), false, "not a valid HTTP field name"},
		{"prefix with a newline", hub(HMACOptions{Header: "X-Sig", Prefix: "v1\r\nX-Evil: 1"}), false, "prefix contains a control character"},
		{"signed timestamp without its header", hub(HMACOptions{Header: "X-Sig", SignedTimestamp: true}), false, "signed_timestamp needs timestamp_header"},
		{"one header twice", hub(HMACOptions{Header: "X-Sig", IDHeader: "x-sig"}), false, "must differ"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.verifyOnly {
				_, err = c.cfg.Verifier()
			} else {
				_, err = c.cfg.Scheme()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			for _, s := range []string{rawSecret, strings.TrimPrefix(rawSecret, "whsec_"), string(decoded)} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

func TestConfigVerifierAcceptsWhatSchemeRefuses(t *testing.T) {
	for _, cfg := range []Config{
		{Name: "chatwoot", Secrets: []string{"new", "old"}},
		{Secrets: []string{testSecret, testPublicKey}},
	} {
		if _, err := cfg.Verifier(); err != nil {
			t.Errorf("%v: Verifier: %v", cfg, err)
		}
	}
}

// TestFormattingNeverShowsASecret formats configs, schemes and structs that
// hold them with every verb a log line might use.
func TestFormattingNeverShowsASecret(t *testing.T) {
	secret := "zuri-secret-value"
	cfg := Config{Name: "chatzuri", Secrets: []string{secret}}
	zuri, _ := cfg.Scheme()
	std, _ := NewStandard(testSecret, testSigningKey)
	stdKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	type holder struct {
		Scheme  Scheme
		scheme  Scheme
		Config  Config
		pointer *Standard
	}
	values := []any{cfg, &cfg, zuri, std, std.keys, *std.keys,
		holder{zuri, std, cfg, std}, &holder{std, zuri, cfg, std}}
	forbidden := []string{secret, testSecret, strings.TrimPrefix(testSecret, "whsec_"), testSigningKey}
	for _, key := range [][]byte{[]byte(secret), stdKey, testSeed} {
		forbidden = append(forbidden, fmt.Sprintf("%v", key), fmt.Sprintf("%x", key), fmt.Sprintf("%X", key), fmt.Sprintf("%q", key), fmt.Sprintf("%#v", key), string(key))
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			out := fmt.Sprintf(verb, v)
			for _, f := range forbidden {
				if strings.Contains(out, f) {
					t.Errorf("%s of %T shows a secret: %s", verb, v, out)
				}
			}
		}
	}
	if out := fmt.Sprintf("%+v", cfg); !strings.Contains(out, "Secrets:[[redacted]]") {
		t.Errorf("%%+v of a Config = %s, want its secrets shown as [redacted]", out)
	}
}
