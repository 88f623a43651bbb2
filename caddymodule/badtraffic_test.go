package caddymodule

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tidwall/gjson"
)

func gzipBomb(size int) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write([]byte(`{"choices":[{"message":{"content":"`))
	zw.Write(bytes.Repeat([]byte("A"), size))
	zw.Write([]byte(`"}}]}`))
	zw.Close()
	return b.Bytes()
}

// Bad traffic never changes what the client gets, never panics, and yields
// no event or a partial one, with the problem counted.
func TestBadTrafficLeavesResponsesIntactAndIsCounted(t *testing.T) {
	hundredMB := 100 << 20
	bomb := gzipBomb(64 << 20)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Query().Get("case") {
		case "html":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "<html><body>502 from some gateway</body></html>")
		case "cut_stream":
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Half an ans\"}}]}\n\ndata: {\"id\":\"c\",\"cho")
		case "huge":
			w.Header().Set("Content-Type", "application/json")
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for i := 0; i < hundredMB>>20; i++ {
				w.Write(chunk)
			}
		case "bomb":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(bomb)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"ok","choices":[{"message":{"role":"assistant","content":"fine"}}]}`)
		}
	}))
	defer backend.Close()
	rcv := newReceiver(t)
	startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf("webhook %s/hook {\n\t\t\tschema standard\n\t\t}", rcv.URL))
	// Compare raw bytes: no transparent decompression on the client side.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}

	tests := []struct {
		name      string
		request   string
		problem   string
		wantEvent string // type of the (partial) event
		check     func(t *testing.T, data gjson.Result)
	}{
		{"non-JSON answer", `{"messages":[{"role":"user","content":"Hi"}]}`, "not_json", "message.received", nil},
		{"invalid UTF-8 in the message", "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9 \xff\"}]}", "", "message.replied",
			func(t *testing.T, data gjson.Result) {
				if got := data.Get("message.content").String(); got != "caf\uFFFD \uFFFD" {
					t.Errorf("content %q, want invalid bytes replaced", got)
				}
			}},
		{"stream cut mid-event", `{"stream":true,"messages":[{"role":"user","content":"Hi"}]}`, "truncated", "message.replied",
			func(t *testing.T, data gjson.Result) {
				if got := data.Get("reply.content").String(); got != "Half an ans" {
					t.Errorf("partial reply %q", got)
				}
			}},
		{"100 MB answer", `{"messages":[{"role":"user","content":"Hi"}]}`, "truncated", "message.received", nil},
		{"gzip bomb", `{"messages":[{"role":"user","content":"Hi"}]}`, "decompressed_too_large", "message.received", nil},
	}
	cases := map[string]string{"non-JSON answer": "html", "stream cut mid-event": "cut_stream", "100 MB answer": "huge", "gzip bomb": "bomb"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(metrics.trafficProblems.WithLabelValues(tc.problem))
			fetch := func(port int) (int, [32]byte, int64) {
				req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions?case=%s", port, cases[tc.name]), strings.NewReader(tc.request))
				// The client's Accept-Encoding reaches the upstream, which
				// then sends the compressed bytes the module must decode.
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				h := sha256.New()
				n, _ := io.Copy(h, resp.Body)
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				return resp.StatusCode, sum, n
			}
			s1, sum1, n1 := fetch(withModulePort)
			s2, sum2, n2 := fetch(plainPort)
			if s1 != s2 || sum1 != sum2 || n1 != n2 {
				t.Errorf("client response differs: with module %d %d bytes, plain %d %d bytes", s1, n1, s2, n2)
			}
			body := rcv.next(t, 5*time.Second).body
			if typ := gjson.GetBytes(body, "type").String(); typ != tc.wantEvent {
				t.Errorf("event %s, want %s: %.300s", typ, tc.wantEvent, body)
			}
			if tc.check != nil {
				tc.check(t, gjson.GetBytes(body, "data"))
			}
			if tc.problem != "" {
				if after := testutil.ToFloat64(metrics.trafficProblems.WithLabelValues(tc.problem)); after <= before {
					t.Errorf("problem %s not counted", tc.problem)
				}
			}
		})
	}
}
