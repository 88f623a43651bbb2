package journal

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/chatwebhooks/chatwebhooks/internal/binrec"
	"github.com/chatwebhooks/chatwebhooks/internal/capture"
)

// A segment is a sequence of frames: a 4-byte little-endian payload length,
// the CRC-32C of that length and the payload, then the payload. A segment
// file is made whole and zeroed before records are copied in, so its
// records are followed by zeros: the first frame whose header is zero ends
// the segment cleanly when only zeros follow it. A frame is sealed (its
// header written) after its payload, so a process killed in the middle of
// one leaves a zero header before non-zero bytes; that, a frame whose
// length runs past the end or whose checksum does not match, is the torn
// tail, and everything from there on is skipped.
const frameHeader = 8

// maxPayload bounds one frame, so that a corrupt length cannot make the
// reader allocate or trust gigabytes. Bodies are capped at 64 MiB each.
const maxPayload = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Payload kinds.
const (
	kindExchange byte = 'X' // a finished exchange
	kindCommit   byte = 'C' // ids of this run whose events are in the outbox
)

// Exchange flags.
const (
	flagRequestTruncated = 1 << iota
	flagResponseTruncated
	flagAborted
	flagsKnown = flagRequestTruncated | flagResponseTruncated | flagAborted
)

// Origin names an exchange for good: the run (one opening of the journal)
// that first recorded it and its id in that run. A replayed exchange keeps
// its origin, so whatever is derived from it can be named the same way
// every time.
type Origin struct {
	Run uint64
	ID  uint64
}

// Record is one finished exchange as the journal keeps it.
type Record struct {
	Origin Origin
	// Route tells the reader which handler configuration recorded it.
	Route    uint64
	Exchange capture.Exchange
}

// entry is one decoded frame: an exchange recorded under id, or the ids
// of this run committed by one commit frame.
type entry struct {
	id      uint64
	rec     *Record
	commits []uint64
}

// appendExchangeFrame appends the unsealed frame of exchange ex of the
// handler configuration route, recorded under id.
func appendExchangeFrame(b []byte, id uint64, o Origin, route uint64, ex *capture.Exchange) []byte {
	b = append(b, make([]byte, frameHeader)...)
	b = append(b, kindExchange)
	b = binary.AppendUvarint(b, id)
	b = binary.BigEndian.AppendUint64(b, o.Run)
	b = binary.AppendUvarint(b, o.ID)
	b = binary.BigEndian.AppendUint64(b, route)
	for _, s := range [...]string{ex.Method, ex.Host, ex.Path, ex.RawQuery, ex.RemoteAddr} {
		b = binrec.AppendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(ex.Status))
	b = binrec.AppendTime(b, ex.Start)
	b = binrec.AppendTime(b, ex.End)
	var flags byte
	if ex.RequestTruncated {
		flags |= flagRequestTruncated
	}
	if ex.ResponseTruncated {
		flags |= flagResponseTruncated
	}
	if ex.Aborted {
		flags |= flagAborted
	}
	b = append(b, flags)
	b = binrec.AppendHeader(b, ex.RequestHeader)
	b = binrec.AppendBytes(b, ex.RequestBody)
	b = binrec.AppendHeader(b, ex.ResponseHeader)
	return binrec.AppendBytes(b, ex.ResponseBody)
}

// appendCommitFrame appends the unsealed frame of a commit of ids.
func appendCommitFrame(b []byte, ids []uint64) []byte {
	b = append(b, make([]byte, frameHeader)...)
	b = append(b, kindCommit)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, id)
	}
	return b
}

// seal writes the header of frame: the checksum, then the length, which
// makes the frame count for a reader. The checksum's slot holds the length
// while it is summed, which spares a buffer.
func seal(frame []byte) {
	n := uint32(len(frame) - frameHeader)
	binary.LittleEndian.PutUint32(frame[4:], n)
	crc := crc32.Update(0, castagnoli, frame[4:frameHeader])
	binary.LittleEndian.PutUint32(frame[4:], crc32.Update(crc, castagnoli, frame[frameHeader:]))
	binary.LittleEndian.PutUint32(frame, n)
}

// readSegment decodes the frames of a segment up to the first one that is
// torn, fails its checksum or does not decode, and returns them with the
// length of the tail it skipped: 0 when the segment ends cleanly, with
// its last frame or zeros only after it.
func readSegment(data []byte) (entries []entry, tail int) {
	rest := data
	for len(rest) > 0 {
		e, n, ok := readFrame(rest)
		if !ok {
			if allZero(rest) {
				return entries, 0
			}
			return entries, len(rest)
		}
		entries = append(entries, e)
		rest = rest[n:]
	}
	return entries, 0
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readFrame decodes the frame at the start of b and returns its length.
func readFrame(b []byte) (entry, int, bool) {
	if len(b) < frameHeader {
		return entry{}, 0, false
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxPayload || int64(n) > int64(len(b)-frameHeader) {
		return entry{}, 0, false
	}
	payload := b[frameHeader : frameHeader+int(n)]
	crc := crc32.Update(0, castagnoli, b[:4])
	if crc32.Update(crc, castagnoli, payload) != binary.LittleEndian.Uint32(b[4:]) {
		return entry{}, 0, false
	}
	e, ok := decodePayload(payload)
	return e, frameHeader + int(n), ok
}

// decodePayload decodes one payload, strictly: anything left over or out
// of range makes it invalid.
func decodePayload(p []byte) (entry, bool) {
	if len(p) == 0 {
		return entry{}, false
	}
	d := binrec.NewReader(p[1:])
	var e entry
	switch p[0] {
	case kindExchange:
		e.id = d.Uvarint()
		r := &Record{}
		r.Origin.Run = d.Fixed64()
		r.Origin.ID = d.Uvarint()
		r.Route = d.Fixed64()
		ex := &r.Exchange
		for _, s := range []*string{&ex.Method, &ex.Host, &ex.Path, &ex.RawQuery, &ex.RemoteAddr} {
			*s = string(d.Bytes())
		}
		status := d.Uvarint()
		if status > 999 {
			return entry{}, false
		}
		ex.Status = int(status)
		ex.Start = d.Time()
		ex.End = d.Time()
		flags := d.Byte()
		if flags&^flagsKnown != 0 {
			return entry{}, false
		}
		ex.RequestTruncated = flags&flagRequestTruncated != 0
		ex.ResponseTruncated = flags&flagResponseTruncated != 0
		ex.Aborted = flags&flagAborted != 0
		ex.RequestHeader = d.Header()
		ex.RequestBody = d.Bytes()
		ex.ResponseHeader = d.Header()
		ex.ResponseBody = d.Bytes()
		e.rec = r
	case kindCommit:
		n := d.Count()
		e.commits = make([]uint64, 0, n)
		for range n {
			e.commits = append(e.commits, d.Uvarint())
		}
	default:
		return entry{}, false
	}
	if d.Bad() || d.Len() != 0 {
		return entry{}, false
	}
	return e, true
}
