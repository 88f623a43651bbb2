package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// segment is one file of the journal. Most are mapped: made whole and
// zeroed ahead of need, then written by copying frames into the mapping.
// A frame larger than a mapped segment gets a segment of its own, written
// whole with one write.
type segment struct {
	path       string
	index, sub int
	data       []byte // the mapping; nil for a segment written whole
	size       int    // the file's size
	used       int    // bytes of sealed frames
	full       bool   // takes no more frames: a later segment follows
	pending    int    // exchanges neither committed nor released
}

// segmentName orders segments by run start, then by place in the run:
// the segment of a frame too large for a mapped one comes right after the
// mapped segment in use when it was written, as sub 1, 2, …
func segmentName(start int64, run uint64, index, sub int) string {
	return fmt.Sprintf("%016x-%016x-%08x-%08x.seg", start, run, index, sub)
}

// segmentRun returns the run of a segment file name. Names without a sub
// (start-run-index.seg) are those of the build before large frames had
// files of their own; its frames are the same, so what it left is read.
func segmentRun(name string) (uint64, bool) {
	var start, run uint64
	var index, sub uint32
	if _, err := fmt.Sscanf(name, "%016x-%016x-%08x-%08x.seg", &start, &run, &index, &sub); err == nil {
		return run, segmentName(int64(start), run, int(index), int(sub)) == name
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x-%08x.seg", &start, &run, &index); err == nil {
		return run, fmt.Sprintf("%016x-%016x-%08x.seg", start, run, index) == name
	}
	return 0, false
}

// segmentFiles lists dir's segments, oldest first; other files are left
// alone.
func segmentFiles(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []string
	for _, de := range des {
		if _, ok := segmentRun(de.Name()); ok && de.Type().IsRegular() {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// zeros fills new segment files.
var zeros [64 << 10]byte

// createMapped makes a mapped segment of size bytes. The file is written
// with zeros, so that its blocks are allocated now (a full disk fails
// here, not as a fault when a frame is copied in), and every page of the
// mapping is written once, so that copying a frame in faults no page.
func createMapped(path string, index, size int) (seg *segment, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer func() {
		// The mapping keeps the file; the descriptor is not needed.
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("journal: %w", cerr)
		}
		if err != nil {
			if seg != nil {
				unmap(seg.data)
				seg = nil
			}
			os.Remove(path)
		}
	}()
	for off := 0; off < size; off += len(zeros) {
		if _, err := f.WriteAt(zeros[:min(len(zeros), size-off)], int64(off)); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	data, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	for i := 0; i < len(data); i += os.Getpagesize() {
		data[i] = 0
	}
	return &segment{path: path, index: index, data: data, size: size}, nil
}

// renamed makes a zeroed mapped segment the one at path, with its mapping.
func (s *segment) renamed(path string, index int) (*segment, error) {
	if err := os.Rename(s.path, path); err != nil {
		s.remove()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &segment{path: path, index: index, data: s.data, size: s.size}, nil
}

// writeWhole writes frame as the segment of its own it was placed in.
func (s *segment) writeWhole(frame []byte) error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	_, err = f.Write(frame)
	if err = errors.Join(err, f.Close()); err != nil {
		os.Remove(s.path)
		return fmt.Errorf("journal: %w", err)
	}
	s.size, s.used = len(frame), len(frame)
	return nil
}

// close unmaps a mapped segment, leaving its file.
func (s *segment) close() error {
	if s.data == nil {
		return nil
	}
	err := unmap(s.data)
	s.data = nil
	return err
}

// remove unmaps the segment and deletes its file.
func (s *segment) remove() {
	s.close()
	os.Remove(s.path)
}
