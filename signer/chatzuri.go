package signer

import "time"

// NewChatzuri returns Chatzuri's scheme: header x-chatzuri-signature, the
// hex HMAC-SHA1 of the body keyed with the secret's bytes, no timestamp.
//
// Chatzuri's documented receiver does not check the bytes it received: it
// lets express.json parse them and signs JSON.stringify of the result. So
// Prepare re-serialises the body with JSStringify, and the scheme sends and
// signs exactly the bytes that receiver will compute. Verify, likewise,
// checks the re-serialised body.
func NewChatzuri(secret string) (*HMAC, error) {
	return newChatzuri([]string{secret}, 0)
}

func newChatzuri(secrets []string, tolerance time.Duration) (*HMAC, error) {
	opts := HMACOptions{Algorithm: "sha1", Encoding: "hex", Header: "X-Chatzuri-Signature"}
	return newHMAC("chatzuri", opts, secrets, tolerance, JSStringify)
}
