// Package nodereceiver runs Chatzuri's documented webhook receiver (the Express server from its webhook documentation)
// under Node.js for tests, so that deliveries are checked by the very code
// receivers run, not by a Go imitation of it.
package nodereceiver

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

//go:embed chatzuri-receiver.js
var chatzuriScript []byte

// Chatzuri starts the receiver with the secret and returns its base URL; it
// verifies on POST /webhook. The process ends with the test. Without node or
// npm the test is skipped, saying so.
func Chatzuri(t testing.TB, secret string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js to test against Chatzuri's reference receiver")
	}
	modules := expressModules(t)
	script := filepath.Join(t.TempDir(), "chatzuri-receiver.js")
	if err := os.WriteFile(script, chatzuriScript, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "SECRET_KEY="+secret)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	t.Cleanup(stop)
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		if p != "" {
			return "http://127.0.0.1:" + p
		}
	case <-time.After(30 * time.Second):
	}
	stop()
	t.Fatalf("the receiver did not start:\n%s", stderr.String())
	return ""
}

// expressModules returns a node_modules directory holding Express 5,
// installing it from the npm registry into the user cache directory once.
func expressModules(t testing.TB) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed; install Node.js to test against Chatzuri's reference receiver")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = t.TempDir() // no cache: install for this run only
	}
	dir := filepath.Join(cache, "chatwebhooks-signer-test", "express5")
	modules := filepath.Join(dir, "node_modules")
	installed := func() bool {
		_, err := os.Stat(filepath.Join(modules, "express", "package.json"))
		return err == nil
	}
	if installed() {
		return modules
	}
	if testing.Short() {
		t.Skip("-short: Express is not in the cache yet, and installing it needs the npm registry")
	}
	// Install beside the target and rename, so that an interrupted or
	// concurrent run never leaves a half-installed directory in place.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "express@5", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install express@5: %v\n%s", err, out)
	}
	if !installed() {
		os.RemoveAll(dir) // a leftover without express in it
	}
	// Renaming fails when a concurrent run got there first, which is fine.
	if err := os.Rename(tmp, dir); err != nil && !installed() {
		t.Fatalf("installing Express into %s: %v", dir, err)
	}
	return modules
}
