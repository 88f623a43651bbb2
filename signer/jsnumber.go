package signer

import (
	"bytes"
	"strconv"
)

// appendJSNumber appends f as JavaScript's Number::toString(10) writes it,
// which is what JSON.stringify emits for a finite number. f must be finite.
func appendJSNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // -0 too: String(-0) is "0"
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	// ECMAScript wants the shortest digit string that round-trips, as
	// strconv's -1 precision gives; 'e' yields "d.ddde±x", which holds the
	// digits and the exponent apart.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	at := bytes.IndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[at+1:]))
	digits := e[:1]
	if at > 1 {
		digits = append(digits, e[2:at]...) // shifts the fraction over the '.'
	}
	// The names follow the specification: the value is digits × 10^(n−k).
	k, n := len(digits), exp+1
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digits...)
		return append(dst, bytes.Repeat([]byte{'0'}, n-k)...)
	case 0 < n && n <= 21:
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		return append(dst, digits[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, "0."...)
		dst = append(dst, bytes.Repeat([]byte{'0'}, -n)...)
		return append(dst, digits...)
	}
	dst = append(dst, digits[0])
	if k > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	if n-1 >= 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(n-1), 10)
}
