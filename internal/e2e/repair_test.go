package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// damageJournal flips one byte in the middle of the largest journal of
// the store in dir, as a failing disk would.
func damageJournal(t *testing.T, dir string) string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "db", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("journals in %s: %v %v", dir, logs, err)
	}
	var path string
	var size int64
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil && fi.Size() > size {
			path, size = l, fi.Size()
		}
	}
	if size < 64 {
		t.Fatalf("journal %s holds %d bytes: nothing to damage", path, size)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return filepath.Base(path)
}

// A damaged journal stops the relay and the daemon with a message that
// names the damage and the repair verb; `hush-relay repair` and `hush
// repair` say what they kept and lost, and both start again. Nothing the
// repair kept arrives twice or out of order.
func TestRepairAfterDamagedJournal(t *testing.T) {
	r, alice, bob := offlineThroughRelay(t)
	want := sendAll(t, alice, "bob", "through a failing disk", 20)
	waitNoQueued(t, alice, "bob") // the relay holds them all
	r.stop(syscall.SIGKILL)       // so they are in its journal
	journal := damageJournal(t, filepath.Join(r.dir, "store"))

	// The relay refuses to start and says how to repair.
	out, err := exec.Command(relayBin(t), "--data", r.dir, "--listen", "/ip4/127.0.0.1/tcp/0").CombinedOutput()
	if err == nil {
		t.Fatal("the relay started on a damaged journal")
	}
	if !strings.Contains(string(out), journal) || !strings.Contains(string(out), "hush-relay repair -data "+r.dir) {
		t.Fatalf("the relay's refusal does not name the journal and the repair verb:\n%s", out)
	}
	out, err = exec.Command(relayBin(t), "repair", "-data", r.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("hush-relay repair: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "journal "+journal+": DAMAGED") || !strings.Contains(string(out), "Records now:") {
		t.Fatalf("hush-relay repair does not say what it kept and lost:\n%s", out)
	}
	t.Logf("hush-relay repair:\n%s", out)
	r.start()

	// Bob gets what the relay kept, once and in order, then his own
	// store's journal is damaged in turn.
	bob.start()
	var got []string
	defer func() {
		if t.Failed() {
			t.Logf("relay log:\n%s\nbob's log:\n%s", r.log, bob.log)
		}
	}()
	eventually(t, "bob drains his mailbox", func() bool {
		got = nil
		for _, m := range dir(bob.messages("alice"), "in") {
			got = append(got, m.Text)
		}
		return len(got) > 0
	})
	checkSubsequence(t, got, want)
	bob.daemon.Process.Signal(syscall.SIGKILL)
	bob.daemon.Wait()
	bob.daemon = nil
	journal = damageJournal(t, filepath.Join(bob.home, "store"))
	_, errs, code := bob.run("daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0")
	if code == 0 || !strings.Contains(errs, journal) || !strings.Contains(errs, "hush --home "+bob.home+" repair") {
		t.Fatalf("the daemon on a damaged journal: exit %d\n%s", code, errs)
	}
	rep := bob.mustRun("repair")
	if !strings.Contains(rep, "journal "+journal+": DAMAGED") || !strings.Contains(rep, "Records now:") {
		t.Fatalf("hush repair does not say what it kept and lost:\n%s", rep)
	}
	bob.start()
	var after []string
	for _, m := range dir(bob.messages("alice"), "in") {
		after = append(after, m.Text)
	}
	checkSubsequence(t, after, want)
}

// checkSubsequence fails unless got is want with some messages left out:
// no message twice, none out of order, none unknown.
func checkSubsequence(t *testing.T, got, want []string) {
	t.Helper()
	i := 0
	for _, g := range got {
		j := slices.Index(want[i:], g)
		if j < 0 {
			t.Fatalf("%q is doubled, out of order or unknown in %q", g, got)
		}
		i += j + 1
	}
}
