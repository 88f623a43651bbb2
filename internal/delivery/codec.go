package delivery

import (
	"encoding/binary"
	"errors"
	"time"
)

// recordVersion leads every encoded record so that the format can change
// without misreading old outboxes. Version 2 added Identity; version 1
// records read with an empty one.
const recordVersion = 2

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
		var n int64
		if !t.IsZero() {
			n = t.UnixNano()
		}
		b = binary.AppendVarint(b, n)
	}
	for _, s := range []string{r.ID, r.Endpoint, r.Lane, r.LastError, r.Reason, r.Identity} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	return append(b, r.Body...)
}

// decoder reads what encodeRecord wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return time.Time{}
	}
	d.b = d.b[n:]
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

// openRecord starts decoding an encoded record: a decoder past its version
// byte, failed if the version is unknown, and the number of strings before
// the body in that version.
func openRecord(b []byte) (*decoder, int) {
	if len(b) == 0 {
		return &decoder{err: errBadRecord}, 0
	}
	n, ok := stringFields(b[0])
	if !ok {
		return &decoder{err: errBadRecord}, 0
	}
	return &decoder{b: b[1:]}, n
}

// stringFields is the number of length-prefixed strings before the body in
// each record version.
func stringFields(version byte) (int, bool) {
	switch version {
	case 1:
		return 5, true
	case recordVersion:
		return 6, true
	}
	return 0, false
}

func decodeRecord(b []byte) (*Record, error) {
	d, n := openRecord(b)
	r := &Record{}
	r.Seq = d.uvarint()
	r.Attempts = int(d.uvarint())
	r.LastStatus = int(d.uvarint())
	r.Created, r.Next, r.DeadAt = d.time(), d.time(), d.time()
	for _, s := range []*string{&r.ID, &r.Endpoint, &r.Lane, &r.LastError, &r.Reason, &r.Identity}[:n] {
		*s = string(d.field())
	}
	r.Body = append([]byte(nil), d.field()...)
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// decodeBody returns a copy of the body of an encoded record, skipping the
// other fields.
func decodeBody(b []byte) ([]byte, error) {
	d, n := openRecord(b)
	d.uvarint()   // Seq
	d.uvarint()   // Attempts
	d.uvarint()   // LastStatus
	d.time()      // Created
	d.time()      // Next
	d.time()      // DeadAt
	for range n { // ID, Endpoint, Lane, LastError, Reason[, Identity]
		d.field()
	}
	body := append([]byte(nil), d.field()...)
	if d.err != nil {
		return nil, d.err
	}
	return body, nil
}
