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
	// The ranges allowed for the second byte after each lead byte exclude
	// overlong forms, surrogates and code points above U+10FFFF.
	need, lo, hi := 0, byte(0x80), byte(0xBF)
	switch c := b[0]; {
	case 0xC2 <= c && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case 0xE1 <= c && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case 0xF1 <= c && c <= 0xF3:
		need = 3
	}
	n := 1
	for n <= need && n < len(b) && lo <= b[n] && b[n] <= hi {
		n++
		lo, hi = 0x80, 0xBF
	}
	return utf8.RuneError, n
}
