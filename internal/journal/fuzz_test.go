package journal

import (
	"reflect"
	"testing"
)

// segmentOf encodes turns 0..n-1 as one segment, followed by the zeroed
// room a mapped segment has after its last frame, and returns it with the
// offset where each frame ends.
func segmentOf(n int) ([]byte, []int) {
	var seg []byte
	var ends []int
	for i := range n {
		ex := chatExchange(i)
		seg = appendSealed(seg, appendExchangeFrame(nil, uint64(i+1), Origin{Run: 0xfeed, ID: uint64(i + 1)}, 7, &ex))
		ends = append(ends, len(seg))
		if i%3 == 2 {
			seg = appendSealed(seg, appendCommitFrame(nil, []uint64{uint64(i - 1), uint64(i)}))
			ends = append(ends, len(seg))
		}
	}
	return append(seg, make([]byte, 512)...), ends
}

func appendSealed(seg, frame []byte) []byte {
	seal(frame)
	return append(seg, frame...)
}

// FuzzSegmentDamage damages a valid segment the ways a killed process or a
// bad disk would (cut short, a byte flipped, a range overwritten) and
// checks that the reader never panics, never returns a record that was
// not written, returns every record wholly before the damage, and accounts
// for every byte: read, skipped as a torn tail, or zeros after the end.
func FuzzSegmentDamage(f *testing.F) {
	f.Add(uint8(5), uint16(0xffff), uint16(0), uint8(0), []byte(nil), uint16(0))
	f.Add(uint8(5), uint16(700), uint16(0), uint8(0), []byte(nil), uint16(0))
	f.Add(uint8(3), uint16(0xffff), uint16(250), uint8(1), []byte(nil), uint16(0))
	f.Add(uint8(8), uint16(0xffff), uint16(0), uint8(0), []byte("\x00\x00\x00\x00\x00\x00\x00\x00"), uint16(300))
	f.Add(uint8(2), uint16(3), uint16(0), uint8(0), []byte{0xff, 0xff, 0xff, 0x7f}, uint16(0))
	f.Fuzz(func(t *testing.T, n uint8, cut, flipAt uint16, flip uint8, garbage []byte, garbageAt uint16) {
		orig, ends := segmentOf(int(n%8) + 1)
		seg := append([]byte(nil), orig...)
		if at := int(garbageAt) % len(seg); len(garbage) > 0 {
			copy(seg[at:], garbage)
		}
		if flip != 0 {
			seg[int(flipAt)%len(seg)] ^= flip
		}
		if int(cut) < len(seg) {
			seg = seg[:cut]
		}
		damage := len(seg)
		for i := range seg {
			if seg[i] != orig[i] {
				damage = i
				break
			}
		}

		entries, tail := readSegment(seg)

		want, _ := readSegment(orig)
		consumed := 0
		for i, e := range entries {
			if i >= len(want) || !reflect.DeepEqual(e, want[i]) {
				t.Fatalf("entry %d was never written: %+v", i, e)
			}
			consumed = ends[i]
		}
		for i, end := range ends {
			if end <= damage && i >= len(entries) {
				t.Fatalf("entry %d ends at %d, before the damage at %d, and was not returned", i, end, damage)
			}
		}
		switch {
		case tail == 0 && !allZero(seg[consumed:]):
			t.Fatalf("%d bytes read of %d, and what follows is not all zeros, yet no tail was skipped", consumed, len(seg))
		case tail != 0 && consumed+tail != len(seg):
			t.Fatalf("%d bytes read and %d skipped of %d", consumed, tail, len(seg))
		}
	})
}

// FuzzPayload feeds arbitrary payloads in frames whose checksum is right,
// which reaches the decoder past the checksum: it must not panic or
// allocate beyond the payload, and what it accepts must encode and decode
// to the same record again.
func FuzzPayload(f *testing.F) {
	seg, _ := segmentOf(4)
	entries, _ := readSegment(seg)
	for _, e := range entries {
		f.Add(encodeEntry(e)[frameHeader:])
	}
	f.Add([]byte{kindCommit, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{kindExchange})
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := append(make([]byte, frameHeader), payload...)
		seal(frame)
		entries, tail := readSegment(frame)
		if tail != 0 {
			if len(entries) != 0 || tail != len(frame) {
				t.Fatalf("a rejected frame gave %d entries and a tail of %d of %d bytes", len(entries), tail, len(frame))
			}
			return
		}
		if len(entries) != 1 {
			t.Fatalf("one frame decoded into %d entries", len(entries))
		}
		again, tail := readSegment(encodeEntry(entries[0]))
		if tail != 0 || len(again) != 1 || !reflect.DeepEqual(again[0], entries[0]) {
			t.Fatalf("decoded %+v, encoded and decoded again %+v (tail %d)", entries[0], again, tail)
		}
	})
}
