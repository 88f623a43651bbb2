package signer

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting so that hostile input cannot exhaust the
// stack; it is encoding/json's limit, so both accept the same documents.
const maxJSONDepth = 10000

// JSStringify returns what JavaScript's JSON.stringify(JSON.parse(text))
// returns, as UTF-8, for text decoded the way an Express receiver decodes
// a request body (express.json): a leading byte order mark is dropped and
// invalid UTF-8 becomes U+FFFD.
//
// Receivers that verify a signature over the re-serialised body rather than
// the raw one accept only bodies that survive this round trip unchanged:
//
//   - members keep their order, except that array-index keys ("0" to
//     "4294967294") come first in ascending numeric order;
//   - a duplicate key keeps its first position and takes its last value;
//   - no whitespace;
//   - strings escape only '"', '\\' and control characters (\b \f \n \r \t,
//     others as \u00xx) and lone surrogates (\udxxx); everything else,
//     including '<', '&', U+2028 and non-ASCII, is written as UTF-8;
//   - numbers are float64, written as Number::toString writes them:
//     1.50 → 1.5, 1E5 → 100000, 1e21 → 1e+21, 0.0000001 → 1e-7, -0 → 0,
//     integers beyond 2^53 rounded, overflow → null.
//
// Like JSON.parse, it accepts a scalar at the top level. It returns an error
// for text that JSON.parse rejects, and for nesting deeper than 10000.
func JSStringify(text []byte) ([]byte, error) {
	// Scalars' output is about as long as their input: out seldom grows.
	p := parser{in: bytes.TrimPrefix(text, []byte("\uFEFF")), out: make([]byte, 0, len(text))}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(p.in) {
		return nil, p.errorf("unexpected data after the JSON value")
	}
	return v.appendTo(make([]byte, 0, len(text))), nil
}

type nodeKind uint8

const (
	scalarNode nodeKind = iota
	arrayNode
	objectNode
)

// node is a parsed JSON value whose scalars are already in their output
// form, so that writing is concatenation.
type node struct {
	kind     nodeKind
	text     []byte   // scalar: literal, number or quoted string
	children []node   // array elements, or object values
	keys     [][]byte // object keys as quoted strings, parallel to children
}

func (n *node) appendTo(dst []byte) []byte {
	switch n.kind {
	case arrayNode:
		dst = append(dst, '[')
		for i := range n.children {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = n.children[i].appendTo(dst)
		}
		return append(dst, ']')
	case objectNode:
		dst = append(dst, '{')
		for i := range n.children {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, n.keys[i]...)
			dst = append(dst, ':')
			dst = n.children[i].appendTo(dst)
		}
		return append(dst, '}')
	}
	return append(dst, n.text...)
}

// parser follows the grammar of ECMAScript's JSON.parse (RFC 8259's).
type parser struct {
	in    []byte
	pos   int
	depth int
	// out holds the output form of every scalar; nodes keep capped
	// sub-slices of it, which later appends cannot overwrite.
	out []byte
}

var errJSON = errors.New("signer: invalid JSON")

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errJSON, p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (node, error) {
	p.skipSpace()
	if p.pos >= len(p.in) {
		return node{}, p.errorf("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{' || c == '[':
		if p.depth++; p.depth > maxJSONDepth {
			return node{}, p.errorf("nested deeper than %d levels", maxJSONDepth)
		}
		defer func() { p.depth-- }()
		if c == '{' {
			return p.object()
		}
		return p.array()
	case c == '"':
		s, err := p.string()
		return node{text: s}, err
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(p.in[p.pos:], []byte(lit)) {
			p.pos += len(lit)
			return node{text: []byte(lit)}, nil
		}
	}
	return node{}, p.errorf("unexpected character %q", p.in[p.pos])
}

func (p *parser) array() (node, error) {
	n := node{kind: arrayNode}
	p.pos++ // [
	if p.skipSpace(); p.peek(']') {
		p.pos++
		return n, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return node{}, err
		}
		n.children = append(n.children, v)
		if done, err := p.next(']'); done || err != nil {
			return n, err
		}
	}
}

func (p *parser) object() (node, error) {
	n := node{kind: objectNode}
	p.pos++ // {
	if p.skipSpace(); p.peek('}') {
		p.pos++
		return n, nil
	}
	// Equal quoted forms mean equal JavaScript strings: the quoting is
	// deterministic and reversible. Small objects search their keys; a
	// map indexes large ones.
	var seen map[string]int
	for {
		if p.skipSpace(); !p.peek('"') {
			return node{}, p.errorf("expected a string key")
		}
		k, err := p.string()
		if err != nil {
			return node{}, err
		}
		if p.skipSpace(); !p.peek(':') {
			return node{}, p.errorf("expected ':' after an object key")
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return node{}, err
		}
		if i, dup := n.keyIndex(k, &seen); dup {
			n.children[i] = v
		} else {
			n.keys = append(n.keys, k)
			n.children = append(n.children, v)
		}
		if done, err := p.next('}'); done || err != nil {
			n.sortIndexKeys()
			return n, err
		}
	}
}

// smallObject is the number of keys up to which an object finds a
// duplicate key by comparing, not through a map.
const smallObject = 16

// keyIndex returns the position of key k among n's keys; for a new key,
// seen (built once the object is large) records where it is about to go.
func (n *node) keyIndex(k []byte, seen *map[string]int) (int, bool) {
	if *seen == nil {
		for i, have := range n.keys {
			if bytes.Equal(have, k) {
				return i, true
			}
		}
		if len(n.keys) < smallObject {
			return 0, false
		}
		*seen = make(map[string]int, 2*len(n.keys))
		for i, have := range n.keys {
			(*seen)[string(have)] = i
		}
	}
	i, dup := (*seen)[string(k)]
	if !dup {
		(*seen)[string(k)] = len(n.keys)
	}
	return i, dup
}

// peek reports whether the next byte is c.
func (p *parser) peek(c byte) bool {
	return p.pos < len(p.in) && p.in[p.pos] == c
}

// next consumes the ',' between members, or the closing byte, reporting
// whether it was the closing one.
func (p *parser) next(closing byte) (bool, error) {
	p.skipSpace()
	switch {
	case p.peek(','):
		p.pos++
		return false, nil
	case p.peek(closing):
		p.pos++
		return true, nil
	}
	return false, p.errorf("expected ',' or %q", closing)
}

// sortIndexKeys moves array-index keys to the front in ascending numeric
// order, as ECMAScript's OrdinaryOwnPropertyKeys lists them; the other keys
// keep their insertion order.
func (n *node) sortIndexKeys() {
	type indexed struct {
		index uint32
		pos   int
	}
	var first []indexed
	for i, k := range n.keys {
		if index, ok := arrayIndex(k); ok {
			first = append(first, indexed{index, i})
		}
	}
	if len(first) == 0 {
		return
	}
	slices.SortFunc(first, func(a, b indexed) int { return cmp.Compare(a.index, b.index) })
	keys := make([][]byte, 0, len(n.keys))
	children := make([]node, 0, len(n.children))
	for _, f := range first {
		keys = append(keys, n.keys[f.pos])
		children = append(children, n.children[f.pos])
	}
	for i, k := range n.keys {
		if _, ok := arrayIndex(k); !ok {
			keys = append(keys, k)
			children = append(children, n.children[i])
		}
	}
	n.keys, n.children = keys, children
}

// arrayIndex reports whether the quoted key is an array index: the
// canonical decimal form of an integer from 0 to 2^32−2.
func arrayIndex(quoted []byte) (uint32, bool) {
	s := quoted[1 : len(quoted)-1]
	if len(s) == 0 || len(s) > 10 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, _ := strconv.ParseUint(string(s), 10, 64)
	return uint32(v), v <= math.MaxUint32-1
}

func (p *parser) number() (node, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.in) && '0' <= p.in[p.pos] && p.in[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.peek('-') {
		p.pos++
	}
	if p.peek('0') {
		p.pos++
	} else if digits() == 0 {
		return node{}, p.errorf("expected a digit")
	}
	if p.peek('.') {
		if p.pos++; digits() == 0 {
			return node{}, p.errorf("expected a digit after '.'")
		}
	}
	if p.peek('e') || p.peek('E') {
		if p.pos++; p.peek('+') || p.peek('-') {
			p.pos++
		}
		if digits() == 0 {
			return node{}, p.errorf("expected a digit in the exponent")
		}
	}
	// The grammar above is a subset of ParseFloat's, which rounds correctly
	// as JavaScript does; its only error left is overflow to ±Inf, which
	// JSON.stringify writes as null.
	f, err := strconv.ParseFloat(string(p.in[start:p.pos]), 64)
	if err != nil {
		return node{text: []byte("null")}, nil
	}
	at := len(p.out)
	p.out = appendJSNumber(p.out, f)
	return node{text: p.out[at:len(p.out):len(p.out)]}, nil
}

// string parses a JSON string and returns it quoted as JSON.stringify
// quotes it.
func (p *parser) string() ([]byte, error) {
	p.pos++ // "
	at := len(p.out)
	p.out = append(p.out, '"')
	// JavaScript strings are UTF-16: a \u escape of a high surrogate pairs
	// with an immediately following low-surrogate escape, and a surrogate
	// left unpaired is written back as an escape.
	var high rune
	flushHigh := func() {
		if high != 0 {
			p.out = appendUnicodeEscape(p.out, high)
			high = 0
		}
	}
	for {
		if p.pos >= len(p.in) {
			return nil, p.errorf("unterminated string")
		}
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			flushHigh()
			p.out = append(p.out, '"')
			return p.out[at:len(p.out):len(p.out)], nil
		case c == '\\':
			u, err := p.escape()
			if err != nil {
				return nil, err
			}
			switch {
			case utf16.IsSurrogate(u) && u < 0xDC00:
				flushHigh()
				high = u
			case utf16.IsSurrogate(u) && high != 0:
				p.out = utf8.AppendRune(p.out, utf16.DecodeRune(high, u))
				high = 0
			case utf16.IsSurrogate(u):
				p.out = appendUnicodeEscape(p.out, u)
			default:
				flushHigh()
				p.out = appendQuotedRune(p.out, u)
			}
		case c < 0x20:
			return nil, p.errorf("control character in string")
		default:
			r, size := rune(c), 1
			if c >= utf8.RuneSelf {
				r, size = decodeRune(p.in[p.pos:])
			}
			p.pos += size
			flushHigh()
			p.out = appendQuotedRune(p.out, r)
		}
	}
}

// escape parses the escape sequence at p.pos and returns its UTF-16 unit.
func (p *parser) escape() (rune, error) {
	if p.pos+1 >= len(p.in) {
		return 0, p.errorf("unterminated string")
	}
	c := p.in[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		if p.pos+4 > len(p.in) {
			return 0, p.errorf("short \\u escape")
		}
		var u rune
		for _, h := range p.in[p.pos : p.pos+4] {
			d := hexDigit(h)
			if d < 0 {
				return 0, p.errorf("bad hex digit in \\u escape")
			}
			u = u<<4 | d
		}
		p.pos += 4
		return u, nil
	}
	p.pos -= 2
	return 0, p.errorf("invalid escape \\%c", c)
}

func hexDigit(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// appendQuotedRune appends r, which is not a surrogate, as JSON.stringify
// writes it inside a string.
func appendQuotedRune(dst []byte, r rune) []byte {
	switch r {
	case '"', '\\':
		return append(dst, '\\', byte(r))
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if r < 0x20 {
		return appendUnicodeEscape(dst, r)
	}
	return utf8.AppendRune(dst, r)
}

// appendUnicodeEscape appends \uxxxx with lowercase hex, as JSON.stringify
// does.
func appendUnicodeEscape(dst []byte, u rune) []byte {
	const hex = "0123456789abcdef"
	return append(dst, '\\', 'u', hex[u>>12&0xF], hex[u>>8&0xF], hex[u>>4&0xF], hex[u&0xF])
}
