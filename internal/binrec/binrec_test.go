package binrec

import (
	"encoding/binary"
	"net/http"
	"reflect"
	"testing"
	"time"
)

type record struct {
	s      string
	p      []byte
	t, z   time.Time
	h      http.Header
	n      uint64
	v      int64
	f      uint64
	c      byte
	absent http.Header
}

func encode(r record) []byte {
	b := AppendString(nil, r.s)
	b = AppendBytes(b, r.p)
	b = AppendTime(b, r.t)
	b = AppendTime(b, r.z)
	b = AppendHeader(b, r.h)
	b = AppendHeader(b, r.absent)
	b = appendFixed(b, r)
	return b
}

func appendFixed(b []byte, r record) []byte {
	b = AppendBytes(b, nil)
	b = binary.AppendUvarint(b, r.n)
	b = binary.AppendVarint(b, r.v)
	b = binary.BigEndian.AppendUint64(b, r.f)
	return append(b, r.c)
}

func decode(b []byte) (record, Reader) {
	d := NewReader(b)
	var r record
	r.s = string(d.Bytes())
	r.p = d.Bytes()
	r.t, r.z = d.Time(), d.Time()
	r.h, r.absent = d.Header(), d.Header()
	if d.Bytes() != nil {
		r.s += " (empty bytes read as not nil)"
	}
	r.n, r.v, r.f, r.c = d.Uvarint(), d.Varint(), d.Fixed64(), d.Byte()
	return r, d
}

// TestRecordsReadBackAsWritten: every field comes back as it was written,
// times in nanoseconds and the zero time as zero, and nothing is left.
func TestRecordsReadBackAsWritten(t *testing.T) {
	want := record{
		s: "héllo", p: []byte{0, 1, 0xff}, t: time.Unix(1700000000, 123456789),
		h: http.Header{"Webhook-Id": {"a"}, "X-Many": {"1", "2"}, "X-None": {}},
		n: 42, v: -3, f: 7, c: 9,
	}
	got, d := decode(encode(want))
	if d.Bad() || d.Len() != 0 {
		t.Fatalf("bad %t, %d bytes left", d.Bad(), d.Len())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %+v\nwant %+v", got, want)
	}
}

// TestCutRecordsAreBad: a record cut anywhere is reported, and reads past
// the cut yield zeros instead of running on.
func TestCutRecordsAreBad(t *testing.T) {
	b := encode(record{s: "text", p: []byte("body"), t: time.Unix(1, 0), h: http.Header{"K": {"v"}}, n: 1, v: 1, f: 1, c: 1})
	for n := range len(b) {
		if _, d := decode(b[:n]); !d.Bad() {
			t.Errorf("a record cut at %d of %d bytes was read without error", n, len(b))
		}
	}
	d := NewReader([]byte{0x7f}) // a count of 127 with nothing after it
	if d.Count() != 0 || !d.Bad() || d.Uvarint() != 0 {
		t.Error("a count beyond the record was accepted")
	}
}
