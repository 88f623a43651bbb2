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
	hex    bool // else base64
	decode func(string) ([]byte, error)
}

// encodings are the signature encodings offered, by configuration name.
var encodings = map[string]*encoding{
	"hex":    {true, hex.DecodeString},
	"base64": {false, base64.StdEncoding.DecodeString},
}

// appendEncoded appends the encoded MAC. Calls are static, not through a
// func value, so that the MAC can stay on the caller's stack.
func (e *encoding) appendEncoded(dst, mac []byte) []byte {
	if e.hex {
		return hex.AppendEncode(dst, mac)
	}
	return base64.StdEncoding.AppendEncode(dst, mac)
}

// macKey is one HMAC key. Its keyed hashes are pooled: hmac.New costs
// several allocations per call, and Reset restores a keyed hash to its
// initial state, so each attempt's signature reuses one.
type macKey struct {
	pool sync.Pool
}

// keyedHash is a pooled keyed hash with a buffer of its own for what
// passes through the hash.Hash interface, which would make it escape.
type keyedHash struct {
	hash.Hash
	buf []byte
}

func newMacKey(newHash func() hash.Hash, key []byte) *macKey {
	k := &macKey{}
	k.pool.New = func() any { return &keyedHash{Hash: hmac.New(newHash, key)} }
	return k
}

// sum appends to dst the HMAC of the head parts and the body, one after
// the other. The head (an id, a timestamp, dots) is copied into the pooled
// buffer and the sum made there, so that callers' small buffers and
// conversions stay on their stack; the body is written as it is.
func (k *macKey) sum(dst, body []byte, head ...[]byte) []byte {
	m := k.pool.Get().(*keyedHash)
	m.Reset()
	m.buf = m.buf[:0]
	for _, p := range head {
		m.buf = append(m.buf, p...)
	}
	m.Write(m.buf)
	m.Write(body)
	m.buf = m.Sum(m.buf[:0])
	dst = append(dst, m.buf...)
	k.pool.Put(m)
	return dst
}
