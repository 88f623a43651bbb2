// Package binrec writes and reads the compact binary records that the
// outbox and the capture journal store: varints, length-prefixed strings
// and bytes (stored as they are, no base64), times as Unix nanoseconds and
// header maps. A Reader's first error sticks, so a record is decoded field
// by field and checked once at the end.
package binrec

import (
	"encoding/binary"
	"net/http"
	"time"
)

// AppendString appends s, length-prefixed.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBytes appends p, length-prefixed.
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// AppendTime appends t as Unix nanoseconds, 0 for the zero time (which
// UnixNano cannot represent).
func AppendTime(b []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.AppendVarint(b, n)
}

// AppendHeader appends h: its number of keys, then each key and its values.
func AppendHeader(b []byte, h http.Header) []byte {
	b = binary.AppendUvarint(b, uint64(len(h)))
	for k, vs := range h {
		b = AppendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = AppendString(b, v)
		}
	}
	return b
}

// Reader reads a record. After its first error every read yields zero and
// Bad reports it.
type Reader struct {
	b   []byte
	bad bool
}

// NewReader reads b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Bad reports whether a read ran past the record or found it malformed.
func (r *Reader) Bad() bool { return r.bad }

// Len is the number of bytes not read yet.
func (r *Reader) Len() int { return len(r.b) }

func (r *Reader) fail() { r.bad, r.b = true, nil }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 { return readVarint(r, binary.Uvarint) }

// Varint reads a signed varint.
func (r *Reader) Varint() int64 { return readVarint(r, binary.Varint) }

func readVarint[T uint64 | int64](r *Reader, read func([]byte) (T, int)) T {
	v, n := read(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Time reads what AppendTime wrote.
func (r *Reader) Time() time.Time {
	n := r.Varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Fixed64 reads 8 bytes, big-endian.
func (r *Reader) Fixed64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// Count reads a number of items that follow, each at least one byte long:
// more than the bytes left is corrupt, not a reason to allocate.
func (r *Reader) Count() int {
	n := r.Uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

// Bytes reads length-prefixed bytes, nil when empty. They alias the
// record: a caller that keeps them beyond the record's life copies them.
func (r *Reader) Bytes() []byte {
	n := r.Count()
	if n == 0 {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// Header reads what AppendHeader wrote, nil when it has no keys.
func (r *Reader) Header() http.Header {
	n := r.Count()
	if n == 0 {
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k := string(r.Bytes())
		m := r.Count()
		vs := make([]string, 0, m)
		for range m {
			vs = append(vs, string(r.Bytes()))
		}
		h[k] = vs
	}
	return h
}
