package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/stream"
	"github.com/hushnet/hush/node/attach"
)

// The direct download's window (files.md §19.3): 4 requests of 1 MiB.
// What a killed receiver is sent again is at most the window, plus what
// it had received and not kept: the data frame (64 KiB) it was holding
// and the part of a chunk it cuts off at the restart (the nonce and the
// first chunk are the largest unit verified at once).
const (
	fileWindow = 4 << 20
	resendMax  = fileWindow + 64<<10 + stream.NonceSize + stream.ChunkSize + stream.TagSize
)

// TestBigFileKillResume (issue 16): a 200 MiB file sent directly with
// `hush file send`; the receiving daemon is killed with SIGKILL half-way
// through `hush file get` and started again. The download resumes by
// itself, the saved file's SHA-256 is the original's, the sender sent
// again at most one window (and a frame and a chunk) of what it had
// already sent, and neither daemon's resident set passed 100 MiB.
//
// The daemons are built without -race whatever the test's flags, so the
// full size runs under `make test` too (14–30 s on the 2-core VM);
// -short scales the file down to 32 MiB, still killed half-way.
func TestBigFileKillResume(t *testing.T) {
	size := int64(200 << 20)
	if testing.Short() {
		size = 32 << 20
	}
	const rssLimit = 100 << 20
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.startDebug() // the sender logs what each /hush/file/1 stream wrote
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")

	path, want := randomFile(t, size)
	t0 := time.Now()
	id := strings.Fields(alice.mustRun("file", "send", "bob", path))[0]
	t.Logf("sealed and offered %d MiB in %v", size>>20, time.Since(t0).Round(time.Millisecond))
	eventually(t, "the offer at bob", func() bool {
		f := bob.fileOf(id)
		return f != nil && f.State == apitypes.FileOffered
	})

	var peak rssPeak
	peak.sample(t, alice, bob)
	t.Logf("peak RSS before the download: alice %d MiB, bob %d MiB", peak.alice>>20, peak.bob>>20)
	// `hush file get` follows the download; bob is killed under it.
	sub := bob.subscribe()
	dst := filepath.Join(t.TempDir(), "got.bin")
	get := exec.Command(bob.bin, "--home", bob.home, "file", "get", id, "--out", dst)
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	waitFileEvent(t, sub, id, "half the file", func(f *apitypes.FileInfo) bool {
		peak.sample(t, alice, bob)
		return f.State == apitypes.FileDownloading && f.Bytes >= size/2
	})
	peak.sample(t, alice, bob) // the last reading of this bob: VmHWM is its peak
	bob.kill()
	get.Wait() // the CLI lost its daemon: an error, as a user would see
	sub.Close()
	part, _ := os.Stat(filepath.Join(bob.home, "files", hashOf(t, alice, id)+".part"))
	t.Logf("killed bob after %v with %d MiB in its .part", time.Since(t1).Round(time.Millisecond), part.Size()>>20)

	// Nothing asks for the file again: the daemon resumes it at start.
	bob.start()
	t2 := time.Now()
	sub = bob.subscribe()
	if f := bob.fileOf(id); f.State != apitypes.FileDone {
		waitFileEvent(t, sub, id, "the resumed download's end", func(f *apitypes.FileInfo) bool {
			peak.sample(t, alice, bob)
			if f.State == apitypes.FileFailed {
				t.Fatalf("the resumed download failed: %s", f.Error)
			}
			return f.State == apitypes.FileDone
		})
	}
	peak.sample(t, alice, bob)
	sub.Close()
	t.Logf("resumed download done %v after the restart", time.Since(t2).Round(time.Millisecond))

	bob.mustRun("file", "get", id, "--out", dst)
	if got := sha256File(t, dst); got != want {
		t.Fatalf("the saved file's SHA-256 is %x, want %x", got, want)
	}

	// Every stream alice served ends (bob closes his after the last
	// byte; the killed one ended with the kill) and is logged with the
	// bytes it wrote. All of them together less the blob is what was sent
	// twice.
	blob := attach.BlobSize(stream.EncryptedSize(size))
	var written int64
	var streams int
	eventually(t, "both of alice's streams logged", func() bool {
		written, streams = streamBytes(alice.log.String())
		return streams >= 2 && written >= blob
	})
	t.Logf("alice wrote %d streams, %d bytes for a %d-byte blob: %d KiB sent again; peak RSS alice %d MiB, bob %d MiB",
		streams, written, blob, (written-blob)>>10, peak.alice>>20, peak.bob>>20)
	if written-blob > resendMax {
		t.Errorf("%d bytes sent again after the restart, more than one window, a frame and a chunk (%d)", written-blob, resendMax)
	}
	if peak.alice > rssLimit || peak.bob > rssLimit {
		t.Errorf("peak RSS: alice %d MiB, bob %d MiB; the limit is %d MiB", peak.alice>>20, peak.bob>>20, rssLimit>>20)
	}
}

// startDebug is start with debug logging.
func (u *user) startDebug() {
	u.t.Helper()
	u.launch("--debug")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, code := u.run("contact", "list"); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("daemon did not start: %s", u.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fileOf is the file of message id from `hush file list`, or nil.
func (u *user) fileOf(id string) *apitypes.FileInfo {
	u.t.Helper()
	for _, contact := range []string{"alice", "bob"} {
		out, _, code := u.run("file", "list", contact, "--json")
		if code != 0 {
			continue
		}
		var ms []apitypes.Message
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			u.t.Fatal(err)
		}
		for _, m := range ms {
			if m.ID == id {
				return m.File
			}
		}
	}
	return nil
}

// hashOf is the hex blob hash of a message's file.
func hashOf(t *testing.T, u *user, id string) string {
	f := u.fileOf(id)
	if f == nil {
		t.Fatalf("no file %s", id)
	}
	return f.Hash
}

// subscribe opens u's event stream.
func (u *user) subscribe() *api.Subscription {
	u.t.Helper()
	sub, err := api.NewClient(filepath.Join(u.home, api.SocketFile)).Subscribe(context.Background(), 0)
	if err != nil {
		u.t.Fatal(err)
	}
	return sub
}

// waitFileEvent reads events until one about message id's file satisfies
// cond.
func waitFileEvent(t *testing.T, sub *api.Subscription, id, what string, cond func(*apitypes.FileInfo) bool) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-sub.Events:
			if !ok {
				t.Fatalf("waiting for %s: the event stream ended: %v", what, sub.Err())
			}
			if ev.Message != nil && ev.Message.ID == id && ev.Message.File != nil && cond(ev.Message.File) {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// randomFile writes size random bytes to a new file and returns its path
// and SHA-256.
func randomFile(t *testing.T, size int64) (string, [32]byte) {
	path := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, [32]byte(h.Sum(nil))
}

func sha256File(t *testing.T, path string) [32]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

var streamEnded = regexp.MustCompile(`msg="file stream ended" bytes=(\d+)`)

// streamBytes sums the bytes of the /hush/file/1 streams a daemon's
// debug log says it served.
func streamBytes(log string) (written int64, streams int) {
	for _, m := range streamEnded.FindAllStringSubmatch(log, -1) {
		k, _ := strconv.ParseInt(m[1], 10, 64)
		written += k
		streams++
	}
	return written, streams
}

// rssPeak keeps the highest VmHWM read of each side's daemons.
type rssPeak struct{ alice, bob int64 }

func (p *rssPeak) sample(t *testing.T, alice, bob *user) {
	p.alice = max(p.alice, vmHWM(t, alice))
	p.bob = max(p.bob, vmHWM(t, bob))
}

// vmHWM is the peak resident set of u's daemon, in bytes.
func vmHWM(t *testing.T, u *user) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(u.daemon.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
