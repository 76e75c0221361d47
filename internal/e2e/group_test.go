package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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

// groupTrio starts three daemons (stopped at the end of the test), alice
// with bob and carol as contacts.
func groupTrio(t *testing.T) (alice, bob, carol *user) {
	alice, bob, carol = newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	for _, u := range []*user{alice, bob, carol} {
		u.start()
		t.Cleanup(u.stop)
	}
	alice.mustRun("contact", "add", "bob", bob.link())
	alice.mustRun("contact", "add", "carol", carol.link())
	return alice, bob, carol
}

// The group verbs from the CLI, three daemons: create, invite, accept,
// send, remove.
func TestGroupCLI(t *testing.T) {
	alice, bob, carol := groupTrio(t)
	if os.Getenv("HUSH_TEST_LOG") != "" {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("bob's log:\n%s", bob.log)
			}
		})
	}
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

// A member offline while the group talks gets everything from its relay's
// group store when it returns, though no other member is online then and
// no other member uses that relay. Real processes: two daemons without
// relays, one with its own relay. The relay's data holds no text and no
// group name.
func TestGroupOfflineThroughRelayCLI(t *testing.T) {
	r := newRelay(t, "")
	r.metrics = freeAddr(t)
	r.start()
	defer r.stop(syscall.SIGTERM)
	alice, bob, carol := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	carol.startWithRelays(r)
	carol.waitMailboxes(1)
	alice.mustRun("contact", "add", "bob", bob.link())
	alice.mustRun("contact", "add", "carol", carol.link())
	const group = "secret-garden-club"
	alice.mustRun("group", "create", group)
	alice.mustRun("group", "invite", group, "bob")
	alice.mustRun("group", "invite", group, "carol")
	for _, u := range []*user{bob, carol} {
		eventually(t, "the invitation", func() bool {
			gs := u.groups()
			return len(gs) == 1 && gs[0].Pending
		})
		u.mustRun("group", "accept", group)
	}
	eventually(t, "carol's relay watches the group's topic", func() bool {
		return metricValue(scrape(t, "http://"+r.metrics+"/metrics"), "hush_relay_watched_topics") >= 1
	})
	eventually(t, "bob can send", func() bool {
		_, _, code := bob.run("group", "send", group, "warm-up")
		return code == 0
	})
	eventually(t, "warm-up at carol", func() bool { return len(carol.groupMessages(group)) == 1 })
	carol.stop()

	var want []string
	for i := range 20 {
		text := fmt.Sprintf("while away %02d garden-secret-%d", i, i)
		want = append(want, text)
		sender := alice
		if i%2 == 1 {
			sender = bob
		}
		sender.mustRun("group", "send", group, text)
	}
	eventually(t, "the relay filed all 20", func() bool {
		return metricValue(scrape(t, "http://"+r.metrics+"/metrics"), "hush_relay_topic_messages_filed_total") >= 20
	})
	alice.stop()
	bob.stop()

	carol.start()
	eventually(t, "20 messages from the relay", func() bool { return len(carol.groupMessages(group)) >= 21 })
	time.Sleep(500 * time.Millisecond)
	got := carol.groupMessages(group)
	if len(got) != 21 {
		t.Fatalf("carol has %d messages, want 21 (none doubled)", len(got))
	}
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.Text] = true
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("carol lacks %q", w)
		}
	}
	carol.stop()
	r.stop(syscall.SIGTERM)
	grepTree(t, r.dir, append(want[:3], group, "garden-secret", displayName("carol")), "")
	r.start()
}

// metricValue sums the samples of one metric in a Prometheus text page.
func metricValue(page, name string) float64 {
	var sum float64
	for _, line := range strings.Split(page, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := strings.TrimPrefix(line, name)
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue // a longer name with this prefix
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// The rest of the group verbs from the CLI: decline, promote, rename,
// react, edit, delete and leave, each seen on the other side.
func TestGroupCLIMoreVerbs(t *testing.T) {
	alice, bob, carol := groupTrio(t)
	alice.mustRun("group", "create", "garden")
	alice.mustRun("group", "invite", "garden", "bob")
	alice.mustRun("group", "invite", "garden", "carol")
	for _, u := range []*user{bob, carol} {
		eventually(t, "the invitation", func() bool { gs := u.groups(); return len(gs) == 1 && gs[0].Pending })
	}
	carol.mustRun("group", "decline", "garden")
	if gs := carol.groups(); len(gs) != 0 {
		t.Fatalf("carol still lists %d groups after declining", len(gs))
	}
	bob.mustRun("group", "accept", "garden")
	eventually(t, "alice sees bob in and carol's invitation gone", func() bool {
		gs := alice.groups()
		return len(gs) == 1 && len(gs[0].Members) == 2 && !gs[0].Members[0].Invited && !gs[0].Members[1].Invited
	})
	// Bob becomes an admin and renames the group.
	alice.mustRun("group", "promote", "garden", "bob")
	eventually(t, "bob can rename", func() bool {
		_, _, code := bob.run("group", "rename", "garden", "allotment")
		return code == 0
	})
	eventually(t, "alice sees the new name", func() bool { gs := alice.groups(); return len(gs) == 1 && gs[0].Name == "allotment" })
	// A message, a reaction to it, an edit and a delete.
	var id string
	eventually(t, "alice can send", func() bool {
		out, _, code := alice.run("group", "send", "allotment", "tomatoes are in")
		id = strings.Fields(out + " x")[0]
		return code == 0
	})
	eventually(t, "bob has it", func() bool { return len(bob.groupMessages("allotment")) == 1 })
	bob.mustRun("group", "react", "allotment", id, "🍅")
	alice.mustRun("group", "edit", "allotment", id, "tomatoes and beans are in")
	eventually(t, "the reaction at alice and the edit at bob", func() bool {
		a, b := alice.groupMessages("allotment"), bob.groupMessages("allotment")
		return len(a) == 1 && len(a[0].Reactions["🍅"]) == 1 &&
			len(b) == 1 && b[0].Edited && b[0].Text == "tomatoes and beans are in"
	})
	alice.mustRun("group", "delete", "allotment", id)
	eventually(t, "the delete at bob", func() bool { b := bob.groupMessages("allotment"); return len(b) == 1 && b[0].Deleted })
	// Bob leaves: his list is empty, alice is alone.
	bob.mustRun("group", "leave", "allotment")
	if gs := bob.groups(); len(gs) != 0 {
		t.Fatalf("bob still lists %d groups after leaving", len(gs))
	}
	eventually(t, "alice sees bob leave", func() bool { gs := alice.groups(); return len(gs) == 1 && len(gs[0].Members) == 1 })
}
