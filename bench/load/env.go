package main

import (
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
)

// env is everything one run starts.
type env struct {
	dir                   string
	backend               *backend
	backendSrv            *http.Server
	rx                    *receiver
	caddy                 *caddyProc
	ports                 []int  // admin, plain site, module site
	outbox                string // chat_webhooks outbox option; empty: bbolt in dir
	plainURL, moduleURL   string
	adminAddr, backendAdr string
	sent                  *tokenLog
	seq                   atomic.Int64

	// plainCapacity is the plain site's req/s at saturation, once a
	// scenario has measured it: the paced scenario's reference.
	plainCapacity float64
}

// startEnv starts the backend, the receiver and Caddy (bin) with the
// configuration of generation 0; close stops them.
func startEnv(dir, bin string) (*env, error) {
	e := &env{dir: dir, sent: newTokenLog(), backend: newBackend()}
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.backendAdr = backendLn.Addr().String()
	e.backendSrv = &http.Server{Handler: e.backend}
	go e.backendSrv.Serve(backendLn)
	if e.rx, err = newReceiver(e.sent); err != nil {
		e.close()
		return nil, err
	}
	if e.ports, err = freePorts(3); err != nil {
		e.close()
		return nil, err
	}
	e.adminAddr = fmt.Sprintf("127.0.0.1:%d", e.ports[0])
	e.plainURL = fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", e.ports[1])
	e.moduleURL = fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", e.ports[2])
	e.caddy = &caddyProc{bin: bin, dir: dir, config: e.caddyfile(0)}
	if err := e.caddy.start(e.adminAddr); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.caddy != nil {
		e.caddy.stop()
	}
	if e.rx != nil {
		e.rx.down()
	}
	e.backend.release()
	e.backendSrv.Close()
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
