package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Bob's home goes back to an older copy (taken while his daemon was
// stopped): Alice's next message and Bob's reply both arrive after an
// automatic recovery, each side shows one "session re-established"
// notice, and Alice's history is whole.
func TestRestoredHomeRecoversCLI(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	befriend(t, alice, bob, "alice", "bob")
	alice.mustRun("send", "bob", "one")
	bob.mustRun("send", "alice", "two")
	eventually(t, "the first exchange", func() bool {
		return len(dir(bob.messages("alice"), "in")) == 1 && len(dir(alice.messages("bob"), "in")) == 1
	})
	bob.stop()
	backup := filepath.Join(t.TempDir(), "backup")
	copyTree(t, bob.home, backup)
	bob.start()
	alice.mustRun("send", "bob", "three")
	eventually(t, "three at bob's newer home", func() bool { return len(dir(bob.messages("alice"), "in")) == 2 })
	bob.mustRun("send", "alice", "four")
	eventually(t, "four at alice", func() bool { return len(dir(alice.messages("bob"), "in")) == 2 })
	bob.stop()
	if err := os.RemoveAll(bob.home); err != nil {
		t.Fatal(err)
	}
	copyTree(t, backup, bob.home)
	bob.start()
	defer bob.stop()

	alice.mustRun("send", "bob", "after the restore")
	eventually(t, "alice's message at the restored bob", func() bool {
		for _, m := range dir(bob.messages("alice"), "in") {
			if m.Text == "after the restore" {
				return true
			}
		}
		return false
	})
	bob.mustRun("send", "alice", "reply from the restored bob")
	eventually(t, "bob's reply at alice", func() bool {
		for _, m := range dir(alice.messages("bob"), "in") {
			if m.Text == "reply from the restored bob" {
				return true
			}
		}
		return false
	})
	eventually(t, "one notice on each side", func() bool {
		return len(dir(alice.messages("bob"), "system")) == 1 && len(dir(bob.messages("alice"), "system")) == 1
	})
	var texts []string
	for _, m := range alice.messages("bob") {
		if m.Direction != "system" {
			texts = append(texts, m.Text)
		}
	}
	for _, want := range []string{"one", "two", "three", "four", "after the restore", "reply from the restored bob"} {
		found := false
		for _, got := range texts {
			found = found || got == want
		}
		if !found {
			t.Fatalf("alice's history lost %q: %q", want, texts)
		}
	}
}

// copyTree copies a stopped home with cp -a (modes and times kept).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
}
