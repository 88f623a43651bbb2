package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestDeliveriesReuseConnections: attempts share kept-alive connections,
// at most MaxConcurrency of them over HTTP/1.1, and a single multiplexed
// one with a receiver that speaks HTTP/2 (connections dialled at once at
// the start may be opened and closed unused).
func TestDeliveriesReuseConnections(t *testing.T) {
	const messages, concurrency = 60, 4
	for _, c := range []struct {
		name      string
		http2     bool
		wantProto int
		maxConns  int
	}{
		{"HTTP/1.1 receiver", false, 1, concurrency},
		{"HTTP/2 receiver over TLS", true, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				conns  = map[string]bool{}
				protos = map[int]int{}
			)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos[r.ProtoMajor]++
				conns[r.RemoteAddr] = true
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			var tlsConfig *tls.Config
			if c.http2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				roots := x509.NewCertPool()
				roots.AddCert(srv.Certificate())
				tlsConfig = &tls.Config{RootCAs: roots}
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)

			h := newHarness(t, NewMemoryStore(), Options{Workers: 16})
			h.set(endpoint(srv.URL, func(ep *Endpoint) {
				ep.Ordered, ep.MaxConcurrency, ep.TLS = false, concurrency, tlsConfig
			}))
			for i := range messages {
				h.enqueue(msg(fmt.Sprint("lane", i), 0))
			}
			h.waitCount("delivered:rx", messages)

			mu.Lock()
			defer mu.Unlock()
			if protos[c.wantProto] != messages {
				t.Errorf("requests by HTTP major version %v, want all %d over %d", protos, messages, c.wantProto)
			}
			if len(conns) == 0 || len(conns) > c.maxConns {
				t.Errorf("requests came over %d connections for %d deliveries, want 1 to %d", len(conns), messages, c.maxConns)
			}
		})
	}
}

// TestReloadKeepsTheConnectionsOfAnUnchangedEndpoint: a configuration load
// that leaves an endpoint's identity as it was delivers over the same
// connection; one that changes it connects anew and closes the old
// connection instead of leaving it idle.
func TestReloadKeepsTheConnectionsOfAnUnchangedEndpoint(t *testing.T) {
	var (
		mu     sync.Mutex
		used   []string
		closed = map[string]bool{}
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		used = append(used, r.RemoteAddr)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed[c.RemoteAddr().String()] = true
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	h := newHarness(t, NewMemoryStore(), Options{})
	deliverAfter := func(identity string, n int) string {
		t.Helper()
		if err := h.eng.Apply([]Endpoint{endpoint(srv.URL, func(ep *Endpoint) { ep.Identity = identity })}); err != nil {
			t.Fatal(err)
		}
		h.enqueue(msg("L", n))
		h.waitCount("delivered:rx", n+1)
		mu.Lock()
		defer mu.Unlock()
		return used[n]
	}
	first := deliverAfter("v1", 0)
	if again := deliverAfter("v1", 1); again != first {
		t.Errorf("after a load with the same identity the delivery came over %s, want the kept connection %s", again, first)
	}
	if changed := deliverAfter("v2", 2); changed == first {
		t.Errorf("after the identity changed the delivery came over the old connection %s", first)
	}
	eventually(t, "the old configuration's idle connection closed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return closed[first]
	})
}
