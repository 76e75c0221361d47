package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// Bob blocks alice; she sends 100 messages: none is stored or shown at
// bob's (the home holds no trace of them), and she learns nothing beyond
// the transport's acknowledgement. Unblocked, new messages flow.
func TestBlockCLI(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")
	bob.mustRun("contact", "block", "alice")
	if out := bob.mustRun("contact", "list"); !strings.Contains(out, "BLOCKED") {
		t.Fatalf("contact list does not show the block:\n%s", out)
	}
	for i := range 100 {
		alice.mustRun("send", "bob", fmt.Sprintf("BLOCKED-MARKER-%03d", i))
	}
	eventually(t, "alice's 100 messages out of her queue", func() bool {
		ms := dir(alice.messages("bob"), "out")
		if len(ms) != 100 {
			return false
		}
		for _, m := range ms {
			if m.State == "queued" {
				return false
			}
		}
		return true
	})
	for _, m := range dir(alice.messages("bob"), "out") {
		if m.State == "read" {
			t.Fatalf("a message to the blocking bob reads %q", m.State)
		}
	}
	if ms := bob.messages("alice"); len(ms) != 0 {
		t.Fatalf("bob shows %d messages from the blocked alice", len(ms))
	}
	bob.stop()
	grepTree(t, bob.home, []string{"BLOCKED-MARKER"}, "")
	bob.start()
	bob.mustRun("contact", "unblock", "alice")
	alice.mustRun("send", "bob", "after the unblock")
	eventually(t, "the message after the unblock", func() bool {
		ms := dir(bob.messages("alice"), "in")
		return len(ms) == 1 && ms[0].Text == "after the unblock"
	})
}
