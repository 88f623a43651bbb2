// Package natstest runs embedded NATS JetStream servers for tests: in
// process, in temporary directories, on loopback.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Start runs a JetStream server storing in dir on port (-1: any free one),
// shut down when the test ends. Starting again on the same dir and port
// brings back what it stored.
func Start(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StartCluster runs three JetStream servers routed to one another.
func StartCluster(t testing.TB) []*server.Server {
	t.Helper()
	var ports []int
	var routes []*url.URL
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: l.Addr().String()})
		l.Close()
	}
	var nodes []*server.Server
	for i, port := range ports {
		s, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("n%d", i), JetStream: true, StoreDir: t.TempDir(),
			Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "chat", Host: "127.0.0.1", Port: port}, Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		nodes = append(nodes, s)
	}
	// JetStream is ready once the three have met.
	for _, s := range nodes {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("NATS node not ready")
		}
	}
	return nodes
}
