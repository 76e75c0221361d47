package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type groupView struct {
	Name    string `json:"name"`
	Pending bool   `json:"pending"`
	Members []struct {
		Name    string `json:"name"`
		Invited bool   `json:"invited"`
	} `json:"members"`
}

func (u *user) groups() []groupView {
	var gs []groupView
	if err := json.Unmarshal([]byte(u.mustRun("group", "list", "--json")), &gs); err != nil {
		u.t.Fatal(err)
	}
	return gs
}

func (u *user) groupMessages(g string) []message {
	var ms []message
	if err := json.Unmarshal([]byte(u.mustRun("group", "messages", g, "--json", "--limit", "0")), &ms); err != nil {
		u.t.Fatal(err)
	}
	return ms
}

// The group verbs from the CLI, three daemons: create, invite, accept,
// send, remove.
func TestGroupCLI(t *testing.T) {
	alice, bob, carol := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	for _, u := range []*user{alice, bob, carol} {
		u.start()
		defer u.stop()
	}
	if os.Getenv("HUSH_TEST_LOG") != "" {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("bob's log:\n%s", bob.log)
			}
		})
	}
	alice.mustRun("contact", "add", "bob", bob.link())
	alice.mustRun("contact", "add", "carol", carol.link())
	alice.mustRun("group", "create", "book club")
	alice.mustRun("group", "invite", "book club", "bob")
	alice.mustRun("group", "invite", "book club", "carol")
	for _, u := range []*user{bob, carol} {
		eventually(t, "the invitation", func() bool {
			gs := u.groups()
			return len(gs) == 1 && gs[0].Pending && gs[0].Name == "book club"
		})
		u.mustRun("group", "accept", "book club")
	}
	for _, u := range []*user{alice, bob, carol} {
		eventually(t, "three members", func() bool {
			gs := u.groups()
			if len(gs) != 1 {
				return false
			}
			n := 0
			for _, m := range gs[0].Members {
				if !m.Invited {
					n++
				}
			}
			return n == 3
		})
	}
	eventually(t, "bob can send", func() bool {
		_, _, code := bob.run("group", "send", "book club", "chapter one was great")
		return code == 0
	})
	eventually(t, "the message at alice and carol", func() bool {
		for _, u := range []*user{alice, carol} {
			ms := u.groupMessages("book club")
			if len(ms) != 1 || ms[0].Text != "chapter one was great" {
				return false
			}
		}
		return true
	})
	var ms []map[string]any
	json.Unmarshal([]byte(carol.mustRun("group", "messages", "book club", "--json")), &ms)
	if ms[0]["sender"] == nil || ms[0]["sender"] == "" {
		t.Fatalf("group messages JSON lacks sender: %v", ms[0])
	}
	// Carol is removed; she keeps the history and reads nothing new.
	alice.mustRun("group", "remove", "book club", "carol")
	eventually(t, "bob sees the removal", func() bool {
		gs := bob.groups()
		return len(gs) == 1 && len(gs[0].Members) == 2
	})
	eventually(t, "alice can send after the removal", func() bool {
		_, _, code := alice.run("group", "send", "book club", "without carol")
		return code == 0
	})
	eventually(t, "bob gets it", func() bool { return len(bob.groupMessages("book club")) == 2 })
	if got := carol.groupMessages("book club"); len(got) != 1 {
		t.Fatalf("the removed member has %d messages, want 1", len(got))
	}
	_, errs, code := bob.run("group", "send", "no such group", "x")
	if code == 0 || !strings.Contains(errs, "unknown group") {
		t.Fatalf("unknown group: exit %d, %q", code, errs)
	}
}
