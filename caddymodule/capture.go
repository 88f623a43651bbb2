package caddymodule

import (
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// requestCapture tees the request body as the upstream reads it, up to max
// bytes. The transport may read from another goroutine, and may still be
// reading when the handler returns, hence the lock and the sealed flag.
type requestCapture struct {
	body      io.ReadCloser
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
	done      bool // the body reached EOF or an error
	sealed    bool
}

func (c *requestCapture) Read(p []byte) (int, error) {
	n, err := c.body.Read(p)
	c.mu.Lock()
	if !c.sealed {
		c.buf, c.truncated = appendCapped(c.buf, p[:n], c.max, c.truncated)
		c.done = c.done || err != nil
	}
	c.mu.Unlock()
	return n, err
}

// Close does not close the client's body: a transport that gives up on the
// upstream closes it at once, and the message it carried is still wanted.
// net/http closes the real body when the handler returns.
func (c *requestCapture) Close() error { return nil }

// seal stops capturing and returns what was captured. With drain, when the
// upstream did not read the whole body (it was down, or answered early),
// what is left is read here, up to the cap, so the event still has the
// client's message.
func (c *requestCapture) seal(drain bool) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if drain && !c.done && !c.sealed && len(c.buf) < c.max {
		rest, _ := io.ReadAll(io.LimitReader(c.body, int64(c.max-len(c.buf))+1))
		c.buf, c.truncated = appendCapped(c.buf, rest, c.max, c.truncated)
	}
	c.sealed = true
	return c.buf, c.truncated
}

// responseCapture tees the response as it is written, up to max bytes. It
// never buffers what the client gets: every Write goes straight through, and
// Flush, Hijack and the rest reach the real writer through Unwrap (Caddy's
// handlers use http.ResponseController).
type responseCapture struct {
	caddyhttp.ResponseWriterWrapper
	status    int
	buf       []byte
	max       int
	truncated bool
}

func (c *responseCapture) WriteHeader(code int) {
	// 1xx responses other than 101 are informational; the final status follows.
	if c.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		c.status = code
		if n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64); err == nil {
			c.buf = presized(n, c.max)
		}
	}
	c.ResponseWriterWrapper.WriteHeader(code)
}

func (c *responseCapture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.buf, c.truncated = appendCapped(c.buf, p, c.max, c.truncated)
	return c.ResponseWriterWrapper.Write(p)
}

// ReadFrom keeps bodies written through io.ReaderFrom (file_server, some
// proxy paths) in the capture; once the cap is reached it hands the reader
// over untouched so sendfile and friends still apply.
func (c *responseCapture) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.truncated {
		return c.ResponseWriterWrapper.ReadFrom(r)
	}
	return c.ResponseWriterWrapper.ReadFrom(readerOnly{io.TeeReader(r, captureWriter{c})})
}

// readerOnly hides a reader's other methods (WriterTo) so that the copy goes
// through the tee.
type readerOnly struct{ io.Reader }

type captureWriter struct{ c *responseCapture }

func (w captureWriter) Write(p []byte) (int, error) {
	w.c.buf, w.c.truncated = appendCapped(w.c.buf, p, w.c.max, w.c.truncated)
	return len(p), nil
}

// captures are the captures of one exchange, allocated together.
type captures struct {
	req  requestCapture
	resp responseCapture
}

// cloneHeaders clones the request's and the response's header with one
// slice for the values of both, as http.Header.Clone does for one.
func cloneHeaders(req, resp http.Header) (http.Header, http.Header) {
	n := 0
	for _, h := range [2]http.Header{req, resp} {
		for _, vv := range h {
			n += len(vv)
		}
	}
	values := make([]string, n)
	clone := func(h http.Header) http.Header {
		if h == nil {
			return nil
		}
		out := make(http.Header, len(h))
		for k, vv := range h {
			if vv == nil {
				// Preserve nil values, as http.Header.Clone does.
				out[k] = nil
				continue
			}
			n := copy(values, vv)
			out[k] = values[:n:n]
			values = values[n:]
		}
		return out
	}
	return clone(req), clone(resp)
}

// presized returns an empty buffer for a body of n bytes (capped at max), so
// that capturing it allocates once instead of doubling its way up.
func presized(n int64, max int) []byte {
	if n <= 0 {
		return nil
	}
	return make([]byte, 0, min(n, int64(max)))
}

// appendCapped appends as much of p as fits under max.
func appendCapped(buf, p []byte, max int, truncated bool) ([]byte, bool) {
	room := max - len(buf)
	if room <= 0 {
		return buf, truncated || len(p) > 0
	}
	if len(p) > room {
		return append(buf, p[:room]...), true
	}
	return append(buf, p...), truncated
}
