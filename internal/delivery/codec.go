package delivery

import (
	"encoding/binary"
	"errors"
	"net/http"
	"time"
)

// recordVersion leads every encoded record so that the format can change
// without misreading old outboxes. Version 2 added Identity; version 1
// records read with an empty one. Version 3 appended, after the body,
// Conversation, the trace context, DeliveredAt, SentHeader and History;
// older records read without them.
const recordVersion = 3

var errBadRecord = errors.New("delivery: corrupt stored record")

// encodeRecord is the compact binary form the bolt store writes: varints
// and length-prefixed strings, so bodies are stored as is (no base64).
func encodeRecord(r *Record) []byte {
	b := make([]byte, 0, 64+len(r.ID)+len(r.Endpoint)+len(r.Lane)+len(r.LastError)+len(r.Identity)+len(r.Body))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendUvarint(b, uint64(r.Attempts))
	b = binary.AppendUvarint(b, uint64(r.LastStatus))
	for _, t := range []time.Time{r.Created, r.Next, r.DeadAt} {
		b = appendTime(b, t)
	}
	for _, s := range []string{r.ID, r.Endpoint, r.Lane, r.LastError, r.Reason, r.Identity} {
		b = appendString(b, s)
	}
	b = appendBytes(b, r.Body)
	for _, s := range []string{r.Conversation, r.Traceparent, r.Tracestate} {
		b = appendString(b, s)
	}
	b = appendTime(b, r.DeliveredAt)
	b = binary.AppendUvarint(b, uint64(len(r.SentHeader)))
	for k, vs := range r.SentHeader {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(r.History)))
	for _, a := range r.History {
		b = appendTime(b, a.At)
		b = binary.AppendVarint(b, int64(a.Duration))
		b = binary.AppendUvarint(b, uint64(a.Status))
		for _, s := range []string{a.Class, a.Error, a.Response} {
			b = appendString(b, s)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendTime(b []byte, t time.Time) []byte {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	return binary.AppendVarint(b, n)
}

// decoder reads what encodeRecord wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

// number reads one varint with read (binary.Uvarint or binary.Varint).
func number[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 { return number(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return number(d, binary.Varint) }

func (d *decoder) time() time.Time {
	v := d.varint()
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

// field returns the next length-prefixed field as a sub-slice of the
// encoded record. Callers copy it: bolt's values are only valid inside
// their transaction.
func (d *decoder) field() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errBadRecord
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// stringFields is the number of length-prefixed strings before the body in
// each record version.
func stringFields(version byte) (int, bool) {
	switch version {
	case 1:
		return 5, true
	case 2, recordVersion:
		return 6, true
	}
	return 0, false
}

func decodeRecord(b []byte) (*Record, error) {
	if len(b) == 0 {
		return nil, errBadRecord
	}
	n, ok := stringFields(b[0])
	if !ok {
		return nil, errBadRecord
	}
	d := &decoder{b: b[1:]}
	r := &Record{}
	r.Seq = d.uvarint()
	r.Attempts = int(d.uvarint())
	r.LastStatus = int(d.uvarint())
	r.Created, r.Next, r.DeadAt = d.time(), d.time(), d.time()
	for _, s := range []*string{&r.ID, &r.Endpoint, &r.Lane, &r.LastError, &r.Reason, &r.Identity}[:n] {
		*s = string(d.field())
	}
	r.Body = append([]byte(nil), d.field()...)
	if b[0] >= 3 {
		d.extras(r)
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// deliveredAt reads a record's DeliveredAt without decoding the rest: the
// retention of delivered messages checks the oldest at every delivery.
func deliveredAt(b []byte) (time.Time, error) {
	if len(b) == 0 {
		return time.Time{}, errBadRecord
	}
	n, ok := stringFields(b[0])
	switch {
	case !ok:
		return time.Time{}, errBadRecord
	case b[0] < 3:
		return time.Time{}, nil // as decodeRecord reads older versions
	}
	d := &decoder{b: b[1:]}
	for range 3 + 3 { // Seq, Attempts, LastStatus; Created, Next, DeadAt
		d.uvarint()
	}
	for range n + 1 + 3 { // the strings, the body, Conversation and the trace context
		d.field()
	}
	at := d.time()
	return at, d.err
}

// extras reads what version 3 appended after the body.
func (d *decoder) extras(r *Record) {
	for _, s := range []*string{&r.Conversation, &r.Traceparent, &r.Tracestate} {
		*s = string(d.field())
	}
	r.DeliveredAt = d.time()
	if n := d.count(); n > 0 {
		r.SentHeader = make(http.Header, n)
		for range n {
			k := string(d.field())
			vs := make([]string, d.count())
			for i := range vs {
				vs[i] = string(d.field())
			}
			r.SentHeader[k] = vs
		}
	}
	if n := d.count(); n > 0 {
		r.History = make([]Attempt, n)
		for i := range r.History {
			a := &r.History[i]
			a.At = d.time()
			a.Duration = time.Duration(d.varint())
			a.Status = int(d.uvarint())
			for _, s := range []*string{&a.Class, &a.Error, &a.Response} {
				*s = string(d.field())
			}
		}
	}
}

// count reads a number of items, each at least one byte long: a count
// beyond what is left is corrupt, not a reason to allocate.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errBadRecord
		return 0
	}
	return int(n)
}
