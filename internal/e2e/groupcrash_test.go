package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// groupOfThree makes the group name of groupTrio's three users and waits
// until every one of them can send.
func groupOfThree(t *testing.T, name string) (alice, bob, carol *user) {
	alice, bob, carol = groupTrio(t)
	alice.mustRun("group", "create", name)
	alice.mustRun("group", "invite", name, "bob")
	alice.mustRun("group", "invite", name, "carol")
	for _, u := range []*user{bob, carol} {
		eventually(t, "the invitation", func() bool {
			gs := u.groups()
			return len(gs) == 1 && gs[0].Pending
		})
		u.mustRun("group", "accept", name)
	}
	for i, u := range []*user{alice, bob, carol} {
		text := fmt.Sprintf("hello from %d", i)
		eventually(t, "a member can send", func() bool {
			_, _, code := u.run("group", "send", name, text)
			return code == 0
		})
	}
	for _, u := range []*user{alice, bob, carol} {
		eventually(t, "the three hellos", func() bool { return len(u.groupMessages(name)) == 3 })
	}
	return alice, bob, carol
}

// groupTexts returns the texts of a group's messages at u, oldest first.
func groupTexts(u *user, name string) []string {
	var out []string
	for _, m := range u.groupMessages(name) {
		out = append(out, m.Text)
	}
	return out
}

// A member's daemon killed with SIGKILL right after group messages were
// shown keeps every one of them, and none is shown twice after it comes
// back, though it saves its group engine (receiving chains, seen ranges
// and the wire messages it keeps for repairs) only about once a second:
// what the engine lost, the members send again (anti-entropy on
// rejoining the topic), and the message IDs already stored drop the
// copies. Repeated, as the kill lands anywhere in that second.
func TestGroupReceiverKilledKeepsMessages(t *testing.T) {
	alice, bob, carol := groupOfThree(t, "crash club")
	want := groupTexts(carol, "crash club")
	for round := range 3 {
		for i := range 10 {
			text := fmt.Sprintf("round %d text %d", round, i)
			alice.mustRun("group", "send", "crash club", text)
			want = append(want, text)
		}
		eventually(t, "the round's texts at carol", func() bool { return len(carol.groupMessages("crash club")) == len(want) })
		carol.kill()
		carol.start()
		if got := groupTexts(carol, "crash club"); !slices.Equal(got, want) {
			t.Fatalf("round %d: after the kill carol has %q, want %q", round, got, want)
		}
		text := fmt.Sprintf("round %d from bob", round)
		eventually(t, "bob can send", func() bool {
			_, _, code := bob.run("group", "send", "crash club", text)
			return code == 0
		})
		want = append(want, text)
		eventually(t, "bob's text at carol", func() bool { return len(carol.groupMessages("crash club")) >= len(want) })
		time.Sleep(time.Second) // a copy sent again would land by now
		if got := groupTexts(carol, "crash club"); !slices.Equal(got, want) {
			t.Fatalf("round %d: carol has %q, want %q", round, got, want)
		}
	}
	eventually(t, "carol can send after the kills", func() bool {
		_, _, code := carol.run("group", "send", "crash club", "still here")
		return code == 0
	})
	want = append(want, "still here")
	eventually(t, "carol's text at alice", func() bool { return slices.Equal(groupTexts(alice, "crash club"), want) })
}
