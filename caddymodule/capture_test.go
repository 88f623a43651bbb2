package caddymodule

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// catchAll is a rule that wants every request, so that capture is active on
// whatever the test sends.
const catchAll = `rule everything {
			field message.content =seen
			field extra.status response.status
			field reply.content response.body.answer
			event message.received
		}`

func TestWebSocketUpgradeStillWorks(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	defer echo.Close()
	rcv := newReceiver(t)
	loadCaddy(t, catchAll+"\nwebhook "+rcv.URL+"/hook", "reverse_proxy "+echo.Listener.Addr().String())

	conn, err := net.DialTimeout("tcp", fmt.Sprintf("localhost:%d", withModulePort), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	fmt.Fprintf(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("echo %q, %v", line, err)
	}
	conn.Close()
	if got := gjson.GetBytes(rcv.next(t, 2*time.Second).body, "data.extra.status").Int(); got != 101 {
		t.Errorf("captured status %d, want 101", got)
	}
}

func TestFileServerBodyIsCapturedThroughReadFrom(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "answer.json"), []byte(`{"answer":"from a file"}`), 0o644)
	rcv := newReceiver(t)
	loadCaddy(t, catchAll+"\nwebhook "+rcv.URL+"/hook", "root * "+dir+"\nfile_server")
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/answer.json", withModulePort))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != `{"answer":"from a file"}` {
		t.Fatalf("client got %q", b)
	}
	if got := gjson.GetBytes(rcv.next(t, 2*time.Second).body, "data.reply.content").String(); got != "from a file" {
		t.Errorf("captured reply %q, want the file's answer", got)
	}
}

func TestHTTP2StreamsAndDelivers(t *testing.T) {
	backend := newChatBackend(t)
	rcv := newReceiver(t)
	loadCaddy(t, "source openai\nwebhook "+rcv.URL+"/hook {\nschema chatvolt\n}", "reverse_proxy "+backend.Listener.Addr().String(),
		"servers {\nprotocols h1 h2c\n}")

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/v1/chat/completions", withModulePort),
		strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"Hi over h2"}]}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "Your order ") {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	close(backend.release)
	io.Copy(io.Discard, resp.Body)
	got := rcv.next(t, 2*time.Second).body
	if gjson.GetBytes(got, "userMessage").String() != "Hi over h2" || gjson.GetBytes(got, "agentResponse").String() != "Your order ships tomorrow." {
		t.Errorf("payload %s", got)
	}
}

// A client that leaves in the middle of a stream breaks nothing: the
// exchange still becomes an event, whose reply says it is incomplete, and
// the next request is served.
func TestAbortedStreamStillYieldsItsExchange(t *testing.T) {
	backend := newChatBackend(t)
	rcv := newReceiver(t)
	startCaddy(t, backend.Listener.Addr().String(), fmt.Sprintf("webhook %s/hook", rcv.URL))
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("localhost:%d", withModulePort), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"stream":true,"messages":[{"role":"user","content":"Where is my parcel?"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("no first chunk: %v", err)
		}
		if strings.Contains(line, "Your order ") {
			break
		}
	}
	conn.Close() // gone before the upstream finishes
	time.Sleep(50 * time.Millisecond)
	close(backend.release)

	got := rcv.next(t, 3*time.Second).body
	if m := gjson.GetBytes(got, "data.message.content").String(); m != "Where is my parcel?" {
		t.Errorf("message %q: %s", m, got)
	}
	if r := gjson.GetBytes(got, "data.reply"); r.Get("content").String() != "Your order " || r.Get("incomplete").Raw != "true" {
		t.Errorf("reply %s, want the part that came, marked incomplete: %s", r.Raw, got)
	}
	assertProxiedAnswer(t, false)
}
