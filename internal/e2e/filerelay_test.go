package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/stream"
	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/node/attach"
)

// Files through a relay process (issue 16, "real processes on
// 127.0.0.1"): the relay's limits refused at `hush file send`, a
// download from the relay resumed across a SIGKILL of the relay, and a
// group of four served by one upload.

// startWithConfig runs u's daemon with relays and more config.json keys.
func (u *user) startWithConfig(extra map[string]any, relays ...*relayProc) {
	u.t.Helper()
	cfg := map[string]any{}
	for k, v := range extra {
		cfg[k] = v
	}
	var addrs []string
	for _, r := range relays {
		addrs = append(addrs, r.addr)
	}
	cfg["relays"] = addrs
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(u.home, "config.json"), b, 0o600); err != nil {
		u.t.Fatal(err)
	}
	u.start()
}

// spoolEntries counts what u's HOME/files holds.
func spoolEntries(t *testing.T, u *user) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(u.home, "files"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(entries)
}

// A relay that keeps blobs of at most 512 KiB, and a daemon whose own
// limit is 2 MiB: a file over either is refused by `hush file send` with
// the limit named, and leaves nothing (no spool file, no message, nothing
// put on the relay). A file under both goes, and `hush file send`
// returns once the relay has it whole.
func TestFileRelayLimitCLI(t *testing.T) {
	r := newRelay(t, `{"max_blob": 524288}`)
	r.metrics = freeAddr(t)
	r.start()
	defer r.stop(syscall.SIGTERM)
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.startWithConfig(map[string]any{"max_file_size": 2 << 20}, r)
	defer alice.stop()
	bob.startWithRelays(r)
	defer bob.stop()
	alice.waitMailboxes(1)
	befriend(t, alice, bob, "alice", "bob")
	metric := func(name string) float64 { return relayMetric(t, r, name) }

	overRelay, _ := randomFile(t, 600<<10)
	_, errs, code := alice.run("file", "send", "bob", overRelay)
	if code != 1 || !strings.Contains(errs, "too large for the relay") || !strings.Contains(errs, "524288 bytes") ||
		!strings.Contains(errs, "max_blob") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("a file over the relay's max_blob: exit %d: %q", code, errs)
	}
	overNode, _ := randomFile(t, 3<<20)
	_, errs, code = alice.run("file", "send", "bob", overNode)
	if code != 1 || !strings.Contains(errs, "file is too large") || !strings.Contains(errs, "the limit is 2097152") {
		t.Fatalf("a file over the daemon's max_file_size: exit %d: %q", code, errs)
	}
	if n := spoolEntries(t, alice); n != 0 {
		t.Errorf("alice's HOME/files holds %d entries after two refusals", n)
	}
	if ms := alice.messages("bob"); len(ms) != 0 {
		t.Errorf("alice has %d messages with bob after two refusals", len(ms))
	}
	if puts := metric("hush_relay_blob_puts_total"); puts != 0 {
		t.Errorf("the relay had %v blob puts after two refusals", puts)
	}

	under, want := randomFile(t, 300<<10)
	id := strings.Fields(alice.mustRun("file", "send", "bob", under))[0]
	// The send returned after the upload: the relay has the blob whole.
	if done := metric("hush_relay_blobs_completed_total"); done != 1 {
		t.Fatalf("%v blobs complete on the relay when file send returned, want 1", done)
	}
	eventually(t, "the file's message at bob", func() bool {
		ms := bob.messages("alice")
		return len(ms) == 1 && ms[0].ID == id
	})
	dst := filepath.Join(t.TempDir(), "got.bin")
	bob.mustRun("file", "get", id, "--out", dst)
	if got := sha256File(t, dst); got != want {
		t.Fatal("the file bob got differs")
	}
}

// Bob is offline when alice sends a 48 MiB file: it goes to the relay
// process, and alice stops. Bob starts and downloads it from the relay;
// the relay is frozen (SIGSTOP) once a quarter has arrived, killed with
// SIGKILL and started again on its port and data. The download resumes
// from what bob had verified (the restarted relay serves no more than
// what was left and a window), the SHA-256 matches, and the relay
// deletes the blob after bob's receipt.
func TestFileRelayKillResumeCLI(t *testing.T) {
	const size = 48 << 20
	r := newRelay(t, "")
	r.metrics = freeAddr(t)
	r.start()
	defer func() { r.stop(syscall.SIGTERM) }()
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.startWithRelays(r)
	defer alice.stop()
	bob.startWithRelays(r)
	defer bob.stop()
	bob.waitMailboxes(1)
	alice.waitMailboxes(1)
	befriend(t, alice, bob, "alice", "bob")
	bob.stop()

	path, want := randomFile(t, size)
	out := alice.mustRun("file", "send", "bob", path)
	id := strings.Fields(out)[0]
	blob := attach.BlobSize(stream.EncryptedSize(size))
	if up := relayMetric(t, r, "hush_relay_blob_bytes_uploaded_total"); int64(up) != blob {
		t.Fatalf("the relay took %v bytes when file send returned, want the blob's %d", up, blob)
	}
	eventually(t, "the message in bob's mailbox", func() bool {
		ms := alice.messages("bob")
		return len(ms) == 1 && ms[0].State == "sent"
	})
	alice.stop()

	bob.start()
	// Bob asks for the file once he sees its message, as he would: it
	// comes from his mailbox on the relay after his daemon starts.
	eventually(t, "the file's message at bob", func() bool {
		ms := bob.messages("alice")
		return len(ms) == 1 && ms[0].ID == id
	})
	sub := bob.subscribe()
	dst := filepath.Join(t.TempDir(), "got.bin")
	get := exec.Command(bob.bin, "--home", bob.home, "file", "get", id, "--out", dst)
	var getOut testutil.SyncBuffer
	get.Stdout, get.Stderr = &getOut, &getOut
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	getDone := make(chan error, 1)
	go func() { getDone <- get.Wait() }()
	var cut int64
	quarter := make(chan struct{})
	go func() {
		defer close(quarter)
		for ev := range sub.Events {
			if m := ev.Message; m != nil && m.ID == id && m.File != nil &&
				m.File.State == apitypes.FileDownloading && m.File.Bytes >= size/4 {
				cut = m.File.Bytes
				return
			}
		}
	}()
	select {
	case <-quarter:
	case err := <-getDone:
		t.Fatalf("file get ended before a quarter of the file arrived: %v\n%s", err, getOut.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("timed out waiting for a quarter of the file; file get printed:\n%s\nbob's daemon printed:\n%s",
			getOut.String(), bob.log.String())
	}
	sub.Close()
	if cut == 0 {
		t.Fatalf("the event stream ended before a quarter of the file: %v", sub.Err())
	}
	r.cmd.Process.Signal(syscall.SIGSTOP) // frozen where it is, then killed there
	if f := bob.fileOf(id); f == nil || f.State != apitypes.FileDownloading {
		t.Fatalf("the download was not under way when the relay froze: %+v", f)
	}
	r.stop(syscall.SIGKILL)
	part, _ := os.Stat(filepath.Join(bob.home, "files", hashOf(t, bob, id)+".part"))
	r.start()
	if err := <-getDone; err != nil {
		t.Fatalf("file get: %v\n%s", err, getOut.String())
	}
	if got := sha256File(t, dst); got != want {
		t.Fatalf("the saved file's SHA-256 is %x, want %x", got, want)
	}
	served := int64(relayMetric(t, r, "hush_relay_blob_bytes_served_total"))
	t.Logf("relay killed with %d bytes reported at bob (%d in his .part); the restarted relay served %d of the %d-byte blob",
		cut, part.Size(), served, blob)
	if served == 0 || served > blob-cut+fileWindow {
		t.Fatalf("the restarted relay served %d bytes; bob had %d of %d, so a resume serves at most %d",
			served, cut, blob, blob-cut+fileWindow)
	}
	eventually(t, "the relay deletes the blob after bob's receipt", func() bool {
		return relayMetric(t, r, `hush_relay_blobs_deleted_total{reason="receipts"}`) == 1
	})
}

// A group of four daemons, all on one relay process: alice's group file
// is uploaded once (the relay counts one put and the blob's bytes once),
// and each of the three members, with alice gone, fetches it from the
// relay and saves the same bytes; the relay deletes it after the third
// receipt.
func TestGroupFileOneUploadCLI(t *testing.T) {
	const size = 6 << 20
	r := newRelay(t, "")
	r.metrics = freeAddr(t)
	r.start()
	defer r.stop(syscall.SIGTERM)
	alice := newUser(t, "alice")
	members := []*user{newUser(t, "bob"), newUser(t, "carol"), newUser(t, "dave")}
	for _, u := range append([]*user{alice}, members...) {
		u.startWithRelays(r)
		defer u.stop()
	}
	for i, u := range members {
		alice.mustRun("contact", "add", []string{"bob", "carol", "dave"}[i], u.link())
	}
	const group = "four-of-us"
	alice.mustRun("group", "create", group)
	for _, name := range []string{"bob", "carol", "dave"} {
		alice.mustRun("group", "invite", group, name)
	}
	for _, u := range members {
		eventually(t, "the invitation", func() bool {
			gs := u.groups()
			return len(gs) == 1 && gs[0].Pending
		})
		u.mustRun("group", "accept", group)
		// Nothing is fetched by itself: each member fetches once alice is
		// gone, so from the relay.
		u.mustRun("file", "auto", group, "off", "--group")
	}
	eventually(t, "four members at alice", func() bool {
		gs := alice.groups()
		n := 0
		for _, m := range gs[0].Members {
			if !m.Invited {
				n++
			}
		}
		return n == 4
	})

	path, want := randomFile(t, size)
	var id string
	eventually(t, "the group file sent", func() bool {
		out, _, code := alice.run("group", "file", "send", group, path)
		if code == 0 {
			id = strings.Fields(out)[0]
		}
		return code == 0
	})
	for _, u := range members {
		eventually(t, "the file offered to each member", func() bool {
			for _, m := range u.groupMessages(group) {
				if m.ID == id {
					return true
				}
			}
			return false
		})
	}
	alice.stop()

	blob := attach.BlobSize(stream.EncryptedSize(size))
	for _, u := range members {
		dst := filepath.Join(t.TempDir(), "got.bin")
		u.mustRun("file", "get", id, "--out", dst)
		if got := sha256File(t, dst); got != want {
			t.Fatal("a member's copy differs")
		}
	}
	if puts, up := relayMetric(t, r, "hush_relay_blob_puts_total"), relayMetric(t, r, "hush_relay_blob_bytes_uploaded_total"); puts != 1 || int64(up) != blob {
		t.Fatalf("the relay counted %v puts and %v bytes uploaded, want 1 and the blob's %d", puts, up, blob)
	}
	if served := int64(relayMetric(t, r, "hush_relay_blob_bytes_served_total")); served < 3*blob {
		t.Fatalf("the relay served %d bytes, less than three copies of the %d-byte blob", served, blob)
	}
	eventually(t, "the relay deletes the blob after the three receipts", func() bool {
		return relayMetric(t, r, `hush_relay_blobs_deleted_total{reason="receipts"}`) == 1
	})
}
