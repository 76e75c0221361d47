package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
)

// Short links as a user types them: alice publishes an address and goes
// away; bob adds her by it and writes; alice, back, finds a request,
// accepts it and answers. A one-time invitation makes carol a contact at
// once, and a second use of it is refused with a clear error. The
// relay's data shows neither name nor account.
func TestAddressAndInvitationCLI(t *testing.T) {
	r := newRelay(t, "")
	r.start()
	defer r.stop(syscall.SIGTERM)
	alice := newUser(t, "alice")
	alice.startWithRelays(r)
	alice.waitMailboxes(1)
	addr := strings.Fields(alice.mustRun("address", "create"))[0]
	if len(addr) > 120 || !strings.HasPrefix(addr, "HUSH:") {
		t.Fatalf("address %q", addr)
	}
	if out := alice.mustRun("id"); !strings.Contains(out, "address:     "+addr) {
		t.Fatalf("hush id does not show the address:\n%s", out)
	}
	invite := strings.Fields(alice.mustRun("invite", "create", "--name", "carol"))[0]
	aliceAccount := accountOfRunning(t, alice)
	alice.stop()

	bob := newUser(t, "bob")
	bob.start()
	defer bob.stop()
	bob.mustRun("contact", "add", "alice", addr)
	bob.mustRun("send", "alice", "hello via your address")
	eventually(t, "bob's message in alice's mailbox", func() bool {
		ms := dir(bob.messages("alice"), "out")
		return len(ms) == 1 && ms[0].State == "sent"
	})

	alice.start()
	defer alice.stop()
	var rs []struct {
		Name     string `json:"name"`
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	eventually(t, "bob's request at alice", func() bool {
		if json.Unmarshal([]byte(alice.mustRun("request", "list", "--json")), &rs) != nil {
			return false
		}
		return len(rs) == 1 && len(rs[0].Messages) == 1 && rs[0].Messages[0].Text == "hello via your address"
	})
	if out := alice.mustRun("contact", "list"); strings.Contains(out, rs[0].Name) {
		t.Fatalf("a request among the contacts:\n%s", out)
	}
	if _, errs, code := alice.run("send", rs[0].Name, "too early"); code == 0 || !strings.Contains(errs, "accept") {
		t.Fatalf("sending to a request: exit %d %q", code, errs)
	}
	alice.mustRun("request", "accept", rs[0].Name)
	alice.mustRun("send", rs[0].Name, "welcome bob")
	eventually(t, "alice's answer at bob", func() bool { return len(dir(bob.messages("alice"), "in")) == 1 })

	carol := newUser(t, "carol")
	carol.start()
	defer carol.stop()
	carol.mustRun("contact", "add", "alice", invite)
	carol.mustRun("send", "alice", "carol here")
	eventually(t, "carol a contact of alice at once", func() bool {
		// "unknown contact" until carol's first message has arrived.
		out, _, code := alice.run("messages", "carol", "--json", "--limit", "0")
		var ms []message
		return code == 0 && json.Unmarshal([]byte(out), &ms) == nil && len(dir(ms, "in")) == 1
	})
	dave := newUser(t, "dave")
	dave.start()
	defer dave.stop()
	eventually(t, "the invitation dead", func() bool {
		_, errs, code := dave.run("contact", "add", "alice", invite)
		return code == 1 && strings.Contains(errs, "invitation was used")
	})

	r.stop(syscall.SIGTERM)
	grepTree(t, r.dir, []string{displayName("alice"), displayName("bob"), displayName("carol"), aliceAccount,
		"hello via your address"}, "")
	r.start()
}
