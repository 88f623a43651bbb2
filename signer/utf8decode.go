package signer

import "unicode/utf8"

// decodeRune decodes the first character of b, which must not be empty, as
// the WHATWG UTF-8 decoder does (V8's, so Node's Buffer and string_decoder):
// an invalid sequence becomes one U+FFFD per maximal subpart — the lead byte
// and the continuation bytes it could still have been completed with — where
// Go's decoder gives one U+FFFD per byte. Valid input decodes identically.
func decodeRune(b []byte) (rune, int) {
	r, size := utf8.DecodeRune(b)
	if r != utf8.RuneError || size > 1 {
		return r, size
	}
	// The maximal subpart is the longest prefix that a valid sequence could
	// still begin with: the one FullRune calls incomplete. Its table of
	// allowed second bytes excludes overlong forms, surrogates and code
	// points above U+10FFFF, as WHATWG's does.
	n := 1
	for n < len(b) && !utf8.FullRune(b[:n+1]) {
		n++
	}
	return utf8.RuneError, n
}
