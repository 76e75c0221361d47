package main

import (
	"encoding/json"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/skip2/go-qrcode"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node/shortlink"
)

func TestAddressAndInviteCommands(t *testing.T) {
	_, home := daemon(t)
	run := func(args ...string) result {
		t.Helper()
		return hush(t, nil, nil, append([]string{"--home", home}, args...)...)
	}
	if r := run("address", "show"); r.code != 1 || !strings.Contains(r.stderr, "no address") {
		t.Fatalf("show without one: %+v", r)
	}
	r := run("address", "create")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "HUSH:") || !strings.Contains(r.stdout, "message requests") {
		t.Fatalf("create: %+v", r)
	}
	link := strings.Fields(r.stdout)[0]
	if r := run("address", "create"); r.code != 1 || !strings.Contains(r.stderr, "--rotate") {
		t.Fatalf("a second create: %+v", r)
	}
	if r := run("address", "create", "--rotate"); r.code != 0 || strings.HasPrefix(r.stdout, link+"\n") {
		t.Fatalf("rotate: %+v", r)
	}
	var l apitypes.ShortLink
	if r := run("address", "show", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil || l.Kind != "address" {
		t.Fatalf("show --json: %+v", r)
	}
	if r := run("id"); r.code != 0 || !strings.Contains(r.stdout, "address:     "+l.Link) {
		t.Fatalf("id shows no address: %+v", r)
	}
	if r := run("address", "delete"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := run("id", "--qr"); r.code != 0 || !strings.Contains(r.stderr, "hush address create") {
		t.Fatalf("id --qr without an address: %+v", r)
	}

	if r := run("invite", "list"); r.code != 0 || !strings.HasPrefix(r.stdout, "no invitations") {
		t.Fatalf("empty invite list: %+v", r)
	}
	r = run("invite", "create", "--name", "carol", "--txn-id", "t1")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "HUSH:") {
		t.Fatalf("invite create: %+v", r)
	}
	if again := run("invite", "create", "--name", "carol", "--txn-id", "t1"); again.code != 0 || again.stdout != r.stdout {
		t.Fatalf("invite create retried: %+v", again)
	}
	var ls []apitypes.ShortLink
	if r := run("invite", "list", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &ls) != nil || len(ls) != 1 || ls[0].Label != "carol" {
		t.Fatalf("invite list --json: %+v", r)
	}
	if r := run("invite", "delete", ls[0].ID[:10]); r.code != 0 {
		t.Fatalf("invite delete: %+v", r)
	}
	if r := run("invite", "delete", "ffffffffff"); r.code != 1 || !strings.Contains(r.stderr, "no such invitation") {
		t.Fatalf("deleting an unknown invitation: %+v", r)
	}
	for _, args := range [][]string{{"address"}, {"address", "bogus"}, {"address", "delete", "x"}, {"invite"}, {"invite", "delete"}, {"invite", "create", "x"}} {
		if r := run(args...); r.code != 2 {
			t.Errorf("%q: %+v, want a usage error", args, r)
		}
	}
}

// A short link's QR fits an 80×24 terminal: at most 24 lines of at most
// 80 columns, and QR version 10 at most, for the longest link an IPv6
// relay makes.
func TestShortLinkQRFitsATerminal(t *testing.T) {
	l, err := shortlink.New(ma.StringCast("/ip6/2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/tcp/65535"), [shortlink.RelayKeySize]byte{0xff})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := l.String()
	var b strings.Builder
	if err := printLinkQR(&b, s); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) > 24 {
		t.Errorf("the QR of a %d-character link is %d lines", len(s), len(lines))
	}
	for _, line := range lines {
		if w := len([]rune(line)); w > 80 {
			t.Fatalf("a QR line is %d columns", w)
		}
	}
	code, err := qrcode.New(strings.ToUpper(s), qrcode.Low)
	if err != nil || code.VersionNumber > 10 {
		t.Fatalf("the QR of a %d-character link: version %d, %v (issue 17: 10 at most)", len(s), code.VersionNumber, err)
	}
	if len(s) > shortlink.MaxLength || shortlink.MaxLength > 120 {
		t.Fatalf("a %d-character link (limit %d)", len(s), shortlink.MaxLength)
	}
	t.Logf("a %d-character link: a version %d QR of %d lines × %d columns", len(s), code.VersionNumber, len(lines), len([]rune(lines[0])))
}
