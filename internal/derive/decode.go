package derive

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Problems found in traffic. They never stop the proxied response; they are
// reported with the derivation's outcome so the Caddy layer can count them.
const (
	ProblemNotJSON        = "not_json"
	ProblemTruncated      = "truncated"
	ProblemDecodeError    = "decode_error"
	ProblemDecodeTooLarge = "decompressed_too_large"
	ProblemUnknownCoding  = "unknown_content_encoding"
	ProblemAborted        = "aborted"
	// ProblemTooManyItems: a rule's each found more elements than one
	// exchange may turn into events; the rest were ignored.
	ProblemTooManyItems = "too_many_items"
)

var errTooLarge = errors.New("decoded body exceeds the limit")

// decodeContent undoes the Content-Encoding of h, reading at most limit
// decoded bytes so that a compression bomb costs no more than the limit.
func decodeContent(body []byte, h http.Header, limit int64) ([]byte, string) {
	return Decode(body, h.Get("Content-Encoding"), limit)
}

// Decode undoes the content coding coding (gzip, deflate, br, zstd or
// identity), reading at most limit decoded bytes, and returns what it read
// and the problem it met, if any: a body cut short decodes to a prefix
// (ProblemTruncated), a bomb to its first limit bytes
// (ProblemDecodeTooLarge).
func Decode(body []byte, coding string, limit int64) ([]byte, string) {
	coding = strings.ToLower(strings.TrimSpace(coding))
	var r io.Reader
	switch coding {
	case "", "identity":
		return body, ""
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, ProblemDecodeError
		}
		r = zr
	case "deflate":
		// HTTP's deflate is zlib-wrapped (RFC 9110), but some servers send
		// raw deflate: a zlib header tells them apart.
		if len(body) >= 2 && body[0]&0x0f == 8 && (uint16(body[0])<<8|uint16(body[1]))%31 == 0 {
			zr, err := zlib.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, ProblemDecodeError
			}
			r = zr
		} else {
			r = flate.NewReader(bytes.NewReader(body))
		}
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)))
		if err != nil {
			return nil, ProblemDecodeError
		}
		defer zr.Close()
		r = zr
	default:
		return nil, ProblemUnknownCoding
	}
	out, err := readLimited(r, limit)
	switch {
	case errors.Is(err, errTooLarge):
		return out, ProblemDecodeTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF):
		// A body cut at the capture cap decodes to a prefix: keep what came.
		return out, ProblemTruncated
	case err != nil:
		return out, ProblemDecodeError
	}
	return out, ""
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	if n > limit {
		return buf.Bytes()[:limit], errTooLarge
	}
	return buf.Bytes(), err
}

// mediaType returns the lower-cased media type of a Content-Type header:
// what mime.ParseMediaType would return, without parsing (and allocating)
// the parameters, which nothing here reads.
func mediaType(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(mt))
}
