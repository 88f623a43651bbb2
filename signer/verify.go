package signer

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// DefaultTolerance is how far a signed timestamp may be from the verifier's
// clock, either way, unless configured otherwise: the Standard Webhooks
// recommendation.
const DefaultTolerance = 5 * time.Minute

// Verification errors, wrapped with details that never include a secret or
// an expected signature; test with errors.Is.
var (
	// ErrMissingHeader: a header the scheme requires is absent or empty.
	ErrMissingHeader = errors.New("signer: missing header")
	// ErrMalformedHeader: a header cannot be parsed (bad timestamp,
	// encoding or prefix).
	ErrMalformedHeader = errors.New("signer: malformed header")
	// ErrTimestampOutOfRange: the signed timestamp is further from now than
	// the tolerance, so the request may be a replay.
	ErrTimestampOutOfRange = errors.New("signer: timestamp outside the tolerance")
	// ErrSignatureMismatch: no signature matches any configured key.
	ErrSignatureMismatch = errors.New("signer: no signature matches")
)

// requireHeader returns the value of the named header.
func requireHeader(h http.Header, name string) (string, error) {
	v := h.Get(name)
	if v == "" {
		return "", fmt.Errorf("%w %s", ErrMissingHeader, name)
	}
	return v, nil
}

// checkTimestamp returns an error unless v, the named header's value, is a
// unix time within tolerance of now.
func checkTimestamp(name, v string, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return fmt.Errorf("%w %s: not a unix time in seconds", ErrMalformedHeader, name)
	}
	// Times, not durations, are compared: a duration from an absurd
	// timestamp saturates, and negating the minimum one overflows.
	t, now := time.Unix(sec, 0), time.Now()
	switch {
	case t.Before(now.Add(-tolerance)):
		return fmt.Errorf("%w: %s is %v old, more than %v", ErrTimestampOutOfRange, name, now.Sub(t).Round(time.Second), tolerance)
	case t.After(now.Add(tolerance)):
		return fmt.Errorf("%w: %s is %v in the future, more than %v", ErrTimestampOutOfRange, name, t.Sub(now).Round(time.Second), tolerance)
	}
	return nil
}

// toleranceOrDefault validates a configured tolerance; zero means the default.
func toleranceOrDefault(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, errors.New(`signer: tolerance is negative; write a positive duration such as "5m"`)
	case d == 0:
		return DefaultTolerance, nil
	}
	return d, nil
}
