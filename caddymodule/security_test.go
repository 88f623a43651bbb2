package caddymodule

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/tidwall/gjson"

	"github.com/chatwebhooks/chatwebhooks/internal/delivery"
)

// failures reads events_failed_total of a webhook for one reason, in-process.
func failures(webhook, schema, reason string) float64 {
	return counterValue(metrics.failed.WithLabelValues(webhook, schema, reason))
}

func TestDenyPrivateRefusesALoopbackReceiver(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	_, port, _ := net.SplitHostPort(sink.addr)

	// A literal private address is refused when the configuration loads.
	literal := chatConfig("", fmt.Sprintf(`source openai
		webhook http://127.0.0.1:%s/hook {
			deny_private
		}`, port), backend.Listener.Addr().String())
	startChatCaddy(t, chatConfig("", "source openai", backend.Listener.Addr().String()))
	if err := reloadCaddy(literal); err == nil || !strings.Contains(err.Error(), "deny_private") {
		t.Errorf("a deny_private webhook to 127.0.0.1 loaded: %v", err)
	}

	// A name is checked where it resolves, when connecting.
	denied := unique("denied")
	startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`source openai
		webhook http://localhost:%s/hook {
			name %s
			deny_private
			retry off
		}
		webhook http://localhost:%s/allowed {
			name allowed
		}`, port, denied, port), backend.Listener.Addr().String()))
	mustTurn(t, withModulePort, "deny", "hello")
	dead := waitDeadLetters(t, denied, 1)
	if !strings.Contains(dead[0].LastError, "deny_private") || dead[0].Reason != "exhausted" {
		t.Errorf("dead letter: %+v, want an error naming deny_private", dead[0])
	}
	// The dead letter is stored before the attempt is counted.
	waitUntil(t, 5*time.Second, "the denied attempt counted", func() bool { return failures(denied, "standard", delivery.ReasonDenied) >= 1 })
	if got := failures(denied, "standard", delivery.ReasonDenied); got != 1 {
		t.Errorf("failures with reason denied_address went up by %v, want 1", got)
	}
	// The same receiver without deny_private gets the event: only the
	// denied webhook was held back.
	got := sink.waitDistinct(1, 5*time.Second)
	if reqs, _ := sink.snapshot(); reqs != 1 || got[0].path != "/allowed" {
		t.Errorf("receiver saw %d requests (first to %s), want only the allowed webhook's one", reqs, got[0].path)
	}
}

// writePEM writes one PEM block to a new file in dir.
func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // file
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chatwebhooks test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: writePEM(t, dir, "ca.pem", "CERTIFICATE", der)}
}

// issue makes a leaf certificate for a server (127.0.0.1) or a client, and
// returns it loaded plus its cert and key files.
func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (tls.Certificate, string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile := writePEM(t, dir, name+".pem", "CERTIFICATE", der)
	keyFile := writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

// tlsSink is an HTTPS receiver that counts what it accepts and remembers the
// client certificate's name.
type tlsSink struct {
	*httptest.Server
	accepted atomic.Int64
	client   atomic.Value // string: CN of the last client certificate
}

func newTLSSink(t *testing.T, cfg *tls.Config) *tlsSink {
	s := &tlsSink{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			s.client.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		s.accepted.Add(1)
	}))
	s.Server.TLS = cfg
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func TestTLSReceiverWithCustomCA(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newTLSSink(t, nil) // httptest's own certificate, for 127.0.0.1
	dir := t.TempDir()
	ca := writePEM(t, dir, "httptest.pem", "CERTIFICATE", sink.Certificate().Raw)
	untrusted := unique("tls-untrusted")
	startChatCaddy(t, chatConfig(filepath.Join(dir, "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/trusted {
			name tls-trusted
			tls {
				ca %s
			}
		}
		webhook %s/untrusted {
			name %s
			retry off
		}`, sink.URL, ca, sink.URL, untrusted), backend.Listener.Addr().String()))
	mustTurn(t, withModulePort, "tls", "hello")
	waitUntil(t, 5*time.Second, "delivered over TLS with the configured CA", func() bool { return sink.accepted.Load() == 1 })
	dead := waitDeadLetters(t, untrusted, 1)
	waitUntil(t, 5*time.Second, "the refused attempt counted", func() bool { return failures(untrusted, "standard", delivery.ReasonTLS) >= 1 })
	if got := failures(untrusted, "standard", delivery.ReasonTLS); got != 1 {
		t.Errorf("failures with reason tls went up by %v, want 1 (dead letter: %+v)", got, dead[0])
	}
	if !strings.Contains(dead[0].LastError, "certificate") {
		t.Errorf("the dead letter should say the certificate is not trusted: %q", dead[0].LastError)
	}
	if sink.accepted.Load() != 1 {
		t.Errorf("the receiver accepted %d, want only the trusted webhook's", sink.accepted.Load())
	}
}

func TestMutualTLSPresentsTheClientCertificate(t *testing.T) {
	backend := newTurnBackend(t)
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	serverCert, _, _ := ca.issue(t, dir, "receiver", x509.ExtKeyUsageServerAuth)
	_, clientCert, clientKey := ca.issue(t, dir, "chatwebhooks-client", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	sink := newTLSSink(t, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	nocert := unique("mtls-nocert")
	startChatCaddy(t, chatConfig(filepath.Join(dir, "outbox.db"), fmt.Sprintf(`source openai
		webhook %s/mtls {
			name mtls
			tls {
				ca %s
				client_cert %s %s
			}
		}
		webhook %s/nocert {
			name %s
			retry off
			tls {
				ca %s
			}
		}`, sink.URL, ca.pem, clientCert, clientKey, sink.URL, nocert, ca.pem), backend.Listener.Addr().String()))
	mustTurn(t, withModulePort, "mtls", "hello")
	waitUntil(t, 5*time.Second, "delivered with a client certificate", func() bool { return sink.accepted.Load() == 1 })
	if cn, _ := sink.client.Load().(string); cn != "chatwebhooks-client" {
		t.Errorf("the receiver saw client certificate %q", cn)
	}
	dead := waitDeadLetters(t, nocert, 1)
	if sink.accepted.Load() != 1 {
		t.Errorf("the receiver accepted %d, want only the one with a client certificate", sink.accepted.Load())
	}
	if !strings.Contains(dead[0].LastError, "certificate") {
		t.Errorf("the dead letter should say a certificate was required: %q", dead[0].LastError)
	}
	// A refused client certificate is a TLS problem (an alert from the
	// server); delivery classifies remote alerts as "request" for now.
	if failures(nocert, "standard", delivery.ReasonTLS) != 1 {
		t.Logf("known: a client certificate refused by the receiver is counted with reason %q, not %q",
			delivery.ReasonRequest, delivery.ReasonTLS)
	}
}

func TestRedactRemovesTheFieldBeforeSigning(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	startChatCaddy(t, chatConfig(filepath.Join(t.TempDir(), "outbox.db"), fmt.Sprintf(`rule lead {
			match method POST
			match path /api/chat
			field conversation.id request.body.session
			field contact.name request.body.name
			field contact.email request.body.email
			field contact.phone request.body.phone
			field message.content request.body.text
			event message.received
		}
		webhook %s/redacted {
			name redacted
			schema chatvolt
			sign standard %s
			redact userEmail userPhoneNumber
		}
		webhook %s/full {
			name full
			schema chatvolt
			sign standard %s
		}`, sink.URL(), sinkSecret, sink.URL(), sinkSecret), backend.Listener.Addr().String()))
	resp, err := http.Post(fmt.Sprintf("http://localhost:%d/api/chat", withModulePort), "application/json",
		strings.NewReader(`{"session":"s-1","name":"Ada","email":"ada@example.com","phone":"+15550100","text":"Call me"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := sink.waitDistinct(2, 5*time.Second)
	verifier, _ := standardwebhooks.NewWebhook(sinkSecret)
	for _, d := range got {
		full := gjson.GetBytes(d.body, "userEmail").Exists()
		if err := verifier.Verify(d.body, d.header); err != nil {
			t.Errorf("payload does not verify: %v: %s", err, d.body)
		}
		if gjson.GetBytes(d.body, "userName").String() != "Ada" || gjson.GetBytes(d.body, "userMessage").String() != "Call me" {
			t.Errorf("redaction must leave the other fields: %s", d.body)
		}
		if full {
			if gjson.GetBytes(d.body, "userEmail").String() != "ada@example.com" || !gjson.GetBytes(d.body, "userPhoneNumber").Exists() {
				t.Errorf("the unredacted webhook should carry email and phone: %s", d.body)
			}
			continue
		}
		if strings.Contains(string(d.body), "ada@example.com") || strings.Contains(string(d.body), "+15550100") {
			t.Errorf("redacted payload still holds the email or phone: %s", d.body)
		}
	}
	if a, b := gjson.GetBytes(got[0].body, "userEmail").Exists(), gjson.GetBytes(got[1].body, "userEmail").Exists(); a == b {
		t.Errorf("want one redacted and one full payload:\n%s\n%s", got[0].body, got[1].body)
	}
}

func TestHeaderValuesWithCRLFCannotInjectHeaders(t *testing.T) {
	backend := newTurnBackend(t)
	sink := newHookSink(t, nil)
	t.Setenv("CHATWEBHOOKS_TEST_TENANT", "acme\r\nX-Injected: evil")
	startChatCaddy(t, chatConfig("", fmt.Sprintf(`source openai
		webhook %s/hook {
			name crlf
			header X-Tenant {env.CHATWEBHOOKS_TEST_TENANT}
			header X-Quoted "first
X-Injected-Too: evil"
		}`, sink.URL()), backend.Listener.Addr().String()))
	mustTurn(t, withModulePort, "crlf", "hello")
	d := sink.waitDistinct(1, 5*time.Second)[0]
	for name := range d.header {
		if strings.HasPrefix(strings.ToLower(name), "x-injected") {
			t.Errorf("header %s was injected: %v", name, d.header)
		}
	}
	if got := d.header.Get("X-Tenant"); strings.ContainsAny(got, "\r\n") || !strings.HasPrefix(got, "acme") {
		t.Errorf("X-Tenant = %q", got)
	}
	if got := d.header.Get("X-Quoted"); strings.ContainsAny(got, "\r\n") || !strings.HasPrefix(got, "first") {
		t.Errorf("X-Quoted = %q", got)
	}
}
