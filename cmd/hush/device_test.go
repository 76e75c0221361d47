package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/node"
)

func TestDeviceUsageErrors(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{
		{"device"},
		{"device", "bogus"},
		{"device", "join"},
		{"device", "join", "--no-passphrase"},
		{"device", "join", "HUSH-LINK:X"}, // neither passphrase flag
		{"device", "join", "HUSH-LINK:X", "--no-passphrase", "--passphrase-file", "f"}, // both
		{"device", "join", "HUSH-LINK:X", "extra", "--no-passphrase"},
		{"device", "join", "HUSH-LINK:X", "--no-passphrase", "--history-days", "-1"},
		{"device", "join", "HUSH-LINK:X", "--no-passphrase", "--history-days", "week"},
		{"device", "join", "HUSH-LINK:X", "--no-passphrase", "--history-days", "99999999999"},
		{"device", "link", "extra"},
		{"device", "link", "--wait"},
		{"device", "list", "extra"},
		{"device", "revoke"},
		{"device", "revoke", "a", "b"},
	} {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "hush: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d stderr %q, want 2 and one hush: line", args, r.code, r.stderr)
		}
	}
	// A usage error creates nothing.
	if ents, _ := os.ReadDir(home); len(ents) != 0 {
		t.Errorf("usage errors left %d files in home", len(ents))
	}
	if r := hush(t, nil, nil, "device", "help"); r.code != 0 || !strings.Contains(r.stdout, "device link") {
		t.Errorf("device help: %+v", r)
	}
	if r := hush(t, nil, nil, "help"); !strings.Contains(r.stdout, "hush device link") {
		t.Errorf("usage text lacks the device verb:\n%s", r.stdout)
	}
}

// stubJoin replaces joinDevice for one test.
func stubJoin(t *testing.T, fn func(ctx context.Context, home string, r joinRequest) (*apitypes.Self, error)) {
	t.Helper()
	old := joinDevice
	joinDevice = fn
	t.Cleanup(func() { joinDevice = old })
}

func TestDeviceJoinIdentityExistsStub(t *testing.T) {
	stubJoin(t, func(context.Context, string, joinRequest) (*apitypes.Self, error) {
		return nil, node.ErrIdentityExists
	})
	home := t.TempDir()
	r := hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:X", "--no-passphrase")
	want := home + " already has an identity"
	if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--home NEWDIR") {
		t.Errorf("join on a home with an identity: %+v; want exit 1 and %q", r, want)
	}
}

// With the real node: a home made by `hush init` refuses `device join`.
func TestDeviceJoinIdentityExists(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	if r := hush(t, nil, nil, "--home", home, "init", "--name", "me", "--no-passphrase"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	r := hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:AAAA", "--no-passphrase")
	if r.code != 1 || !strings.Contains(r.stderr, "already has an identity") {
		t.Errorf("join on a home with an identity: %+v", r)
	}
}

func TestDeviceJoin(t *testing.T) {
	var got joinRequest
	stubJoin(t, func(_ context.Context, home string, r joinRequest) (*apitypes.Self, error) {
		got = r
		for _, p := range []apitypes.HistoryProgress{{Done: 0, Total: 10}, {Done: 5, Total: 10}, {Done: 9, Total: 12}, {Done: 12, Total: 12, Complete: true}} {
			r.Progress(p)
		}
		return &apitypes.Self{Name: "me", Device: "0123456789abcdef0123456789abcdef", Fingerprint: "aa11 bb22"}, nil
	})
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("s3cret\n"), 0o600)
	home := filepath.Join(dir, "new")
	r := hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:ABCD", "--name", "phone", "--history-days", "30", "--passphrase-file", pass)
	if r.code != 0 {
		t.Fatalf("join: %+v", r)
	}
	if got.Code != "HUSH-LINK:ABCD" || got.Name != "phone" || got.HistoryDays != 30 || string(got.Passphrase) != "s3cret" {
		t.Errorf("join request = %+v", got)
	}
	for _, want := range []string{"0123456789abcdef0123456789abcdef", "Start it with: hush --home " + home + " daemon", "encrypted under your passphrase"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "history") || !strings.Contains(r.stderr, "12/12") || strings.Contains(r.stderr, "warning") {
		t.Errorf("stderr (the progress bar):\n%s", r.stderr)
	}
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("home not created 0700: %v %v", fi, err)
	}
}

func TestDeviceJoinIncomplete(t *testing.T) {
	// Interrupted after the link: the home is a device, with part of
	// the history.
	stubJoin(t, func(_ context.Context, _ string, r joinRequest) (*apitypes.Self, error) {
		r.Progress(apitypes.HistoryProgress{Done: 3, Total: 10})
		return nil, errors.New("the other device went away")
	})
	home := t.TempDir()
	r := hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:X", "--no-passphrase")
	if r.code != 1 || !strings.Contains(r.stderr, "history transfer incomplete: 3 of 10 items") ||
		!strings.Contains(r.stderr, "hush --home "+home+" daemon` resumes it") || !strings.Contains(r.stderr, "hush: device join: the other device went away") {
		t.Errorf("interrupted join: %+v", r)
	}
	// The node returns with the history incomplete: a warning, exit 0.
	stubJoin(t, func(_ context.Context, _ string, r joinRequest) (*apitypes.Self, error) {
		return &apitypes.Self{Device: "dd", History: &apitypes.HistoryProgress{Done: 7, Total: 9}}, nil
	})
	r = hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:X", "--no-passphrase")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: history transfer incomplete: 7 of 9 items") {
		t.Errorf("join returning incomplete history: %+v", r)
	}
	// The node says how far it got with its error.
	stubJoin(t, func(_ context.Context, _ string, r joinRequest) (*apitypes.Self, error) {
		return &apitypes.Self{History: &apitypes.HistoryProgress{Done: 4, Total: 8}}, errors.New("gone")
	})
	r = hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:X", "--no-passphrase")
	if r.code != 1 || !strings.Contains(r.stderr, "history transfer incomplete: 4 of 8 items") {
		t.Errorf("join failing with progress: %+v", r)
	}
	// A code refused before any link: no word of history.
	stubJoin(t, func(context.Context, string, joinRequest) (*apitypes.Self, error) {
		return nil, errors.New("link code: checksum mismatch (a typo?)")
	})
	r = hush(t, nil, nil, "--home", home, "device", "join", "HUSH-LINK:X", "--no-passphrase")
	if r.code != 1 || strings.Contains(r.stderr, "history") || !strings.Contains(r.stderr, "checksum") {
		t.Errorf("refused code: %+v", r)
	}
}

func TestDeviceLinkPrints(t *testing.T) {
	b, home := daemon(t)
	r := hush(t, nil, nil, "--home", home, "device", "link", "--json")
	var offer apitypes.LinkOffer
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &offer) != nil || offer.Code != apitest.LinkCode || offer.Expires.IsZero() {
		t.Fatalf("link --json: %+v", r)
	}
	r = hush(t, nil, nil, "--home", home, "device", "link", "--no-wait")
	if r.code != 0 || !strings.HasPrefix(r.stdout, apitest.LinkCode+"\n") || !strings.Contains(r.stdout, "device join "+apitest.LinkCode+" --name NAME") ||
		!strings.Contains(r.stdout, "█") || r.stderr != "" {
		t.Fatalf("link --no-wait: %+v", r)
	}
	if b.Links() != 2 || b.Subscribers() != 0 {
		t.Errorf("links %d, subscribers %d", b.Links(), b.Subscribers())
	}
}

// runAsync runs the CLI in the background; the channel gets its result.
func runAsync(args ...string) (<-chan result, *testutil.SyncBuffer, *testutil.SyncBuffer) {
	return runAsyncEnv(nil, args...)
}

// runAsyncEnv is runAsync with environment variables.
func runAsyncEnv(envv map[string]string, args ...string) (<-chan result, *testutil.SyncBuffer, *testutil.SyncBuffer) {
	var out, errb testutil.SyncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return envv[k] }}
	done := make(chan result, 1)
	go func() {
		code := run(context.Background(), args, e)
		done <- result{code, out.String(), errb.String()}
	}()
	return done, &out, &errb
}

// waitResult waits for a background run.
func waitResult(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not finish")
	}
	return result{}
}

// waitLinking waits until `device link` has subscribed and has its code.
func waitLinking(t *testing.T, b *apitest.Backend) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Subscribers() == 0 || b.Links() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("device link did not subscribe and ask for a code")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deviceEvent(d apitypes.DeviceEvent) node.Event {
	return node.Event{Type: node.EventDevice, Device: &d}
}

func TestDeviceLinkFollowsTransfer(t *testing.T) {
	b, home := daemon(t)
	done, _, _ := runAsync("--home", home, "device", "link")
	waitLinking(t, b)
	const id = "0123456789abcdef0123456789abcdef"
	b.Publish(node.Event{Type: node.EventTyping, From: "alice"}) // not a device event
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "linked", ID: id, Name: "phone"}))
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "transfer", ID: id, Done: 100, Total: 1000}))
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "failed", ID: "ffff", Error: "another device's"}))
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "transfer", ID: id, Done: 900, Total: 1200}))
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "complete", ID: id, Done: 1200, Total: 1200}))
	r := waitResult(t, done)
	if r.code != 0 || !strings.Contains(r.stdout, `Linked "phone" (device `+id+")") || !strings.Contains(r.stdout, "History transferred (1200 items)") {
		t.Fatalf("link: %+v", r)
	}
	if !strings.Contains(r.stderr, "1200/1200") {
		t.Errorf("no progress bar on stderr: %q", r.stderr)
	}
}

func TestDeviceLinkFails(t *testing.T) {
	b, home := daemon(t)
	done, _, _ := runAsync("--home", home, "device", "link")
	waitLinking(t, b)
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "linked", ID: "abcd", Name: "phone"}))
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "transfer", ID: "abcd", Done: 1, Total: 10}))
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "failed", ID: "abcd", Error: "the new device went away"}))
	r := waitResult(t, done)
	if r.code != 1 || !strings.HasSuffix(r.stderr, "hush: history transfer failed: the new device went away\n") {
		t.Fatalf("failed transfer: %+v", r)
	}

	done, _, _ = runAsync("--home", home, "device", "link")
	for b.Links() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	b.Publish(deviceEvent(apitypes.DeviceEvent{Phase: "failed", Error: "device list full (16 devices)"}))
	if r := waitResult(t, done); r.code != 1 || !strings.Contains(r.stderr, "hush: linking failed: device list full") {
		t.Fatalf("failed link: %+v", r)
	}
}

func TestDeviceLinkExpires(t *testing.T) {
	b, home := daemon(t)
	b.LinkTTL = 100 * time.Millisecond
	old := linkGrace
	linkGrace = 0
	t.Cleanup(func() { linkGrace = old })
	r := hush(t, nil, nil, "--home", home, "device", "link")
	if r.code != 1 || !strings.HasSuffix(r.stderr, "hush: code expired unused\n") {
		t.Fatalf("expired code: %+v", r)
	}
}

func TestDeviceListAndRevoke(t *testing.T) {
	b, home := daemon(t)
	b.SetSelf(apitypes.Self{Name: "me", Device: "5f0c1a2b3c4d5e6f00112233445566ff"})
	b.AddDevice(apitypes.Device{ID: "8b4107cd00112233aabbccddeeff0011", Name: "phone", Added: apitest.T0})
	r := hush(t, nil, nil, "--home", home, "device", "list")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], "5f0c1a2b3c4d5e6f  me ") || !strings.HasSuffix(lines[1], "this device") ||
		!strings.HasPrefix(lines[2], "8b4107cd00112233  phone ") || strings.Contains(lines[2], "this device") {
		t.Fatalf("device list:\n%s%s", r.stdout, r.stderr)
	}
	r = hush(t, nil, nil, "--home", home, "device", "list", "--json")
	var ds []apitypes.Device
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ds) != nil || len(ds) != 2 || !ds[0].This || ds[1].ID != "8b4107cd00112233aabbccddeeff0011" {
		t.Fatalf("device list --json: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "device", "revoke", "8b41"); r.code != 1 || !strings.Contains(r.stderr, "at least 8 hex digits") {
		t.Errorf("revoke with a short prefix: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "device", "revoke", "8b4107cd"); r.code != 0 || !strings.Contains(r.stdout, "revoked device 8b4107cd") {
		t.Errorf("revoke: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "device", "list", "--json"); !strings.Contains(r.stdout, `"this": true`) || strings.Contains(r.stdout, "phone") {
		t.Errorf("list after revoke: %+v", r)
	}
}

func TestDeviceVerbsNeedDaemon(t *testing.T) {
	home := t.TempDir()
	want := "hush: no daemon running for " + home + "; start it with: hush --home " + home + " daemon\n"
	for _, args := range [][]string{{"device", "link"}, {"device", "link", "--json"}, {"device", "link", "--no-wait"},
		{"device", "list"}, {"device", "revoke", "01234567"}} {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

// Every verb that reaches the daemon warns, once, while the history
// transfer is incomplete; stdout stays as it was (JSON stays JSON).
func TestHistoryIncompleteWarning(t *testing.T) {
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	b.AddContact("bob", "hush://bob")
	b.Receive("bob", "hello")
	const warning = "warning: history transfer incomplete: 40 of 100 items; the daemon resumes it when the other device is reachable\n"
	verbs := [][]string{{"id"}, {"contact", "list", "--json"}, {"send", "alice", "hi", "--wait", "sent", "--timeout", "1ms"},
		{"messages", "bob"}, {"device", "list"}, {"group", "list"}, {"push", "status"}}
	quiet := map[string]string{}
	for _, args := range verbs {
		quiet[strings.Join(args, " ")] = hush(t, nil, nil, append([]string{"--home", home}, args...)...).stdout
	}
	b.SetHealth(node.Health{History: &node.HistoryProgress{Done: 40, Total: 100}})
	for _, args := range verbs {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if !strings.HasPrefix(r.stderr, warning) || strings.Count(r.stderr, "warning: history") != 1 {
			t.Errorf("%q: stderr %q, want the warning once", args, r.stderr)
		}
		if k := strings.Join(args, " "); args[0] != "send" && r.stdout != quiet[k] {
			t.Errorf("%q: stdout changed with the warning:\n%s\nwas:\n%s", args, r.stdout, quiet[k])
		}
	}
	// Verbs that reach no daemon say nothing of it.
	if r := hush(t, nil, nil, "--home", home, "version"); strings.Contains(r.stderr, "warning") {
		t.Errorf("version: %+v", r)
	}
	// Complete: no warning.
	b.SetHealth(node.Health{History: &node.HistoryProgress{Done: 100, Total: 100, Complete: true}})
	if r := hush(t, nil, nil, "--home", home, "id"); r.stderr != "" {
		t.Errorf("complete history: stderr %q", r.stderr)
	}
}
