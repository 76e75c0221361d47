package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRelayToken(t *testing.T) (token, sum string) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--new-relay-token"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "token":
			token = strings.TrimSpace(v)
		case "token_sha256":
			sum = strings.TrimSpace(v)
		}
	}
	if len(token) < 40 || len(sum) != 64 {
		t.Fatalf("--new-relay-token printed %q", out.String())
	}
	return token, sum
}

func writeP8(t *testing.T, path string) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func post(t *testing.T, url, auth, body string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeAndSIGTERM starts the bridge from a config file, talks to its
// API and stops it with SIGTERM.
func TestServeAndSIGTERM(t *testing.T) {
	dir := t.TempDir()
	token, sum := newRelayToken(t)
	writeP8(t, filepath.Join(dir, "AuthKey.p8"))
	vk, _ := ecdh.P256().GenerateKey(rand.Reader)
	vapidPriv := base64.RawURLEncoding.EncodeToString(vk.Bytes())
	vapidPub := base64.RawURLEncoding.EncodeToString(vk.PublicKey().Bytes())
	cfg := map[string]any{
		"listen":   "127.0.0.1:0",
		"data_dir": filepath.Join(dir, "data"),
		"relays":   []map[string]string{{"name": "relay-a", "token_sha256": sum}},
		"apns": map[string]string{"endpoint": "https://127.0.0.1:1", "key_file": filepath.Join(dir, "AuthKey.p8"),
			"key_id": "ABC123DEFG", "team_id": "DEF123GHIJ", "topic": "net.hush.app"},
		"webpush": map[string]string{"vapid_private_key": vapidPriv, "vapid_public_key": vapidPub,
			"subscriber": "mailto:ops@example.org"},
		"no_sync": true,
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "bridge.json")
	os.WriteFile(cfgPath, b, 0o600)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	pr, pw := io.Pipe()
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfgPath}, pw, logs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err, <-done)
	}
	go io.Copy(io.Discard, pr)
	base := "http://" + strings.TrimSpace(line)

	if st, body := post(t, base+"/v1/register", "", `{"provider":"apns","token":"xyz"}`); st != 400 || !strings.Contains(body, "bad_token") {
		t.Fatalf("register with a malformed APNs token: %d %s", st, body)
	}
	sub := `{"provider":"webpush","subscription":{"endpoint":"http://127.0.0.1/x","keys":{"p256dh":"BCd","auth":"q1"}}}`
	if st, body := post(t, base+"/v1/register", "", sub); st != 400 || !strings.Contains(body, "bad_token") {
		t.Fatalf("register a subscription on a private http endpoint: %d %s", st, body)
	}
	if st, body := post(t, base+"/v1/register", "", `{"provider":"fcm","token":"xyz"}`); st != 400 || !strings.Contains(body, "unknown_provider") {
		t.Fatalf("register with a disabled provider: %d %s", st, body)
	}
	if st, _ := post(t, base+"/v1/wake", "", `{"handles":[]}`); st != 401 {
		t.Fatalf("wake without credential: %d", st)
	}
	if st, body := post(t, base+"/v1/wake", token, `{"handles":["x"]}`); st != 200 || body != `{"rejected":["x"]}`+"\n" {
		t.Fatalf("wake: %d %s", st, body)
	}

	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second): // a guard, not a wait: run returns at once
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(logs.String(), "bye") {
		t.Fatalf("logs: %s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the relay token was logged")
	}
}

func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]string{
		"unknown field":   `{"colour": "red"}`,
		"apns key file":   `{"apns": {"key_file": "/nonexistent.p8", "key_id": "k", "team_id": "t", "topic": "x"}}`,
		"fcm credentials": `{"fcm": {"credentials_file": "/nonexistent.json"}}`,
		"webpush keys":    `{"webpush": {"vapid_private_key": "a", "vapid_public_key": "b", "subscriber": "mailto:x@example.org"}}`,
	} {
		p := filepath.Join(dir, "c.json")
		os.WriteFile(p, []byte(c), 0o600)
		if err := run(context.Background(), []string{"--config", p}, io.Discard, io.Discard); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
