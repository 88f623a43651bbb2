package delivery

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/chatwebhooks/chatwebhooks/internal/binrec"
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
		b = binrec.AppendTime(b, t)
	}
	for _, s := range []string{r.ID, r.Endpoint, r.Lane, r.LastError, r.Reason, r.Identity} {
		b = binrec.AppendString(b, s)
	}
	b = binrec.AppendBytes(b, r.Body)
	for _, s := range []string{r.Conversation, r.Traceparent, r.Tracestate} {
		b = binrec.AppendString(b, s)
	}
	b = binrec.AppendTime(b, r.DeliveredAt)
	b = binrec.AppendHeader(b, r.SentHeader)
	b = binary.AppendUvarint(b, uint64(len(r.History)))
	for _, a := range r.History {
		b = binrec.AppendTime(b, a.At)
		b = binary.AppendVarint(b, int64(a.Duration))
		b = binary.AppendUvarint(b, uint64(a.Status))
		for _, s := range []string{a.Class, a.Error, a.Response} {
			b = binrec.AppendString(b, s)
		}
	}
	return b
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
	d := binrec.NewReader(b[1:])
	r := &Record{}
	r.Seq = d.Uvarint()
	r.Attempts = int(d.Uvarint())
	r.LastStatus = int(d.Uvarint())
	r.Created, r.Next, r.DeadAt = d.Time(), d.Time(), d.Time()
	for _, s := range []*string{&r.ID, &r.Endpoint, &r.Lane, &r.LastError, &r.Reason, &r.Identity}[:n] {
		*s = string(d.Bytes())
	}
	// Bolt's values are only valid inside their transaction.
	r.Body = append([]byte(nil), d.Bytes()...)
	if b[0] >= 3 {
		readExtras(&d, r)
	}
	if d.Bad() {
		return nil, errBadRecord
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
	d := binrec.NewReader(b[1:])
	for range 3 + 3 { // Seq, Attempts, LastStatus; Created, Next, DeadAt
		d.Uvarint()
	}
	for range n + 1 + 3 { // the strings, the body, Conversation and the trace context
		d.Bytes()
	}
	at := d.Time()
	if d.Bad() {
		return time.Time{}, errBadRecord
	}
	return at, nil
}

// readExtras reads what version 3 appended after the body.
func readExtras(d *binrec.Reader, r *Record) {
	for _, s := range []*string{&r.Conversation, &r.Traceparent, &r.Tracestate} {
		*s = string(d.Bytes())
	}
	r.DeliveredAt = d.Time()
	r.SentHeader = d.Header()
	if n := d.Count(); n > 0 {
		r.History = make([]Attempt, n)
		for i := range r.History {
			a := &r.History[i]
			a.At = d.Time()
			a.Duration = time.Duration(d.Varint())
			a.Status = int(d.Uvarint())
			for _, s := range []*string{&a.Class, &a.Error, &a.Response} {
				*s = string(d.Bytes())
			}
		}
	}
}
