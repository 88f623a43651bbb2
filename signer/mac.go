package signer

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
)

// hashes are the HMAC algorithms offered, by their configuration name.
var hashes = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// encoding writes and reads a MAC in a header value.
type encoding struct {
	encode func([]byte) string
	decode func(string) ([]byte, error)
}

// encodings are the signature encodings offered, by configuration name.
var encodings = map[string]encoding{
	"hex":    {hex.EncodeToString, hex.DecodeString},
	"base64": {base64.StdEncoding.EncodeToString, base64.StdEncoding.DecodeString},
}

// sum returns the HMAC of the concatenated parts, written one by one so
// that content such as "<ts>.<body>" never costs a copy of the body.
func sum(newHash func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(newHash, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}
