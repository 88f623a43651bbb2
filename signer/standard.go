package signer

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers and key prefixes.
const (
	standardIDHeader        = "webhook-id"
	standardTimestampHeader = "webhook-timestamp"
	standardSignatureHeader = "webhook-signature"

	hmacSecretPrefix = "whsec_"
	signingKeyPrefix = "whsk_"
	publicKeyPrefix  = "whpk_"
)

// The header names as http.Header keys them.
var (
	canonicalIDHeader        = textproto.CanonicalMIMEHeaderKey(standardIDHeader)
	canonicalTimestampHeader = textproto.CanonicalMIMEHeaderKey(standardTimestampHeader)
	canonicalSignatureHeader = textproto.CanonicalMIMEHeaderKey(standardSignatureHeader)
)

// Standard is the Standard Webhooks v1 scheme (https://www.standardwebhooks.com):
// headers webhook-id, webhook-timestamp (unix seconds) and webhook-signature,
// which carries one space-separated signature of "<id>.<timestamp>.<body>"
// per key — "v1,<base64 HMAC-SHA256>" or "v1a,<base64 ed25519>" — so that
// receivers keep working while keys rotate. It sends the body unchanged.
type Standard struct {
	keys      *keyring
	tolerance time.Duration
}

// NewStandard returns the Standard Webhooks scheme signing with every one
// of secrets: "whsec_<base64>" (or the bare base64) for an HMAC-SHA256 key,
// "whsk_<base64>" for an ed25519 private key (its 32-byte seed or 64-byte
// Go form). It verifies with the same keys and DefaultTolerance.
func NewStandard(secrets ...string) (*Standard, error) {
	return newStandard(secrets, false, 0)
}

// newStandard also accepts "whpk_<base64>" ed25519 public keys, which only
// verify, when verifyOnly is set; tolerance 0 means DefaultTolerance.
func newStandard(secrets []string, verifyOnly bool, tolerance time.Duration) (*Standard, error) {
	tolerance, err := toleranceOrDefault(tolerance)
	if err != nil {
		return nil, err
	}
	if err := checkSecretsPresent("standard", secrets, "whsec_<base64>"); err != nil {
		return nil, err
	}
	keys := &keyring{}
	for i, s := range secrets {
		if err := keys.addStandard(s, verifyOnly); err != nil {
			return nil, fmt.Errorf("signer: standard: secret %d of %d %w", i+1, len(secrets), err)
		}
	}
	return &Standard{keys: keys, tolerance: tolerance}, nil
}

// addStandard decodes one Standard Webhooks key. Its errors complete the
// sentence "secret N of M ..." and never quote the key.
func (k *keyring) addStandard(secret string, verifyOnly bool) error {
	prefix := hmacSecretPrefix
	for _, p := range []string{signingKeyPrefix, publicKeyPrefix} {
		if strings.HasPrefix(secret, p) {
			prefix = p
		}
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, prefix))
	if err != nil {
		hint := ""
		if prefix == hmacSecretPrefix {
			hint = "; generate one with: echo whsec_$(openssl rand -base64 32)"
		}
		return fmt.Errorf("is not standard base64 after the %s prefix (%v)%s", prefix, err, hint)
	}
	switch prefix {
	case hmacSecretPrefix:
		if len(b) == 0 {
			return errors.New("is empty after its whsec_ prefix; write whsec_ followed by base64 of 24 to 64 random bytes")
		}
		k.hmac = append(k.hmac, newMacKey(sha256.New, b))
	case signingKeyPrefix:
		var priv ed25519.PrivateKey
		switch len(b) {
		case ed25519.SeedSize:
			priv = ed25519.NewKeyFromSeed(b)
		case ed25519.PrivateKeySize:
			priv = ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
			if !hmac.Equal(priv, b) {
				return errors.New("is not a valid ed25519 private key: its public half does not match its seed")
			}
		default:
			return fmt.Errorf("decodes to %d bytes; a whsk_ key is the base64 of a 32-byte ed25519 seed or a 64-byte private key", len(b))
		}
		k.signing = append(k.signing, priv)
		k.public = append(k.public, priv.Public().(ed25519.PublicKey))
	case publicKeyPrefix:
		if !verifyOnly {
			return errors.New("is a whpk_ public key, which can only verify; to sign, write the whsk_ private key")
		}
		if len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("decodes to %d bytes; a whpk_ key is the base64 of a 32-byte ed25519 public key", len(b))
		}
		k.public = append(k.public, ed25519.PublicKey(b))
	}
	return nil
}

// Prepare returns body unchanged: Standard Webhooks signs the raw bytes.
func (s *Standard) Prepare(body []byte) ([]byte, error) { return body, nil }

// Sign sets webhook-id, webhook-timestamp and webhook-signature, with one
// signature per signing key.
func (s *Standard) Sign(h http.Header, id string, ts time.Time, body []byte) error {
	if id == "" {
		return errors.New("signer: standard: the message id is empty; webhook-id must identify the message")
	}
	if len(s.keys.hmac)+len(s.keys.signing) == 0 {
		return errors.New("signer: standard: no signing key; whpk_ public keys only verify")
	}
	// One buffer, on the stack for a key or two, holds the timestamp and
	// then the signature header value, which become one string; HMACs are
	// written over the parts of the content, which is only assembled for
	// ed25519.
	var buf [160]byte
	text := strconv.AppendInt(buf[:0], ts.Unix(), 10)
	n := len(text)
	var mac [sha256.Size]byte
	for _, k := range s.keys.hmac {
		text = appendSignature(text, n, "v1,", k.sum(mac[:0], body, []byte(id), dot, text[:n], dot))
	}
	if len(s.keys.signing) > 0 {
		msg := standardContent(id, string(text[:n]), body)
		for _, k := range s.keys.signing {
			text = appendSignature(text, n, "v1a,", ed25519.Sign(k, msg))
		}
	}
	values := string(text)
	// The three values share one backing array, and the keys are already
	// canonical, which is what Header.Set would do at three times the cost.
	v := []string{id, values[:n], values[n:]}
	h[canonicalIDHeader] = v[0:1:1]
	h[canonicalTimestampHeader] = v[1:2:2]
	h[canonicalSignatureHeader] = v[2:3:3]
	return nil
}

// appendSignature appends one space-separated "<version><base64>" entry to
// the signatures that start at dst[start].
func appendSignature(dst []byte, start int, version string, sig []byte) []byte {
	if len(dst) > start {
		dst = append(dst, ' ')
	}
	dst = append(dst, version...)
	return base64.StdEncoding.AppendEncode(dst, sig)
}

// Verify accepts the request when its timestamp is within the tolerance
// and any one of its signatures matches any key.
func (s *Standard) Verify(body []byte, h http.Header) error {
	id, err := requireHeader(h, standardIDHeader)
	if err != nil {
		return err
	}
	t, err := requireHeader(h, standardTimestampHeader)
	if err != nil {
		return err
	}
	sigs, err := requireHeader(h, standardSignatureHeader)
	if err != nil {
		return err
	}
	if err := checkTimestamp(standardTimestampHeader, t, s.tolerance); err != nil {
		return err
	}
	msg := standardContent(id, t, body)
	macs := make([][]byte, len(s.keys.hmac))
	for i, k := range s.keys.hmac {
		macs[i] = k.sum(nil, msg)
	}
	known := false
	for _, sig := range strings.Fields(sigs) {
		version, value, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(got) == 0 {
			continue
		}
		switch version {
		case "v1":
			known = true
			for _, mac := range macs {
				if hmac.Equal(got, mac) {
					return nil
				}
			}
		case "v1a":
			known = true
			for _, pub := range s.keys.public {
				if ed25519.Verify(pub, msg, got) {
					return nil
				}
			}
		}
	}
	if !known {
		return fmt.Errorf("%w %s: no v1 or v1a signature", ErrMalformedHeader, standardSignatureHeader)
	}
	return fmt.Errorf("%w %s", ErrSignatureMismatch, standardSignatureHeader)
}

// String describes the scheme without its keys.
func (s *Standard) String() string {
	return fmt.Sprintf("standard (%d v1 secrets, %d v1a signing keys, %d v1a public keys)",
		len(s.keys.hmac), len(s.keys.signing), len(s.keys.public)-len(s.keys.signing))
}

// standardContent is the signed content "<id>.<timestamp>.<body>", whole
// because ed25519 signs a single message.
func standardContent(id, ts string, body []byte) []byte {
	msg := make([]byte, 0, len(id)+len(ts)+2+len(body))
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = append(msg, ts...)
	msg = append(msg, '.')
	return append(msg, body...)
}
