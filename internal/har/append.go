package har

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// The file an Appender writes is always a whole HAR document: each entry is
// written over the closing trailer, followed by the trailer again.
var (
	fileHead    = []byte(`{"log":{"version":"1.2","creator":{"name":"chatwebhooks","version":"1"},"entries":[` + "\n")
	fileTrailer = []byte("\n]}}\n")
)

// Appender appends entries to a HAR file and rotates it at a size: the full
// file becomes path.1, path.1 becomes path.2, and so on up to the number
// kept. It is not safe for concurrent use.
type Appender struct {
	path string
	f    *os.File
	size int64
}

// OpenAppender opens or creates the HAR file at path. A file that does not
// end as an Appender leaves it (a crash in mid-write, another program's
// file) is rotated away, not appended to.
func OpenAppender(path string) (*Appender, error) {
	a := &Appender{path: path}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	a.f = f
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	a.size = st.Size()
	if a.size == 0 {
		return a, a.start()
	}
	tail := make([]byte, len(fileTrailer))
	if a.size < int64(len(fileHead)+len(fileTrailer)) {
		tail = nil
	} else if _, err := f.ReadAt(tail, a.size-int64(len(tail))); err != nil {
		f.Close()
		return nil, err
	}
	if !bytes.Equal(tail, fileTrailer) {
		return a, a.rotate(1)
	}
	return a, nil
}

// start writes an empty document to the new file.
func (a *Appender) start() error {
	if _, err := a.f.Write(append(append([]byte{}, fileHead...), fileTrailer...)); err != nil {
		return err
	}
	a.size = int64(len(fileHead) + len(fileTrailer))
	return nil
}

// Append writes e, first rotating when the file holds entries and e would
// take it beyond maxSize bytes; keep is how many rotated files are kept.
func (a *Appender) Append(e Entry, maxSize int64, keep int) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	empty := a.size == int64(len(fileHead)+len(fileTrailer))
	if !empty && a.size+int64(len(data))+2 > maxSize {
		if err := a.rotate(keep); err != nil {
			return err
		}
		empty = true
	}
	var buf bytes.Buffer
	if !empty {
		buf.WriteString(",\n")
	}
	buf.Write(data)
	buf.Write(fileTrailer)
	at := a.size - int64(len(fileTrailer))
	if _, err := a.f.WriteAt(buf.Bytes(), at); err != nil {
		return err
	}
	a.size = at + int64(buf.Len())
	return nil
}

// rotate shifts the kept files by one and starts a new file.
func (a *Appender) rotate(keep int) error {
	if err := a.f.Close(); err != nil {
		return err
	}
	if keep == 0 {
		if err := os.Remove(a.path); err != nil {
			return err
		}
	}
	for i := keep - 1; i >= 0; i-- {
		from := a.path
		if i > 0 {
			from = fmt.Sprintf("%s.%d", a.path, i)
		}
		err := os.Rename(from, fmt.Sprintf("%s.%d", a.path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	f, err := os.OpenFile(a.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	a.f = f
	return a.start()
}

// Close closes the file.
func (a *Appender) Close() error {
	return a.f.Close()
}
