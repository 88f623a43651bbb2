// Package jsondoc writes JSON documents without reflection: strings escaped
// as JSON requires, and nested objects built from dotted field paths.
package jsondoc

import (
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. It escapes only what JSON requires
// (as JavaScript's JSON.stringify does) and replaces invalid UTF-8 with U+FFFD
// so that bad traffic can never produce an invalid payload.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(append(dst, s[start:]...), '"')
}

// AppendValue appends a gjson value as JSON. Strings are re-encoded only
// when their raw form is not valid UTF-8.
func AppendValue(dst []byte, r gjson.Result) []byte {
	if r.Type == gjson.String && !utf8.ValidString(r.Raw) {
		return AppendString(dst, r.Str)
	}
	if r.Raw == "" {
		return AppendString(dst, r.String())
	}
	return append(dst, r.Raw...)
}

// Entry is one field of a document under construction.
type Entry struct {
	Path string
	Raw  []byte
	// Partial says the value was read from a stream that ended early.
	Partial bool
}

// Build writes entries as one nested JSON object, grouping dotted paths
// under shared parents in first-seen order. A later entry for the same path
// replaces an earlier one. dst grows once, to what the document can need.
func Build(dst []byte, entries []Entry) []byte {
	var stack [64]bool
	done := stack[:0]
	if len(entries) <= len(stack) {
		done = stack[:len(entries)]
	} else {
		done = make([]bool, len(entries))
	}
	return appendObject(slices.Grow(dst, buildSize(entries)), entries, done, "")
}

// buildSize bounds the length of Build's document (unless keys need
// escapes): each entry's key, value, quotes, colon and comma, and for each
// dot in its path the quotes, colon, braces and comma of an enclosing
// object.
func buildSize(entries []Entry) int {
	size := 2
	for _, e := range entries {
		size += len(e.Path) + len(e.Raw) + 4 + 6*strings.Count(e.Path, ".")
	}
	return size
}

// appendObject writes the members under prefix of the entries not done
// yet, and marks them done: a leaf with the last value of its path, a
// parent with all the entries below it, each where it is first seen.
func appendObject(dst []byte, entries []Entry, done []bool, prefix string) []byte {
	dst = append(dst, '{')
	first := true
	for i := range entries {
		e := &entries[i]
		if done[i] || !strings.HasPrefix(e.Path, prefix) {
			continue
		}
		key, _, nested := strings.Cut(e.Path[len(prefix):], ".")
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(AppendString(dst, key), ':')
		if nested {
			// prefix+key+"." is where e.Path is, so no new string is made.
			dst = appendObject(dst, entries[i:], done[i:], e.Path[:len(prefix)+len(key)+1])
			continue
		}
		raw := e.Raw
		for j := i; j < len(entries); j++ {
			if entries[j].Path == e.Path {
				raw, done[j] = entries[j].Raw, true
			}
		}
		dst = append(dst, raw...)
	}
	return append(dst, '}')
}

// Find returns the entry for path.
func Find(entries []Entry, path string) (Entry, bool) {
	for _, e := range entries {
		if e.Path == path {
			return e, true
		}
	}
	return Entry{}, false
}

// HasValue reports whether r counts as known: present, not null, not "".
func HasValue(r gjson.Result) bool {
	return r.Exists() && r.Type != gjson.Null && !(r.Type == gjson.String && r.Str == "")
}

// StringView views immutable JSON as a string without copying, so that
// reading it with gjson costs no allocation. The bytes must never be
// modified afterwards, as event data never is once built.
func StringView(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
