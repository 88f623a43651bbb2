package signer

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Config selects and configures a scheme; it is what the JSON configuration
// holds for one receiver, e.g.
//
//	{"scheme": "standard", "secrets": ["whsec_..."]}
//	{"scheme": "chatzuri", "secrets": ["..."]}
//	{"scheme": "hmac", "secrets": ["..."], "algorithm": "sha256", "encoding": "hex",
//	 "header": "X-Hub-Signature-256", "prefix": "sha256="}
//
// JSON encoding keeps the secrets, so that a configuration can be saved and
// loaded back: write them as placeholders such as {env.WHSEC}. Formatting a
// Config with fmt redacts them.
type Config struct {
	// Name is the scheme: standard (the default), chatzuri, chatwoot or hmac.
	Name string `json:"scheme,omitempty"`

	// Secrets are the keys. standard: "whsec_<base64>" HMAC secrets and
	// "whsk_<base64>" ed25519 signing keys, all of which sign, plus, for
	// verification only, "whpk_<base64>" public keys. Other schemes: the
	// shared secret, whose bytes are the HMAC key; they sign with exactly
	// one, but a Verifier accepts several, for rotation.
	Secrets []string `json:"secrets,omitempty"`

	// HMACOptions configure scheme hmac; the other schemes fix their own.
	HMACOptions

	// Tolerance is how far a signed timestamp may be from the verifier's
	// clock; 0 means DefaultTolerance. Only for schemes with a signed
	// timestamp (standard, chatwoot, hmac with signed_timestamp). It is set
	// in Go by receivers that verify: a sender has no use for it, so it is
	// not part of the JSON configuration.
	Tolerance Duration `json:"-"`
}

// Scheme validates the configuration and returns the scheme that signs
// with it.
func (c Config) Scheme() (Scheme, error) {
	return c.build(false)
}

// Verifier validates the configuration and returns a verifier of requests
// signed with it. Unlike Scheme, it accepts several secrets for every scheme
// and whpk_ public keys for standard.
func (c Config) Verifier() (Verifier, error) {
	return c.build(true)
}

// signVerifier is what every scheme implements.
type signVerifier interface {
	Scheme
	Verifier
}

var (
	_ signVerifier = (*Standard)(nil)
	_ signVerifier = (*HMAC)(nil)
)

func (c Config) build(verifyOnly bool) (signVerifier, error) {
	name := cmp.Or(c.Name, "standard")
	var (
		s   signVerifier
		err error
	)
	tolerance := time.Duration(c.Tolerance)
	switch name {
	case "standard":
		s, err = newStandard(c.Secrets, verifyOnly, tolerance)
	case "chatzuri":
		s, err = newChatzuri(c.Secrets, tolerance)
	case "chatwoot":
		s, err = newChatwoot(c.Secrets, tolerance)
	case "hmac":
		s, err = newHMAC(name, c.HMACOptions, c.Secrets, tolerance, nil)
	default:
		// The value is not quoted: a secret in the wrong place must not
		// end up in a log.
		return nil, errors.New("signer: unknown scheme; write standard, chatzuri, chatwoot or hmac")
	}
	switch {
	case err != nil:
		return nil, err
	case name != "hmac" && c.HMACOptions != (HMACOptions{}):
		return nil, fmt.Errorf("signer: %s: algorithm, encoding, header, prefix, timestamp_header, signed_timestamp and id_header are for scheme hmac only; remove them", name)
	case !verifyOnly && name != "standard" && len(c.Secrets) > 1:
		return nil, fmt.Errorf("signer: %s: %d secrets, but a %s signature is made with one; sign with the new secret alone (only standard sends a signature per secret)", name, len(c.Secrets), name)
	}
	return s, nil
}

// Format prints c with each secret replaced by "[redacted]", whatever the
// verb, so that logging a Config shows no secret.
func (c Config) Format(f fmt.State, verb rune) {
	type redactedConfig Config // without this method, so no recursion
	r := c
	r.Secrets = make([]string, len(c.Secrets))
	for i := range r.Secrets {
		r.Secrets[i] = "[redacted]"
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), redactedConfig(r))
}

// Duration is a time.Duration that JSON gives as Caddy's durations are
// given: a string such as "5m" or "90s", or an integer of nanoseconds.
type Duration time.Duration

// UnmarshalJSON reads a duration string or an integer of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var ns int64
	if json.Unmarshal(b, &ns) == nil {
		*d = Duration(ns)
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		if v, err := time.ParseDuration(s); err == nil {
			*d = Duration(v)
			return nil
		}
	}
	return errors.New(`signer: not a duration; write a string such as "5m" or "90s", or integer nanoseconds`)
}
