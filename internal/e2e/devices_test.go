package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/internal/testutil"
)

type deviceView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	This bool   `json:"this"`
}

func (u *user) devices() []deviceView {
	u.t.Helper()
	var ds []deviceView
	if err := json.Unmarshal([]byte(u.mustRun("device", "list", "--json")), &ds); err != nil {
		u.t.Fatal(err)
	}
	return ds
}

// linkPhone links a new home to u's account the way a user does: `hush
// device link` on the running laptop prints a code and waits; `hush
// device join CODE` on the new home links, transfers history and exits;
// the laptop's command then exits 0. It returns the phone (not running).
func linkPhone(t *testing.T, laptop *user) *user {
	t.Helper()
	cmd := exec.Command(laptop.bin, "--home", laptop.home, "device", "link")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errb := &testutil.SyncBuffer{}
	cmd.Stderr = errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	code := ""
	var rest strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if code == "" && strings.HasPrefix(line, "HUSH-LINK:") {
			code = line
			break
		}
	}
	if code == "" {
		cmd.Wait()
		t.Fatalf("device link printed no code: %s", errb)
	}
	done := make(chan error, 1)
	go func() {
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		done <- cmd.Wait()
	}()
	phone := &user{t: t, bin: laptop.bin, home: filepath.Join(t.TempDir(), "home")}
	stdout := phone.mustRun("device", "join", code, "--name", "phone", "--no-passphrase")
	if !strings.Contains(stdout, "Start it with") {
		t.Fatalf("join said: %s", stdout)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("device link on the laptop: %v\n%s\n%s", err, rest.String(), errb)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("device link did not end after the transfer")
	}
	if !strings.Contains(rest.String(), "History transferred") {
		t.Fatalf("the laptop's link said: %s", rest.String())
	}
	// The code worked once.
	other := &user{t: t, bin: laptop.bin, home: filepath.Join(t.TempDir(), "home")}
	if _, errs, code2 := other.run("device", "join", code, "--name", "thief", "--no-passphrase"); code2 == 0 || !strings.Contains(errs, "refused") {
		t.Fatalf("a used code: exit %d: %s", code2, errs)
	}
	return phone
}

// sameView compares two devices' conversations: IDs, directions, texts,
// replies, edits, deletes and read state of incoming messages.
func sameView(a, b []message) (bool, string) {
	line := func(m message) string {
		s := fmt.Sprintf("%s %s %q reply=%s edited=%v deleted=%v", m.ID, m.Direction, m.Text, m.ReplyTo, m.Edited, m.Deleted)
		if m.Direction == "in" {
			s += " " + m.State
		}
		return s
	}
	var la, lb []string
	for _, m := range a {
		la = append(la, line(m))
	}
	for _, m := range b {
		lb = append(lb, line(m))
	}
	x, y := strings.Join(la, "\n"), strings.Join(lb, "\n")
	return x == y, x + "\n---\n" + y
}

// Alice has a laptop and a phone, one account. Bob's messages show on
// both, a reply from the phone shows on the laptop and reaches Bob as
// Alice, reading on one marks read on the other; the phone offline
// during 30 messages, an edit and a verification catches up to the same
// view; revoked, it gets nothing new.
func TestTwoDevicesCLI(t *testing.T) {
	laptop, bob := newUser(t, "alice"), newUser(t, "bob")
	laptop.start()
	defer laptop.stop()
	bob.start()
	defer bob.stop()
	befriend(t, laptop, bob, "alice", "bob")
	bob.mustRun("send", "alice", "before the phone", "--wait", "delivered")
	laptop.mustRun("send", "bob", "me too", "--wait", "delivered")
	laptop.mustRun("group", "create", "club")
	laptop.mustRun("group", "invite", "club", "bob")
	eventually(t, "bob's invitation", func() bool { return len(bob.groups()) == 1 })
	bob.mustRun("group", "accept", "club")
	eventually(t, "bob in the club", func() bool {
		gs := laptop.groups()
		return len(gs) == 1 && len(gs[0].Members) == 2
	})
	bob.mustRun("group", "send", "club", "before the phone")
	eventually(t, "bob's group message on the laptop", func() bool { return len(laptop.groupMessages("club")) == 1 })

	phone := linkPhone(t, laptop)
	phone.start()
	defer phone.stop()
	if got := phone.messages("bob"); len(got) != 2 {
		t.Fatalf("history on the phone: %+v", got)
	}
	eventually(t, "two devices on both", func() bool {
		return len(laptop.devices()) == 2 && len(phone.devices()) == 2
	})

	eventually(t, "the club on the phone", func() bool {
		return laptop.mustRun("group", "list", "--json") == phone.mustRun("group", "list", "--json")
	})
	if ok, diff := sameView(laptop.groupMessages("club"), phone.groupMessages("club")); !ok {
		t.Fatalf("group history differs:\n%s", diff)
	}
	bob.mustRun("group", "send", "club", "hello club")
	for deadline := time.Now().Add(60 * time.Second); len(phone.groupMessages("club")) != 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob's group message did not reach the phone\nphone:\n%s\nbob:\n%s\nlaptop:\n%s", phone.log, bob.log, laptop.log)
		}
	}

	// Bob's message shows on both.
	bob.mustRun("send", "alice", "hello both", "--wait", "delivered")
	for _, d := range []*user{laptop, phone} {
		eventually(t, "bob's message on both devices", func() bool { return len(dir(d.messages("bob"), "in")) == 2 })
	}
	// A reply from the phone: on the laptop, and at bob's as alice.
	phone.mustRun("send", "bob", "from my phone", "--wait", "delivered")
	eventually(t, "the phone's reply on the laptop", func() bool { return len(dir(laptop.messages("bob"), "out")) == 2 })
	if cs := bob.mustRun("contact", "list", "--json"); strings.Count(cs, `"account"`) != 1 {
		t.Fatalf("bob sees more than one alice: %s", cs)
	}
	if got := dir(bob.messages("alice"), "in"); len(got) != 2 || got[1].Text != "from my phone" {
		t.Fatalf("bob got %+v", got)
	}
	// Read on the laptop, read on the phone.
	laptop.mustRun("read", "bob")
	eventually(t, "read on the phone", func() bool {
		for _, m := range dir(phone.messages("bob"), "in") {
			if m.State != "read" {
				return false
			}
		}
		return true
	})

	// The phone is offline while things happen.
	phone.stop()
	for i := range 30 {
		bob.mustRun("send", "alice", fmt.Sprintf("while the phone sleeps %d", i))
	}
	mine := dir(laptop.messages("bob"), "out")[0]
	laptop.mustRun("edit", "bob", mine.ID, "me too (edited)")
	laptop.mustRun("contact", "verify", "bob", "--yes")
	laptop.mustRun("group", "rename", "club", "book club")
	eventually(t, "bob's 30 messages on the laptop", func() bool { return len(dir(laptop.messages("bob"), "in")) == 32 })
	phone.start()
	eventually(t, "the phone to catch up", func() bool {
		ok, _ := sameView(laptop.messages("bob"), phone.messages("bob"))
		return ok
	})
	sameContacts := func() bool {
		return laptop.mustRun("contact", "list", "--json") == phone.mustRun("contact", "list", "--json")
	}
	for deadline := time.Now().Add(30 * time.Second); !sameContacts(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("contact lists differ:\n%s\n%s", laptop.mustRun("contact", "list", "--json"), phone.mustRun("contact", "list", "--json"))
		}
	}

	sameGroups := func() bool {
		return laptop.mustRun("group", "list", "--json") == phone.mustRun("group", "list", "--json")
	}
	for deadline := time.Now().Add(60 * time.Second); !sameGroups(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("group lists differ:\n%s\n%s", laptop.mustRun("group", "list", "--json"), phone.mustRun("group", "list", "--json"))
		}
	}

	// Revoked, the phone gets nothing new.
	var phoneID string
	for _, d := range laptop.devices() {
		if !d.This {
			phoneID = d.ID
		}
	}
	laptop.mustRun("device", "revoke", phoneID)
	if ds := laptop.devices(); len(ds) != 1 {
		t.Fatalf("after revoking: %+v", ds)
	}
	eventually(t, "bob to see one device", func() bool {
		return strings.Contains(bob.mustRun("contact", "list", "--json"), `"devices": 1`)
	})
	bob.mustRun("send", "alice", "after the revocation", "--wait", "delivered")
	eventually(t, "bob's message on the laptop", func() bool { return len(dir(laptop.messages("bob"), "in")) == 33 })
	bob.mustRun("group", "send", "book club", "after the revocation")
	eventually(t, "bob's group message on the laptop", func() bool { return len(laptop.groupMessages("book club")) == 3 })
	if got := dir(phone.messages("bob"), "in"); len(got) != 32 {
		t.Fatalf("the revoked phone has %d messages from bob", len(got))
	}
	if got := phone.groupMessages("book club"); len(got) != 2 {
		t.Fatalf("the revoked phone has %d group messages", len(got))
	}
	eventually(t, "the phone to know it was removed", func() bool {
		_, errs, code := phone.run("send", "bob", "still here?")
		return code != 0 && strings.Contains(errs, "removed from its account")
	})
}

// `hush device join` with bad input says what is wrong and leaves no
// home behind: a typo, a code for no device, and a home that already
// has an account.
func TestDeviceJoinBadInput(t *testing.T) {
	laptop := newUser(t, "alice")
	laptop.start()
	defer laptop.stop()
	var offer struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal([]byte(laptop.mustRun("device", "link", "--json")), &offer); err != nil {
		t.Fatal(err)
	}
	typo := offer.Code[:20] + string("ABCDEFGH"[(strings.IndexByte("ABCDEFGH", offer.Code[20])+1)%8]) + offer.Code[21:]
	for _, tc := range []struct{ code, want string }{
		{"HUSH-LINK:", "malformed"},
		{typo, "typo"},
	} {
		phone := &user{t: t, bin: laptop.bin, home: filepath.Join(t.TempDir(), "home")}
		_, errs, code := phone.run("device", "join", tc.code, "--name", "phone", "--no-passphrase")
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("join %.24s…: exit %d: %s", tc.code, code, errs)
		}
		if _, err := os.Stat(filepath.Join(phone.home, "store")); err == nil {
			t.Errorf("join %.24s… left a store behind", tc.code)
		}
	}
	other := newUser(t, "mallory")
	if _, errs, code := other.run("device", "join", offer.Code, "--name", "phone", "--no-passphrase"); code == 0 || !strings.Contains(errs, "empty home") {
		t.Errorf("join into a home with an account: exit %d: %s", code, errs)
	}
	// The code is still good after all that.
	phone := &user{t: t, bin: laptop.bin, home: filepath.Join(t.TempDir(), "home")}
	phone.mustRun("device", "join", offer.Code, "--name", "phone", "--no-passphrase")
}
