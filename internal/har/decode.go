package har

import "github.com/chatwebhooks/chatwebhooks/internal/derive"

// maxDecoded bounds a decoded body, so that a compressed capture cannot
// blow up the recorder.
const maxDecoded = 16 << 20

// decoded undoes a Content-Encoding, as HAR stores bodies. A body cut at
// the capture cap, or longer than maxDecoded decoded, gives a prefix, which
// is kept. ok is false when the coding is unknown or the body does not
// decode at all.
func decoded(body []byte, coding string) (out []byte, ok bool) {
	out, problem := derive.Decode(body, coding, maxDecoded)
	switch problem {
	case derive.ProblemDecodeError, derive.ProblemUnknownCoding:
		return nil, false
	}
	return out, true
}
