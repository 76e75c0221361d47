package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file from the CLI, daemon to daemon: `hush file send`, then on the
// other side `hush file list` and `hush file get --out`; the bytes are
// the same, and neither home holds the file's plaintext.
func TestFileCLI(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")
	const marker = "E2E-FILE-PLAINTEXT-MARKER"
	want := make([]byte, 5<<20+333)
	rand.Read(want)
	copy(want[1<<20:], marker)
	path := filepath.Join(t.TempDir(), "holiday.bin")
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	out := alice.mustRun("file", "send", "bob", path, "--caption", "the holiday file")
	id := strings.Fields(out)[0]
	var files []message
	eventually(t, "the file on bob's side", func() bool {
		if err := json.Unmarshal([]byte(bob.mustRun("file", "list", "alice", "--json")), &files); err != nil {
			t.Fatal(err)
		}
		return len(files) == 1
	})
	if files[0].ID != id || files[0].Text != "the holiday file" {
		t.Fatalf("bob lists %+v", files)
	}
	dst := filepath.Join(t.TempDir(), "got.bin")
	bob.mustRun("file", "get", id, "--out", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("the file bob got differs")
	}
	// Not again over the same path, and not a message without a file.
	if _, errs, code := bob.run("file", "get", id, "--out", dst); code == 0 || !strings.Contains(errs, "exists") {
		t.Errorf("get over an existing file: exit %d: %s", code, errs)
	}
	grepTree(t, alice.home, []string{marker}, "")
	grepTree(t, bob.home, []string{marker}, "")
}
