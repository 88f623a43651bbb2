package har

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// maxDecoded bounds a decoded body, so that a compressed capture cannot
// blow up the recorder.
const maxDecoded = 16 << 20

// readers open a decoder per Content-Encoding.
var readers = map[string]func(io.Reader) (io.Reader, error){
	"gzip":    func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	"x-gzip":  func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	"deflate": func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) },
	"br":      func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
	"zstd": func(r io.Reader) (io.Reader, error) {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecoded))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	},
}

// decoded undoes a Content-Encoding, as HAR stores bodies. A body cut at
// the capture cap decodes to a prefix, which is kept. ok is false when the
// coding is unknown or the body does not decode at all.
func decoded(body []byte, coding string) (out []byte, ok bool) {
	coding = strings.ToLower(strings.TrimSpace(coding))
	if coding == "" || coding == "identity" {
		return body, true
	}
	open := readers[coding]
	if open == nil {
		return nil, false
	}
	if coding == "deflate" && !bytes.HasPrefix(body, []byte{0x78}) {
		// Raw deflate, which some servers send for "deflate".
		open = func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil }
	}
	r, err := open(bytes.NewReader(body))
	if err != nil {
		return nil, false
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, io.LimitReader(r, maxDecoded))
	if c, isCloser := r.(io.Closer); isCloser {
		c.Close()
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, false
	}
	return buf.Bytes(), true
}
