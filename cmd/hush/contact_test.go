package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/node"
)

func TestContactRenameBlockVerbs(t *testing.T) {
	b, home := daemon(t)
	if r := hush(t, nil, nil, "--home", home, "contact", "add", "alice", "hush://alice"); r.code != 0 {
		t.Fatalf("contact add: %+v", r)
	}
	r := hush(t, nil, nil, "--home", home, "contact", "rename", "alice", "ally")
	if r.code != 0 || !strings.Contains(r.stdout, "alice is now ally") {
		t.Fatalf("rename: %+v", r)
	}
	if cs, _ := b.Contacts(); len(cs) != 1 || cs[0].Name != "ally" {
		t.Fatalf("after rename: %+v", cs)
	}
	if r := hush(t, nil, nil, "--home", home, "contact", "rename", "alice", "x"); r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Errorf("rename unknown: %+v", r)
	}

	r = hush(t, nil, nil, "--home", home, "contact", "block", "ally")
	if r.code != 0 || !strings.Contains(r.stdout, "blocked ally") {
		t.Fatalf("block: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "send", "ally", "hi")
	if r.code != 1 || !strings.Contains(r.stderr, "blocked") {
		t.Errorf("send to a blocked contact: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "contact", "list"); !strings.Contains(r.stdout, "BLOCKED") {
		t.Errorf("contact list: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "contact", "blocked", "--json")
	var list []node.BlockedAccount
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 || list[0].Name != "ally" {
		t.Errorf("blocked --json: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "contact", "blocked"); r.code != 0 || !strings.HasPrefix(r.stdout, "ally ") {
		t.Errorf("blocked: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "contact", "unblock", "ally"); r.code != 0 {
		t.Errorf("unblock: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "contact", "blocked"); r.stdout != "nobody is blocked\n" {
		t.Errorf("blocked after unblock: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "send", "ally", "hi"); r.code != 0 {
		t.Errorf("send after unblock: %+v", r)
	}
	for _, args := range [][]string{{"contact", "block"}, {"contact", "rename", "a"}, {"contact", "unblock"},
		{"contact", "verify", "ally", "--qr", "--scanned", "1"}, {"profile"}, {"profile", "set"},
		{"profile", "set", "--avatar", "x.png", "--no-avatar"}} {
		if r := hush(t, nil, nil, append([]string{"--home", home}, args...)...); r.code != 2 {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

func TestContactVerifyQRAndScanned(t *testing.T) {
	b, home := daemon(t)
	hush(t, nil, nil, "--home", home, "contact", "add", "alice", "hush://alice")
	digits := strings.Repeat("0123456789", 6) // the fake's safety number
	r := hush(t, nil, nil, "--home", home, "contact", "verify", "alice", "--qr")
	want, _ := qrcode.New(digits, qrcode.Medium)
	if r.code != 0 || !strings.HasPrefix(r.stdout, want.ToSmallString(false)) || !strings.Contains(r.stdout, "01234 56789 01234 56789\n") {
		t.Fatalf("verify --qr: %+v", r)
	}
	if cs, _ := b.Contacts(); cs[0].Verified {
		t.Fatal("--qr verified the contact")
	}
	r = hush(t, nil, nil, "--home", home, "contact", "verify", "alice", "--scanned", "1"+digits[1:])
	if r.code != 1 || !strings.Contains(r.stderr, "does not match") {
		t.Errorf("a wrong number: %+v", r)
	}
	if cs, _ := b.Contacts(); cs[0].Verified {
		t.Fatal("a wrong number verified the contact")
	}
	r = hush(t, nil, nil, "--home", home, "contact", "verify", "alice", "--scanned", "01234 56789 01234 56789 01234 56789 01234 56789 01234 56789 01234 56789")
	if cs, _ := b.Contacts(); r.code != 0 || !cs[0].Verified {
		t.Errorf("the right number: %+v", r)
	}
}

func TestProfileSet(t *testing.T) {
	b, home := daemon(t)
	dir := t.TempDir()
	pic := filepath.Join(dir, "me.png")
	os.WriteFile(pic, []byte("picture bytes"), 0o600)
	t.Chdir(dir)
	r := hush(t, nil, nil, "--home", home, "profile", "set", "--name", "Me Myself", "--avatar", "me.png")
	if r.code != 0 || !strings.Contains(r.stdout, "name:   Me Myself\n") || !strings.Contains(r.stdout, "a 13-byte JPEG") {
		t.Fatalf("profile set: %+v", r)
	}
	if s, _ := b.Self(); s.Name != "Me Myself" || string(s.Avatar) != "picture bytes" {
		t.Fatalf("Self: %+v", s)
	}
	r = hush(t, nil, nil, "--home", home, "profile", "set", "--no-avatar")
	if s, _ := b.Self(); r.code != 0 || s.Avatar != nil || s.Name != "Me Myself" || !strings.Contains(r.stdout, "avatar: none") {
		t.Fatalf("profile set --no-avatar: %+v %+v", r, s)
	}
}
