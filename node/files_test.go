package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/stream"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// writeFile makes a file of size random bytes with a marker at its start.
func writeFile(t testing.TB, size int, marker string) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	copy(b, marker)
	path := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func waitFileDone(t testing.TB, r *running, id string) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var m Message
	waitFor(t, "the file's message", func() bool {
		var err error
		m, err = r.n.WaitFile(ctx, id)
		return err == nil || !errors.Is(err, ErrUnknownMessage)
	})
	if m.File == nil || m.File.State != FileDone {
		t.Fatalf("file: %+v", m.File)
	}
	return m
}

// noMarker checks that no file under root holds marker.
func noMarker(t *testing.T, root, marker string) {
	t.Helper()
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the file's plaintext", path)
		}
		return nil
	})
}

// writeOnlySysfs is a sysfs attribute with no read method (mode 0200),
// which refuses to be opened for reading even by root; "" (and the test
// says so) where there is none.
func writeOnlySysfs(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/sys/bus/pci/rescan", "/sys/bus/platform/drivers_probe", "/sys/bus/platform/uevent"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o444 == 0 {
			if f, err := os.Open(p); err == nil {
				f.Close()
				continue // readable after all
			}
			return p
		}
	}
	t.Log("no write-only sysfs attribute here: the unreadable-file case is not checked")
	return ""
}

// waitUploaded waits until the sender's relay upload of m's file is done.
func waitUploaded(t *testing.T, a *running, m Message) {
	t.Helper()
	hash, _ := hex.DecodeString(m.File.Hash)
	waitFor(t, "the upload", func() bool {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		var rec fileRec
		return a.n.getJSON(a.n.tabs.files, hash, &rec) == nil && !rec.Upload
	})
}

// waitBlobGone waits until the relay at addr answers that it has no blob
// for m's file.
func waitBlobGone(t *testing.T, addr string, m Message) {
	t.Helper()
	ri, err := relay.ParseRelayAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	h, err := newAnonHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ri.ID, ri.Addrs, time.Hour)
	var hash relay.BlobHash
	hb, _ := hex.DecodeString(m.File.Hash)
	copy(hash[:], hb)
	waitFor(t, "the relay to delete the blob", func() bool {
		_, err := (&relay.Client{}).BlobStat(context.Background(), h, ri, hash)
		return errors.Is(err, relay.ErrBlobUnknown)
	})
}

// A file sent directly: the recipient downloads it (at once: it is
// small), and saving it gives the same bytes; neither home holds its
// plaintext.
func TestSendFileDirect(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	const marker = "PLAINTEXT-MARKER-4711"
	path, want := writeFile(t, 3<<20+123, marker)
	m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path, Caption: "the report"})
	if err != nil {
		t.Fatal(err)
	}
	if m.File == nil || m.File.State != FileSent || m.File.Name != "report.bin" || m.Text != "the report" {
		t.Fatalf("sent %+v", m)
	}
	got := waitFileDone(t, b, m.ID)
	if got.File.Size != int64(len(want)) || got.Text != "the report" {
		t.Fatalf("received %+v", got)
	}
	out := filepath.Join(t.TempDir(), "saved.bin")
	if err := b.n.SaveFile(context.Background(), m.ID, out); err != nil {
		t.Fatal(err)
	}
	if saved, _ := os.ReadFile(out); !bytes.Equal(saved, want) {
		t.Fatal("the saved file differs")
	}
	noMarker(t, a.home, marker)
	noMarker(t, b.home, marker)
}

// Bad input: a directory, a missing file, a FIFO, a file that cannot be
// read, a file over the limit, saving before the download, a message
// without a file. Each refused send leaves nothing: no spool file, no
// message, no outbox entry.
func TestSendFileErrors(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	if _, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: t.TempDir()}); !errors.Is(err, ErrNotAFile) {
		t.Errorf("a directory: %v", err)
	}
	if _, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: filepath.Join(t.TempDir(), "none")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file: %v", err)
	}
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: fifo}); !errors.Is(err, ErrNotAFile) {
		t.Errorf("a FIFO: %v", err)
	}
	// The tests run as root, whom file modes do not stop; a write-only
	// sysfs attribute refuses a reader whoever it is (EACCES).
	if path := writeOnlySysfs(t); path != "" {
		_, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: path})
		if !errors.Is(err, ErrUnreadable) || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("a file that cannot be read (%s): %v", path, err)
		}
	}
	nothingLeft(t, a, "bad paths")
	a.n.cfg.MaxFileSize = 1 << 10
	path, _ := writeFile(t, 2<<10, "x")
	if _, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: path}); !errors.Is(err, ErrFileTooLarge) || !strings.Contains(err.Error(), "the limit is 1024") {
		t.Errorf("over the limit: %v", err)
	}
	nothingLeft(t, a, "over the node's limit")
	m, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "no file"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.n.SaveFile(ctx, m.ID, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoFile) {
		t.Errorf("a message without a file: %v", err)
	}
}

// The recipient stops half-way through a 40 MiB download and starts
// again: the download resumes by itself, the file is whole, and what was
// sent again is at most one window (the requests in flight).
func TestFileResumesAfterRestart(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	const size = 40 << 20
	path, want := writeFile(t, size, "RESUME-MARKER")
	m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the offer", func() bool {
		got, err := b.n.FetchFile(context.Background(), m.ID)
		return err == nil && got.File.State == FileDownloading
	})
	waitFor(t, "part of the file", func() bool {
		ms, _ := b.n.Files("alice")
		return len(ms) == 1 && ms[0].File.Bytes >= 4<<20
	})
	b.stop(t)
	served := a.n.fileServed.Load()
	b = startNode(t, b.home)
	defer b.stop(t)
	waitFileDone(t, b, m.ID)
	resent := a.n.fileServed.Load() - served
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.n.SaveFile(context.Background(), m.ID, out); err != nil {
		t.Fatal(err)
	}
	if saved, _ := os.ReadFile(out); !bytes.Equal(saved, want) {
		t.Fatal("the saved file differs")
	}
	t.Logf("served %d MiB before the restart, %d MiB after", served>>20, resent>>20)
	blob := attach.BlobSize(stream.EncryptedSize(size))
	if served+resent > blob+fetchWindow*fetchRequest {
		t.Fatalf("served %d bytes in all for a %d-byte blob: more than one window was sent again", served+resent, blob)
	}
}

// The recipient is away when the file is sent, and the sender is away
// when the recipient comes back: the file comes from the sender's relay,
// whole, and the relay deletes it once the recipient's receipt is in.
func TestFileThroughRelay(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	addr := startRelay(t, cfg)
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	b := startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	waitMailbox(t, a)
	waitMailbox(t, b)
	befriend(t, a, b)
	b.stop(t)
	const marker = "RELAYED-FILE-MARKER"
	path, want := writeFile(t, 2<<20+77, marker)
	m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, a, m)
	waitFor(t, "the message in bob's mailbox", func() bool {
		st, _ := a.n.WaitState(context.Background(), m.ID, StateQueued)
		return st.State == StateSent
	})
	a.stop(t)
	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	defer b.stop(t)
	waitFileDone(t, b, m.ID)
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.n.SaveFile(context.Background(), m.ID, out); err != nil {
		t.Fatal(err)
	}
	if saved, _ := os.ReadFile(out); !bytes.Equal(saved, want) {
		t.Fatal("the saved file differs")
	}
	for _, root := range []string{cfg.BlobDir, aHome, bHome} {
		noMarker(t, root, marker)
	}
	waitBlobGone(t, addr, m)
}

// The recipient is online and downloads the file from the sender before
// the sender's relay upload has even started: its receipt is kept and
// presented again until the relay has the blob, which it then deletes
// (a receipt presented only once was lost, and the blob stayed for its
// TTL).
func TestReceiptOwedUntilUploaded(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	addr := startRelay(t, cfg)
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	b := startNodeCfg(t, Config{Home: newHome(t, "bob"), Relays: []string{addr}})
	defer b.stop(t)
	waitMailbox(t, a)
	befriend(t, a, b)
	release := make(chan struct{})
	taps.Store(&tapFuncs{upload: func(*Node) { <-release }})
	defer taps.Store(nil)
	path, want := writeFile(t, 1<<20+9, "EARLY-RECEIPT-MARKER")
	m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	waitFileDone(t, b, m.ID)
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.n.SaveFile(context.Background(), m.ID, out); err != nil {
		t.Fatal(err)
	}
	if saved, _ := os.ReadFile(out); !bytes.Equal(saved, want) {
		t.Fatal("the saved file differs")
	}
	waitFor(t, "bob's receipt to be tried once", func() bool {
		b.n.mu.Lock()
		defer b.n.mu.Unlock()
		var rec fileRec
		hash, _ := hex.DecodeString(m.File.Hash)
		return b.n.getJSON(b.n.tabs.files, hash, &rec) == nil && len(rec.Owed) == 1
	})
	close(release)
	waitUploaded(t, a, m)
	waitBlobGone(t, addr, m)
}

// A file to a group of four goes to the relay once and reaches every
// member; once each member's receipt is in, the relay deletes it.
func TestGroupFileOneUpload(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	addr := startRelay(t, cfg)
	nodes := makeGroupOn(t, "club", []string{addr, addr, addr, addr}, waitFor)
	path, want := writeFile(t, 1<<20+5, "GROUP-FILE-MARKER")
	m, err := nodes[0].n.SendGroupFile(context.Background(), GroupFileRequest{Group: "club", Path: path, Caption: "for all"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range nodes[1:] {
		waitFileDone(t, r, m.ID)
		out := filepath.Join(t.TempDir(), "out.bin")
		if err := r.n.SaveFile(context.Background(), m.ID, out); err != nil {
			t.Fatal(err)
		}
		if saved, _ := os.ReadFile(out); !bytes.Equal(saved, want) {
			t.Fatal("a member's file differs")
		}
	}
	// One upload: the relay held one blob, and deletes it after the
	// three members' receipts.
	waitUploaded(t, nodes[0], m)
	waitBlobGone(t, addr, m)
	if entries, err := os.ReadDir(cfg.BlobDir); err != nil || len(entries) != 0 {
		t.Fatalf("the blob directory holds %d entries (%v)", len(entries), err)
	}
	noMarker(t, cfg.BlobDir, "GROUP-FILE-MARKER")
}

// Files on the account's own devices: one sent before the phone was
// linked comes with the history transfer, one sent from the laptop after
// comes in its transcript, one bob sends reaches both; the phone
// downloads each (from the laptop, or bob's device) and saves the same
// bytes.
func TestFilesOnOwnDevices(t *testing.T) {
	laptop, bob := pair(t)
	defer laptop.stop(t)
	defer bob.stop(t)
	ctx := context.Background()
	beforePath, before := writeFile(t, 300<<10, "BEFORE-LINK-MARKER")
	old, err := laptop.n.SendFile(ctx, SendFileRequest{To: "bob", Path: beforePath, Caption: "before"})
	if err != nil {
		t.Fatal(err)
	}
	waitFileDone(t, bob, old.ID)
	phoneHome := linkDevice(t, laptop, "phone")
	phone := startNode(t, phoneHome)
	defer phone.stop(t)
	waitEntry(t, laptop, phone)
	waitEntry(t, phone, laptop)

	// Bob sends first: he does not know the phone yet, so the phone has
	// the message from the laptop (a sync copy) and must be let to fetch
	// the file from bob once bob learns of it.
	bobPath, fromBob := writeFile(t, 100<<10, "FROM-BOB-MARKER")
	got, err := bob.n.SendFile(ctx, SendFileRequest{To: "alice", Path: bobPath, Caption: "from bob"})
	if err != nil {
		t.Fatal(err)
	}
	afterPath, after := writeFile(t, 200<<10, "AFTER-LINK-MARKER")
	sent, err := laptop.n.SendFile(ctx, SendFileRequest{To: "bob", Path: afterPath, Caption: "after"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		dir  string
		want []byte
	}{{old.ID, "out", before}, {sent.ID, "out", after}, {got.ID, "in", fromBob}} {
		m := waitFileDone(t, phone, c.id)
		if m.Direction != c.dir {
			t.Fatalf("the phone shows %s as %q", c.id, m.Direction)
		}
		out := filepath.Join(t.TempDir(), "saved.bin")
		if err := phone.n.SaveFile(ctx, c.id, out); err != nil {
			t.Fatal(err)
		}
		if saved, _ := os.ReadFile(out); !bytes.Equal(saved, c.want) {
			t.Fatalf("the phone's copy of %s differs", c.id)
		}
	}
	for _, marker := range []string{"BEFORE-LINK-MARKER", "AFTER-LINK-MARKER", "FROM-BOB-MARKER"} {
		noMarker(t, phoneHome, marker)
	}
}

// The auto-download policy per conversation: off leaves a small file
// offered (nothing is fetched) until asked; a limit fetches what is
// under it only; a negative limit goes back to the default. Bad
// requests are refused.
func TestAutoDownloadPolicy(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	if got, err := b.n.AutoDownloadOf("alice", ""); err != nil || !got.Default || got.Limit != AutoFetchSize {
		t.Fatalf("the default policy: %+v, %v", got, err)
	}
	if got, err := b.n.SetAutoDownload("alice", "", 0); err != nil || got.Default || got.Limit != 0 {
		t.Fatalf("off: %+v, %v", got, err)
	}
	// offered sends a file and then a text; once the text is in, the
	// file's message (before it) has been offered.
	offered := func(size int) Message {
		t.Helper()
		path, _ := writeFile(t, size, "POLICY-MARKER")
		m, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: path})
		if err != nil {
			t.Fatal(err)
		}
		after, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "after the file"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the text after the file", func() bool {
			_, err := b.n.WaitState(ctx, after.ID, StateReceived)
			return err == nil
		})
		return find(t, b.n, "alice", m.ID)
	}
	served := a.n.fileServed.Load()
	if m := offered(10 << 10); m.File.State != FileOffered {
		t.Fatalf("with auto-download off, a small file is %q", m.File.State)
	} else {
		b.n.mu.Lock()
		running := len(b.n.fetches)
		b.n.mu.Unlock()
		if running != 0 || a.n.fileServed.Load() != served {
			t.Fatal("a file was fetched with auto-download off")
		}
		if _, err := b.n.FetchFile(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		waitFileDone(t, b, m.ID)
	}
	if _, err := b.n.SetAutoDownload("alice", "", 100<<10); err != nil {
		t.Fatal(err)
	}
	if m := offered(200 << 10); m.File.State != FileOffered {
		t.Fatalf("a file over the limit is %q", m.File.State)
	}
	waitFileDone(t, b, offered(50<<10).ID)
	if got, err := b.n.SetAutoDownload("alice", "", -1); err != nil || !got.Default {
		t.Fatalf("back to the default: %+v, %v", got, err)
	}
	for name, err := range map[string]error{
		"neither":  func() error { _, err := b.n.SetAutoDownload("", "", 1); return err }(),
		"both":     func() error { _, err := b.n.SetAutoDownload("alice", "club", 1); return err }(),
		"unknown":  func() error { _, err := b.n.SetAutoDownload("carol", "", 1); return err }(),
		"no group": func() error { _, err := b.n.AutoDownloadOf("", "club"); return err }(),
		"too big":  func() error { _, err := b.n.SetAutoDownload("alice", "", DefaultMaxFileSize+1); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A file whose every source is gone (here the sender's only copy) ends
// expired, with the reason, and nothing is left where it would be saved.
func TestFileExpired(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	if _, err := b.n.SetAutoDownload("alice", "", 0); err != nil {
		t.Fatal(err)
	}
	path, _ := writeFile(t, 70<<10, "EXPIRED-MARKER")
	m, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the offer", func() bool {
		_, err := b.n.WaitState(ctx, m.ID, StateReceived)
		return err == nil
	})
	hash, _ := hex.DecodeString(m.File.Hash)
	if err := os.Remove(a.n.blobPath([attach.HashSize]byte(hash), ".blob")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.FetchFile(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got, err := b.n.WaitFile(wctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.File.State != FileExpired || !strings.Contains(got.File.Error, "no longer has the file") {
		t.Fatalf("file: %+v", got.File)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.n.SaveFile(ctx, m.ID, out); !errors.Is(err, ErrFileNotReady) {
		t.Fatalf("saving an expired file: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("something was written where the file would be saved")
	}
}

// A byte flipped in the relay's copy of a blob (on its disk, after the
// upload): the recipient, with the sender away, fetches from the relay,
// rejects the chunk and fails the file as corrupted; its .part holds only
// the chunks before the damaged one, and nothing is saved.
func TestFileTamperedOnRelay(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	addr := startRelay(t, cfg)
	aHome, bHome := newHome(t, "alice"), newHome(t, "bob")
	a := startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	b := startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	waitMailbox(t, a)
	waitMailbox(t, b)
	befriend(t, a, b)
	b.stop(t)
	const size = 2<<20 + 77
	path, _ := writeFile(t, size, "TAMPERED-MARKER")
	m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, a, m)
	waitFor(t, "the message in bob's mailbox", func() bool {
		st, _ := a.n.WaitState(context.Background(), m.ID, StateQueued)
		return st.State == StateSent
	})
	a.stop(t)
	// The relay's blob file is the one of the blob's size.
	blob := attach.BlobSize(stream.EncryptedSize(size))
	const flip = 1<<20 + 100 // in the 17th chunk (index 16)
	var flipped bool
	entries, _ := os.ReadDir(cfg.BlobDir)
	for _, e := range entries {
		p := filepath.Join(cfg.BlobDir, e.Name())
		if fi, err := os.Stat(p); err != nil || fi.Size() != blob {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		var c [1]byte
		f.ReadAt(c[:], flip)
		c[0] ^= 0x40
		f.WriteAt(c[:], flip)
		f.Close()
		flipped = true
	}
	if !flipped {
		t.Fatal("no blob of the file's size on the relay's disk")
	}
	b = startNodeCfg(t, Config{Home: bHome, Relays: []string{addr}})
	defer b.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got Message
	waitFor(t, "the file's end", func() bool {
		got, err = b.n.WaitFile(ctx, m.ID)
		return err == nil || !errors.Is(err, ErrUnknownMessage)
	})
	if got.File == nil || got.File.State != FileFailed || !strings.Contains(got.File.Error, "corrupted") {
		t.Fatalf("file: %+v", got.File)
	}
	hash, _ := hex.DecodeString(m.File.Hash)
	part, err := os.Stat(b.n.blobPath([attach.HashSize]byte(hash), ".part"))
	if err != nil {
		t.Fatal(err)
	}
	sealed := int64(stream.ChunkSize + stream.TagSize)
	if start := stream.NonceSize + (flip-stream.NonceSize)/sealed*sealed; part.Size() > start {
		t.Errorf("the .part holds %d bytes, past the damaged chunk's start %d", part.Size(), start)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.n.SaveFile(context.Background(), m.ID, out); !errors.Is(err, ErrFileNotReady) {
		t.Fatalf("saving a corrupted file: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("something was written where the file would be saved")
	}
}

// The sending device stops half-way through a direct download and
// starts again: the recipient's download resumes from its last verified
// chunk, and the restarted sender serves at most one window more than
// what was left (the bytes it serves after the restart are counted); the
// saved file is the original.
func TestFileResumesAfterSenderRestart(t *testing.T) {
	a, b := pair(t)
	defer b.stop(t)
	const size = 40 << 20
	path, want := writeFile(t, size, "SENDER-RESTART-MARKER")
	// Bob's download holds once it has 8 MiB verified, until alice is
	// down: the cut comes at a known place, whatever the machine's speed.
	var stoppedAt atomic.Int64
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	taps.Store(&tapFuncs{fed: func(n *Node, verified int64) {
		if n == b.n && verified >= 8<<20 {
			once.Do(func() {
				stoppedAt.Store(verified)
				close(reached)
				<-release
			})
		}
	}})
	defer taps.Store(nil)
	ctx := context.Background()
	m, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: path})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the offer", func() bool {
		got, err := b.n.FetchFile(ctx, m.ID)
		return err == nil && got.File.State == FileDownloading
	})
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("bob's download did not reach 8 MiB")
	}
	a.stop(t)
	before := a.n.fileServed.Load()
	close(release)

	a = startNode(t, a.home)
	defer a.stop(t)
	// Alice's new address reaches bob with her next message.
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "back again"}); err != nil {
		t.Fatal(err)
	}
	waitFileDone(t, b, m.ID)
	after := a.n.fileServed.Load()
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.n.SaveFile(ctx, m.ID, out); err != nil {
		t.Fatal(err)
	}
	if saved, _ := os.ReadFile(out); !bytes.Equal(saved, want) {
		t.Fatal("the saved file differs")
	}
	blob := attach.BlobSize(stream.EncryptedSize(size))
	left := blob - stoppedAt.Load()
	t.Logf("bob had %d of %d bytes verified at the stop; alice served %d bytes before it, %d after (%d were left)",
		stoppedAt.Load(), blob, before, after, left)
	if after == 0 || after > left+fetchWindow*fetchRequest {
		t.Fatalf("the restarted sender served %d bytes; %d were left, and a resume sends at most one window (%d) more",
			after, left, fetchWindow*fetchRequest)
	}
	if before+after > blob+fetchWindow*fetchRequest {
		t.Fatalf("served %d bytes in all for a %d-byte blob: more than one window was sent again", before+after, blob)
	}
}

// A file's message may reach its recipient before the sender's commit
// lands (a message under a reserved ratchet index leaves while the
// commit runs), and the recipient's auto-download asks for the file at
// once. The sender's commit is held here until that request has come:
// the sender waits for the commit and serves the file. (Answering that
// it has no such file made the recipient mark the file expired.)
func TestFileAskedForBeforeItsCommitLands(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	warm, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "warm-up"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the warm-up", func() bool {
		_, err := b.n.WaitState(ctx, warm.ID, StateReceived)
		return err == nil
	})
	asked := make(chan struct{})
	var askedOnce sync.Once
	// Whatever happens, the sender is not left blocked when the nodes stop.
	defer askedOnce.Do(func() { close(asked) })
	var hold atomic.Bool
	hold.Store(true)
	taps.Store(&tapFuncs{
		commitWait: func(n *Node, tx *txn) {
			if n == a.n && hold.CompareAndSwap(true, false) {
				<-asked // the file's commit waits for bob's request
			}
		},
		fileWait: func(n *Node) { askedOnce.Do(func() { close(asked) }) },
	})
	defer taps.Store(nil)
	path, _ := writeFile(t, 20<<10, "EARLY-MARKER")
	sent := make(chan error, 1)
	go func() {
		_, err := a.n.SendFile(ctx, SendFileRequest{To: "bob", Path: path})
		sent <- err
	}()
	var m Message
	waitFor(t, "the file at bob, fetched or failed", func() bool {
		msgs, err := b.n.Messages("alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range msgs {
			if x.File != nil && (x.File.State == FileDone || x.File.State == FileExpired || x.File.State == FileFailed) {
				m = x
				return true
			}
		}
		return false
	})
	askedOnce.Do(func() { close(asked) }) // never leave the sender blocked
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if m.File.State != FileDone {
		t.Fatalf("bob's file: %+v", m.File)
	}
}
