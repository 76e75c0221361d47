package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hushnet/hush/crypto/stream"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// nothingLeft checks that a refused send left nothing behind on r: no
// spool file (sealed or half), no message with bob, no outbox entry.
func nothingLeft(t *testing.T, r *running, what string) {
	t.Helper()
	if entries, _ := os.ReadDir(r.n.filesDir()); len(entries) != 0 {
		t.Errorf("%s: %d entries in HOME/files, want none", what, len(entries))
	}
	if ms, err := r.n.Messages("bob", 0); err != nil || len(ms) != 0 {
		t.Errorf("%s: %d messages with bob (%v), want none", what, len(ms), err)
	}
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	entries := 0
	r.n.tabs.outbox.Scan(func(_, _ []byte) error { entries++; return nil })
	if entries != 0 {
		t.Errorf("%s: %d outbox entries, want none", what, entries)
	}
}

// blobsOn counts the blob files in a relay's blob directory.
func blobsOn(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(entries)
}

// A file whose blob is over the relay's max_blob is refused at the send,
// with the limit named, before anything is sealed, stored or uploaded;
// one under it goes. With the relay out of reach, the limit it last
// advertised still holds, and a file under it goes (its upload waits).
func TestSendFileOverRelayLimit(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	cfg.MaxBlob = 512 << 10
	addr, stopRelay := startStoppableRelay(t, cfg)
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	b := startNodeCfg(t, Config{Home: newHome(t, "bob"), Relays: []string{addr}})
	defer b.stop(t)
	waitMailbox(t, a)
	befriend(t, a, b)
	ctx := context.Background()

	big, _ := writeFile(t, 600<<10, "OVER-THE-LIMIT")
	small, want := writeFile(t, 300<<10, "UNDER-THE-LIMIT")
	_, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: big, TxnID: "big"})
	if !errors.Is(err, ErrRelayLimit) || !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), "524288 bytes") ||
		!strings.Contains(err.Error(), "max_blob") {
		t.Fatalf("a file over the relay's max_blob: %v", err)
	}
	nothingLeft(t, a, "over max_blob")
	if n := blobsOn(t, cfg.BlobDir); n != 0 {
		t.Fatalf("the relay holds %d blobs after a refused send", n)
	}
	// A group file to a group that is not there is refused before it is
	// sealed too.
	if _, err := a.n.SendGroupFile(ctx, GroupFileRequest{Group: "nope", Path: small}); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("a group file to no group: %v", err)
	}
	nothingLeft(t, a, "no such group")

	m, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: small})
	if err != nil {
		t.Fatalf("a file under the limit: %v", err)
	}
	if m.File.Upload != UploadPending {
		t.Fatalf("sent through a relay, the file shows upload %q", m.File.Upload)
	}
	waitUploaded(t, a, m)
	waitFileDone(t, b, m.ID)
	saved := filepath.Join(t.TempDir(), "saved.bin")
	if err := b.n.SaveFile(ctx, m.ID, saved); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(saved); string(got) != string(want) {
		t.Fatal("the saved file differs")
	}

	// The relay goes away: its last limits still refuse the big file.
	stopRelay()
	if _, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: big}); !errors.Is(err, ErrRelayLimit) {
		t.Fatalf("over the limit the relay advertised before it went away: %v", err)
	}
	if _, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: small, Name: "again.bin"}); err != nil {
		t.Fatalf("under the last known limit, with the relay away: %v", err)
	}
}

// A relay's quota: the uploading network may hold 1 MiB of live blobs;
// a first file of 700 KiB uploads, a second is refused at the send (the
// relay has 300 KiB left for it), with nothing left behind.
func TestSendFileOverRelayQuota(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	cfg.BlobQuotaPerPeer, cfg.BlobQuotaPerIP = 1<<20, 1<<20
	addr := startRelay(t, cfg)
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	b := startNodeCfg(t, Config{Home: newHome(t, "bob"), Relays: []string{addr}})
	defer b.stop(t)
	waitMailbox(t, a)
	befriend(t, a, b)
	// Bob fetches nothing, so no receipt frees the first blob.
	if _, err := b.n.SetAutoDownload("alice", "", 0); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, _ := writeFile(t, 700<<10, "FIRST")
	m, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: first})
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, a, m)
	if n := blobsOn(t, cfg.BlobDir); n != 1 {
		t.Fatalf("%d blobs on the relay, want 1", n)
	}
	spool, _ := os.ReadDir(a.n.filesDir())
	msgs, _ := a.n.Messages("bob", 0)
	second, _ := writeFile(t, 700<<10, "SECOND")
	_, err = a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: second})
	if !errors.Is(err, ErrRelayLimit) || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("a file over what is left of the quota: %v", err)
	}
	blob := attach.BlobSize(stream.EncryptedSize(700 << 10))
	if left := uint64(1<<20) - uint64(max(blob, relay.MinBlobCharge)); !strings.Contains(err.Error(), strconv.FormatUint(left, 10)+" bytes") {
		t.Errorf("the error does not say what is left (%d bytes): %v", left, err)
	}
	if after, _ := os.ReadDir(a.n.filesDir()); len(after) != len(spool) {
		t.Errorf("HOME/files holds %d entries after the refusal, %d before", len(after), len(spool))
	}
	if after, _ := a.n.Messages("bob", 0); len(after) != len(msgs) {
		t.Errorf("%d messages after the refusal, %d before", len(after), len(msgs))
	}
	if n := blobsOn(t, cfg.BlobDir); n != 1 {
		t.Fatalf("%d blobs on the relay after the refusal, want 1", n)
	}
}
