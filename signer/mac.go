package signer

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"sync"
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

// macKey is one HMAC key. Its keyed hashes are pooled: hmac.New costs
// several allocations per call, and Reset restores a keyed hash to its
// initial state, so each attempt's signature reuses one.
type macKey struct {
	pool sync.Pool
}

func newMacKey(newHash func() hash.Hash, key []byte) *macKey {
	k := &macKey{}
	k.pool.New = func() any { return hmac.New(newHash, key) }
	return k
}

// sum appends to dst the HMAC of the concatenated parts, written one by one
// so that content such as "<ts>.<body>" never costs a copy of the body.
func (k *macKey) sum(dst []byte, parts ...[]byte) []byte {
	m := k.pool.Get().(hash.Hash)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	dst = m.Sum(dst)
	k.pool.Put(m)
	return dst
}
