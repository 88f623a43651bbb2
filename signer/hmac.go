package signer

import (
	"crypto/hmac"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HMACOptions describe a signature header holding an HMAC of the body, the
// form most webhook senders use. The zero value of each field but Header
// is a default.
type HMACOptions struct {
	// Algorithm is sha1, sha256 (default) or sha512.
	Algorithm string `json:"algorithm,omitempty"`
	// Encoding of the MAC: hex (default, lowercase) or base64 (standard).
	Encoding string `json:"encoding,omitempty"`
	// Header carries the signature, e.g. X-Hub-Signature-256. Required.
	Header string `json:"header,omitempty"`
	// Prefix precedes the encoded MAC in the header value, e.g. "sha256=".
	Prefix string `json:"prefix,omitempty"`
	// TimestampHeader, if set, carries the attempt's unix time in seconds.
	TimestampHeader string `json:"timestamp_header,omitempty"`
	// SignedTimestamp signs "<timestamp>.<body>" instead of the body, so
	// that receivers can reject replays. It needs TimestampHeader.
	SignedTimestamp bool `json:"signed_timestamp,omitempty"`
	// IDHeader, if set, carries the message id, stable across retries.
	IDHeader string `json:"id_header,omitempty"`
}

// HMAC signs with an HMAC of the body (or of "<timestamp>.<body>") in one
// header, as described by HMACOptions. It signs with its first secret and
// verifies with any of them, so that a receiver can rotate.
type HMAC struct {
	name      string // the scheme's name in messages
	opts      HMACOptions
	newHash   func() hash.Hash
	enc       *encoding
	keys      *keyring
	tolerance time.Duration
	prepare   func([]byte) ([]byte, error) // nil: the body is sent as is
}

// NewHMAC returns a generic HMAC scheme signing with secret, whose bytes
// are the key. It verifies with the same secret and, when the timestamp is
// signed, DefaultTolerance. For GitHub's X-Hub-Signature-256:
//
//	signer.NewHMAC(signer.HMACOptions{Header: "X-Hub-Signature-256", Prefix: "sha256="}, secret)
func NewHMAC(opts HMACOptions, secret string) (*HMAC, error) {
	return newHMAC("hmac", opts, []string{secret}, 0, nil)
}

// newHMAC builds any HMAC-based scheme; tolerance 0 means the default.
func newHMAC(name string, opts HMACOptions, secrets []string, tolerance time.Duration, prepare func([]byte) ([]byte, error)) (*HMAC, error) {
	if opts.Algorithm == "" {
		opts.Algorithm = "sha256"
	}
	if opts.Encoding == "" {
		opts.Encoding = "hex"
	}
	m := &HMAC{name: name, opts: opts, newHash: hashes[opts.Algorithm], enc: encodings[opts.Encoding], prepare: prepare}
	if err := m.check(tolerance); err != nil {
		return nil, fmt.Errorf("signer: %s: %w", name, err)
	}
	if err := checkSecretsPresent(name, secrets, "the receiver's shared secret"); err != nil {
		return nil, err
	}
	m.keys = &keyring{}
	for _, s := range secrets {
		m.keys.hmac = append(m.keys.hmac, newMacKey(m.newHash, []byte(s)))
	}
	var err error
	if opts.SignedTimestamp {
		m.tolerance, err = toleranceOrDefault(tolerance)
	}
	return m, err
}

// check validates the options, and that a tolerance is set only where a
// signed timestamp gives it meaning. It never quotes a configured value: a
// secret put in the wrong place must not end up in a log.
func (m *HMAC) check(tolerance time.Duration) error {
	o := m.opts
	switch {
	case m.newHash == nil:
		return errors.New("unknown algorithm; write sha1, sha256 or sha512")
	case m.enc == nil:
		return errors.New("unknown encoding; write hex or base64")
	case o.Header == "":
		return errors.New("no signature header; name one, such as X-Signature")
	case !isToken(o.Header) || o.TimestampHeader != "" && !isToken(o.TimestampHeader) || o.IDHeader != "" && !isToken(o.IDHeader):
		return errors.New("a header name is not a valid HTTP field name; use letters, digits and '-'")
	case strings.ContainsFunc(o.Prefix, func(r rune) bool { return r < 0x20 || r == 0x7F }):
		return errors.New("the prefix contains a control character")
	case o.SignedTimestamp && o.TimestampHeader == "":
		return errors.New("signed_timestamp needs timestamp_header, such as X-Timestamp")
	case !o.SignedTimestamp && tolerance != 0:
		return errors.New("tolerance applies only to a signed timestamp; remove it, or sign the timestamp")
	}
	names := map[string]bool{}
	for _, n := range []string{o.Header, o.TimestampHeader, o.IDHeader} {
		if n != "" && names[http.CanonicalHeaderKey(n)] {
			return errors.New("header, timestamp_header and id_header must differ")
		}
		names[http.CanonicalHeaderKey(n)] = true
	}
	return nil
}

// isToken reports whether s is an HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// Prepare returns the body to send and sign: unchanged, except for schemes
// whose receivers re-serialise it (see NewChatzuri).
func (m *HMAC) Prepare(body []byte) ([]byte, error) {
	if m.prepare == nil {
		return body, nil
	}
	return m.prepare(body)
}

// Sign sets the signature header, and the timestamp and id headers when
// configured, signing with the first secret.
func (m *HMAC) Sign(h http.Header, id string, ts time.Time, body []byte) error {
	if m.opts.IDHeader != "" && id == "" {
		return fmt.Errorf("signer: %s: the message id is empty; %s must identify the message", m.name, m.opts.IDHeader)
	}
	var t string
	if m.opts.TimestampHeader != "" {
		t = strconv.FormatInt(ts.Unix(), 10)
		h.Set(m.opts.TimestampHeader, t)
	}
	if m.opts.IDHeader != "" {
		h.Set(m.opts.IDHeader, id)
	}
	var mac [sha512.Size]byte
	var text [16 + 2*sha512.Size]byte // a short prefix and a hex SHA-512 fit
	value := m.enc.appendEncoded(append(text[:0], m.opts.Prefix...), m.mac(mac[:0], m.keys.hmac[0], t, body))
	h.Set(m.opts.Header, string(value))
	return nil
}

// Verify accepts the request when the signature header matches any secret
// and, if the timestamp is signed, the timestamp is within the tolerance.
// A re-serialising scheme checks the re-serialised body, as its receivers do.
func (m *HMAC) Verify(body []byte, h http.Header) error {
	v, err := requireHeader(h, m.opts.Header)
	if err != nil {
		return err
	}
	encoded, ok := strings.CutPrefix(v, m.opts.Prefix)
	if !ok {
		return fmt.Errorf("%w %s: the value does not start with the expected prefix", ErrMalformedHeader, m.opts.Header)
	}
	got, err := m.enc.decode(encoded)
	if err != nil {
		return fmt.Errorf("%w %s: not %s", ErrMalformedHeader, m.opts.Header, m.opts.Encoding)
	}
	var t string
	if m.opts.SignedTimestamp {
		if t, err = requireHeader(h, m.opts.TimestampHeader); err != nil {
			return err
		}
		if err := checkTimestamp(m.opts.TimestampHeader, t, m.tolerance); err != nil {
			return err
		}
	}
	if body, err = m.Prepare(body); err != nil {
		return err
	}
	var mac [sha512.Size]byte
	for _, k := range m.keys.hmac {
		if hmac.Equal(got, m.mac(mac[:0], k, t, body)) {
			return nil
		}
	}
	return fmt.Errorf("%w %s", ErrSignatureMismatch, m.opts.Header)
}

// mac appends to dst the HMAC of the body, or of "<t>.<body>" when the
// timestamp is signed.
func (m *HMAC) mac(dst []byte, key *macKey, t string, body []byte) []byte {
	if m.opts.SignedTimestamp {
		return key.sum(dst, body, []byte(t), dot)
	}
	return key.sum(dst, body)
}

// dot separates the parts of signed content.
var dot = []byte{'.'}

// String describes the scheme without its secrets.
func (m *HMAC) String() string {
	return fmt.Sprintf("%s (%s %s in %s, %d secrets)", m.name, m.opts.Algorithm, m.opts.Encoding, m.opts.Header, len(m.keys.hmac))
}
