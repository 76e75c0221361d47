package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/relay"
)

// buildRelay builds hush-relay into a temporary directory.
func buildRelay(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hush-relay")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startProc starts the relay and returns its process and first address.
func startProc(t testing.TB, bin, dir string, extra ...string) (*exec.Cmd, peer.AddrInfo) {
	t.Helper()
	args := append([]string{"--data", dir, "--listen", "/ip4/127.0.0.1/tcp/0"}, extra...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if testing.Verbose() == false {
		cmd.Stderr = nil
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no address line: %v", err)
	}
	ai, err := relay.ParseRelayAddr(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return cmd, ai
}

func clientHost(t testing.TB) host.Host {
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableMetrics(), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func sealed1K(t testing.TB) []byte {
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	body := make([]byte, 900)
	rand.Read(body)
	env, err := envelope.Seal(k.PublicKey(), &envelope.Inner{Kind: envelope.KindMessage, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestCrashAfterReceipts kills the relay with SIGKILL right after the
// receipts: every receipted deposit must be delivered after a restart.
func TestCrashAfterReceipts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay")
	}
	bin := buildRelay(t)
	dir := t.TempDir()
	cmd, ai := startProc(t, bin, dir)
	h := clientHost(t)
	c := &relay.Client{}
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cr, err := c.Create(ctx, h, ai, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n, workers = 400, 16
	var mu sync.Mutex
	receipted := map[relay.MessageID]bool{}
	var wg sync.WaitGroup
	for range workers {
		d, err := c.OpenDepositor(ctx, h, ai)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / workers {
				id, err := d.Deposit(cr.Deposit, sealed1K(t))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				receipted[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(receipted) != n {
		t.Fatalf("%d receipts, want %d", len(receipted), n)
	}

	_, ai2 := startProc(t, bin, dir)
	if ai2.ID != ai.ID {
		t.Fatal("host key did not persist")
	}
	h2 := clientHost(t)
	sub, err := c.Subscribe(ctx, h2, ai2, cr.Mailbox, key, false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := 0
	timeout := time.After(20 * time.Second)
	for got < n {
		select {
		case d, ok := <-sub.Messages():
			if !ok {
				t.Fatalf("ended after %d: %v", got, sub.Err())
			}
			if !receipted[d.Message] {
				t.Fatal("delivered an envelope without a receipt")
			}
			delete(receipted, d.Message)
			got++
		case <-timeout:
			t.Fatalf("only %d of %d receipted envelopes after kill -9", got, n)
		}
	}
}

func TestConfigFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"max_messages": 5, "listen": ["/ip4/127.0.0.1/tcp/1"], "bogus": 1}`), 0o600)
	var cfg fileConfig
	if err := readConfig(p, &cfg); err == nil {
		t.Fatal("unknown field accepted")
	}
	os.WriteFile(p, []byte(`{"max_messages": 5, "ttl": "1h", "listen": ["/ip4/127.0.0.1/tcp/1"]}`), 0o600)
	cfg = fileConfig{}
	if err := readConfig(p, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MaxMessages != 5 || time.Duration(cfg.TTL) != time.Hour || cfg.Listen[0] != "/ip4/127.0.0.1/tcp/1" {
		t.Fatalf("parsed %+v", cfg)
	}
	k1, err := loadHostKey(filepath.Join(dir, "host.key"))
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := loadHostKey(filepath.Join(dir, "host.key"))
	if !k1.Equals(k2) {
		t.Fatal("host key changed")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "host.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v", fi.Mode())
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(t testing.TB, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// A negative value in the config file is refused at start, naming the
// field, instead of silently becoming the default. A negative rate still
// turns its limit off.
func TestConfigRefusesNegativeValues(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	for field, value := range map[string]string{
		"ttl": `"-1h"`, "max_messages": `-5`, "max_store_bytes": `-1`, "idle_timeout": `-30`,
		"peer_burst": `-1`, "max_topics": `-1`, "conn_low": `-1`, "conn_high": `-8`,
		"max_mailboxes_per_ip": `-1`, "topic_file_burst": `-2`, "max_frame_bytes": `-1`,
		"max_blob": `-1`, "blob_ttl": `"-1h"`, "blob_quota_per_peer": `-1`, "blob_store_bytes": `-1`,
		"blob_quota_per_ip": `-1`, "link_ttl": `"-1h"`, "link_max_records": `-1`, "link_records_per_peer": `-1`,
		"link_records_per_ip": `-1`,
	} {
		os.WriteFile(p, []byte(`{"`+field+`": `+value+`}`), 0o600)
		var cfg fileConfig
		err := readConfig(p, &cfg)
		if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "negative") {
			t.Errorf("%s = %s: got %v, want an error naming the field", field, value, err)
		}
	}
	os.WriteFile(p, []byte(`{"blob_quota_per_peer": 3000000000, "blob_quota_per_ip": 2000000000}`), 0o600)
	if err := readConfig(p, &fileConfig{}); err == nil || !strings.Contains(err.Error(), "blob_quota_per_ip") {
		t.Errorf("blob_quota_per_ip below blob_quota_per_peer: got %v, want an error naming it", err)
	}
	os.WriteFile(p, []byte(`{"link_records_per_peer": 50, "link_records_per_ip": 20}`), 0o600)
	if err := readConfig(p, &fileConfig{}); err == nil || !strings.Contains(err.Error(), "link_records_per_ip") {
		t.Errorf("link_records_per_ip below link_records_per_peer: got %v, want an error naming it", err)
	}
	os.WriteFile(p, []byte(`{"peer_rate": -1, "ip_rate": -1, "create_ip_per_hour": -1, "topic_file_rate": -1, "topic_file_ip_rate": -1}`), 0o600)
	if err := readConfig(p, &fileConfig{}); err != nil {
		t.Fatalf("negative rates (no limit): %v", err)
	}
	// Through run, the relay stops before touching its data directory.
	os.WriteFile(p, []byte(`{"ttl": "-1h"}`), 0o600)
	data := filepath.Join(dir, "data")
	err := run([]string{"--config", p, "--data", data, "--listen", "/ip4/127.0.0.1/tcp/0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Fatalf("run with a negative ttl: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("data directory created despite the bad config (%v)", err)
	}
}

// TestBlobStoreInProcess uploads and downloads a blob through the relay
// binary: its files go under <data>/blobs, and a kill -9 and restart
// keeps an acknowledged upload, which resumes. With no_blob_store the
// protocol is not offered.
func TestBlobStoreInProcess(t *testing.T) {
	bin := buildRelay(t)
	dir := t.TempDir()
	cmd, ai := startProc(t, bin, dir)
	h := clientHost(t)
	var c relay.Client
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data := make([]byte, 3<<20+5)
	rand.Read(data)
	hash := relay.BlobHash(sha256.Sum256(data))
	cut := &cutSource{data: data, limit: 2 << 20}
	if _, err := c.PutBlob(ctx, h, ai, hash, int64(len(data)), nil, cut); err == nil {
		t.Fatal("cut upload succeeded")
	}
	cmd.Process.Kill()
	cmd.Wait()
	h.Close()
	_, ai = startProc(t, bin, dir)
	h = clientHost(t)
	sent, err := c.PutBlob(ctx, h, ai, hash, int64(len(data)), nil, bytes.NewReader(data))
	if err != nil || sent != int64(len(data))-2<<20 {
		t.Fatalf("resume after kill -9: sent %d, %v", sent, err)
	}
	got, err := c.ReadBlob(ctx, h, ai, hash, 0, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("blob directory: %v, %v", entries, err)
	}

	off := t.TempDir()
	p := filepath.Join(off, "c.json")
	os.WriteFile(p, []byte(`{"no_blob_store": true}`), 0o600)
	_, ai = startProc(t, bin, filepath.Join(off, "data"), "--config", p)
	if _, err := c.BlobLimits(ctx, clientHost(t), ai); err == nil {
		t.Fatal("no_blob_store relay answered")
	}
	if _, err := os.Stat(filepath.Join(off, "data", "blobs")); err == nil {
		t.Fatal("no_blob_store relay made a blob directory")
	}
}

// cutSource serves data up to limit bytes, then fails.
type cutSource struct {
	data  []byte
	limit int64
}

func (s *cutSource) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.limit {
		return 0, errors.New("source cut")
	}
	return copy(p, s.data[off:]), nil
}

// TestLinkStoreInProcess puts a link record through the relay binary: a
// kill -9 and restart keeps it and its owner, and the owner deletes it.
// With no_link_store the protocol is not offered.
func TestLinkStoreInProcess(t *testing.T) {
	bin := buildRelay(t)
	dir := t.TempDir()
	cmd, ai := startProc(t, bin, dir)
	var c relay.Client
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, owner, _ := ed25519.GenerateKey(rand.Reader)
	var id relay.LinkID
	rand.Read(id[:])
	record := make([]byte, 4000)
	rand.Read(record)
	if err := c.PutLink(ctx, clientHost(t), ai, owner, id, 1, record); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	_, ai = startProc(t, bin, dir)
	got, err := c.GetLink(ctx, clientHost(t), ai, id)
	if err != nil || !bytes.Equal(got, record) {
		t.Fatalf("get after kill -9: %d bytes, %v", len(got), err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := c.DeleteLink(ctx, clientHost(t), ai, other, id, 2); !errors.Is(err, relay.ErrLinkDenied) {
		t.Fatalf("delete by another key: %v", err)
	}
	if err := c.DeleteLink(ctx, clientHost(t), ai, owner, id, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetLink(ctx, clientHost(t), ai, id); !errors.Is(err, relay.ErrLinkUnknown) {
		t.Fatalf("get after the delete: %v", err)
	}

	off := t.TempDir()
	p := filepath.Join(off, "c.json")
	os.WriteFile(p, []byte(`{"no_link_store": true}`), 0o600)
	_, ai = startProc(t, bin, filepath.Join(off, "data"), "--config", p)
	if _, err := c.GetLink(ctx, clientHost(t), ai, id); err == nil || errors.Is(err, relay.ErrLinkUnknown) {
		t.Fatalf("no_link_store relay answered: %v", err)
	}
}
