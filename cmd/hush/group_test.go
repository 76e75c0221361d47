package main

import (
	"regexp"
	"strings"
	"testing"
)

// The group verbs against the fake daemon: what each prints, and a
// node error as the user reads it.
func TestGroupVerbs(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	g := func(args ...string) result {
		t.Helper()
		r := hush(t, nil, nil, append([]string{"--home", home, "group"}, args...)...)
		if r.code != 0 {
			t.Fatalf("group %q: %+v", args, r)
		}
		return r
	}

	if r := g("create", "club"); !regexp.MustCompile(`^club  [0-9a-f]{64}  epoch 1\n  me \(admin\)\n$`).MatchString(r.stdout) {
		t.Errorf("group create: %q", r.stdout)
	}
	if r := g("invite", "club", "alice"); !strings.HasSuffix(r.stdout, "  alice (invited)\n") {
		t.Errorf("group invite: %q", r.stdout)
	}
	b.Invite("chess", "alice")
	if r := g("list"); !strings.HasPrefix(r.stdout, "chess  ") || !strings.Contains(r.stdout, "(invitation: hush group accept chess)") {
		t.Errorf("group list: %q", r.stdout)
	}
	if r := g("accept", "chess"); strings.Contains(r.stdout, "invitation") {
		t.Errorf("group accept: %q", r.stdout)
	}

	r := g("send", "club", "hello", "everyone")
	sent := regexp.MustCompile(`^(m\d{4}) sent\n$`).FindStringSubmatch(r.stdout)
	if sent == nil {
		t.Fatalf("group send: %q", r.stdout)
	}
	if _, err := b.ReceiveGroup("club", "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	g("react", "club", sent[1], "👍")
	r = g("messages", "club")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "me:") || !strings.Contains(lines[0], "hello everyone  [👍 me]") ||
		!strings.HasPrefix(lines[1], "alice:") || !strings.Contains(lines[1], "← ") {
		t.Errorf("group messages: %q", r.stdout)
	}
	if r := g("messages", "chess"); r.stdout != "no messages in chess yet\n" {
		t.Errorf("empty group messages: %q", r.stdout)
	}

	if r := g("remove", "club", "alice"); !strings.Contains(r.stdout, "epoch 2") || strings.Contains(r.stdout, "alice") {
		t.Errorf("group remove: %q", r.stdout)
	}
	if r := g("rename", "club", "book club"); !strings.HasPrefix(r.stdout, "book club  ") {
		t.Errorf("group rename: %q", r.stdout)
	}
	if r := g("leave", "book club"); r.stdout != "left book club\n" {
		t.Errorf("group leave: %q", r.stdout)
	}
	b.Invite("poker", "alice")
	if r := g("decline", "poker"); r.stdout != "invitation declined\n" {
		t.Errorf("group decline: %q", r.stdout)
	}

	r = hush(t, nil, nil, "--home", home, "group", "send", "nowhere", "hi")
	if r.code != 1 || r.stderr != "hush: unknown group \"nowhere\"\n" {
		t.Errorf("group send to an unknown group: %+v", r)
	}
}
