package signer

import "time"

// NewChatwoot returns Chatwoot's scheme (4.11 and later), so that receivers
// written for Chatwoot accept our deliveries: X-Chatwoot-Signature is
// "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the
// secret's bytes, X-Chatwoot-Timestamp the attempt's unix time and
// X-Chatwoot-Delivery the message id. It verifies with DefaultTolerance.
func NewChatwoot(secret string) (*HMAC, error) {
	return newChatwoot([]string{secret}, 0)
}

func newChatwoot(secrets []string, tolerance time.Duration) (*HMAC, error) {
	opts := HMACOptions{
		Algorithm:       "sha256",
		Encoding:        "hex",
		Header:          "X-Chatwoot-Signature",
		Prefix:          "sha256=",
		TimestampHeader: "X-Chatwoot-Timestamp",
		SignedTimestamp: true,
		IDHeader:        "X-Chatwoot-Delivery",
	}
	return newHMAC("chatwoot", opts, secrets, tolerance, nil)
}
