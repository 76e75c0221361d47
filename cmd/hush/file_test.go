package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api/apitest"
	"github.com/hushnet/hush/api/apitypes"
)

func TestFileUsageErrors(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{
		{"file"},
		{"file", "bogus"},
		{"file", "send"},
		{"file", "send", "alice"},
		{"file", "send", "alice", "a.txt", "b.txt"},
		{"file", "send", "alice", "a.txt", "--wait", "soon"},
		{"file", "send", "alice", "a.txt", "--timeout", "0s"},
		{"file", "send", "alice", "a.txt", "--caption"},
		{"file", "get"},
		{"file", "get", "m1", "m2"},
		{"file", "get", "m1", "--timeout", "-1s"},
		{"file", "get", "m1", "--out"},
		{"file", "get", "m1", "--overwrite"},
		{"file", "list"},
		{"file", "list", "alice", "bob"},
		{"file", "auto"},
		{"file", "auto", "alice", "lots"},
		{"file", "auto", "alice", "-5MiB"},
		{"file", "auto", "alice", "1e9"},
		{"file", "auto", "alice", "2TiB"},
		{"file", "auto", "alice", "1", "2"},
	} {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "hush: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d stderr %q, want 2 and one hush: line", args, r.code, r.stderr)
		}
	}
	if r := hush(t, nil, nil, "file", "help"); r.code != 0 || !strings.Contains(r.stdout, "file send NAME PATH") {
		t.Errorf("file help: %+v", r)
	}
	if r := hush(t, nil, nil, "help"); !strings.Contains(r.stdout, "hush file send NAME PATH") {
		t.Errorf("usage text lacks the file verb:\n%s", r.stdout)
	}
}

func TestFileVerbsNeedDaemon(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(file, []byte("a"), 0o600)
	want := "hush: no daemon running for " + home + "; start it with: hush --home " + home + " daemon\n"
	for _, args := range [][]string{{"file", "send", "alice", file}, {"file", "get", "m1"}, {"file", "list", "alice"}} {
		r := hush(t, nil, nil, append([]string{"--home", home}, args...)...)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

// withFileContacts is a daemon with alice and bob, run from a fresh
// current directory.
func withFileContacts(t *testing.T) (*apitest.Backend, string, string) {
	t.Helper()
	b, home := daemon(t)
	b.AddContact("alice", "hush://alice")
	b.AddContact("bob", "hush://bob")
	cwd := t.TempDir()
	t.Chdir(cwd)
	return b, home, cwd
}

func TestFileSend(t *testing.T) {
	b, home, cwd := withFileContacts(t)
	os.WriteFile(filepath.Join(cwd, "notes.txt"), []byte("hello notes"), 0o600)
	os.Mkdir(filepath.Join(cwd, "photos"), 0o700)

	// A relative path goes to the daemon made absolute.
	r := hush(t, nil, nil, "--home", home, "file", "send", "alice", "notes.txt", "--caption", "read this")
	if r.code != 0 || !strings.HasSuffix(r.stdout, " queued\n") || r.stderr != "" {
		t.Fatalf("file send: %+v", r)
	}
	if got := b.SentPaths(); len(got) != 1 || got[0] != filepath.Join(cwd, "notes.txt") {
		t.Errorf("the daemon got paths %q", got)
	}
	id := strings.Fields(r.stdout)[0]
	ms, _ := b.Files("alice")
	if len(ms) != 1 || ms[0].ID != id || ms[0].Text != "read this" || ms[0].File.Name != "notes.txt" {
		t.Errorf("sent: %+v", ms)
	}

	// A missing file and a directory are refused here, before the daemon.
	for _, tc := range []struct{ path, want string }{
		{"nope.txt", "hush: no such file: nope.txt\n"},
		{"photos", "hush: photos is a directory; send a file (an archive of it, say)\n"},
		{filepath.Join(cwd, "photos") + "/", "is a directory"},
	} {
		r := hush(t, nil, nil, "--home", home, "file", "send", "alice", tc.path)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("send %s: %+v, want %q", tc.path, r, tc.want)
		}
	}
	if len(b.SentPaths()) != 1 {
		t.Errorf("refused files reached the daemon: %q", b.SentPaths())
	}
	// The daemon's errors come through.
	if r := hush(t, nil, nil, "--home", home, "file", "send", "carol", "notes.txt"); r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Errorf("unknown contact: %+v", r)
	}

	// --wait waits like send's.
	done, _, _ := runAsync("--home", home, "file", "send", "alice", filepath.Join(cwd, "notes.txt"), "--wait", "delivered")
	var mid string
	for deadline := time.Now().Add(5 * time.Second); mid == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ms, _ := b.Files("alice"); len(ms) == 2 {
			mid = ms[1].ID
		}
	}
	b.SetState(mid, apitypes.StateDelivered)
	if r := waitResult(t, done); r.code != 0 || r.stdout != mid+" delivered\n" {
		t.Errorf("send --wait delivered: %+v", r)
	}
}

// waitFetched waits until the daemon was asked for a file n times.
func waitFetched(t *testing.T, b *apitest.Backend, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Fetches() < n || b.Subscribers() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("file get did not subscribe and start the download")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFileGetProgress(t *testing.T) {
	b, home, cwd := withFileContacts(t)
	data := []byte(strings.Repeat("0123456789", 3000)) // 30,000 bytes
	m := b.ReceiveFile("bob", "report.pdf", "the report", data)

	done, _, _ := runAsyncEnv(map[string]string{"HUSH_PROGRESS": "1"}, "--home", home, "file", "get", m.ID)
	waitFetched(t, b, 1)
	// The bar redraws at most every 100 ms: 15000 shows.
	b.FileProgress(m.ID, 5000)
	time.Sleep(150 * time.Millisecond)
	b.FileProgress(m.ID, 15000)
	time.Sleep(20 * time.Millisecond)
	b.FileProgress(m.ID, 29000)
	b.CompleteFile(m.ID)
	r := waitResult(t, done)
	out := filepath.Join(cwd, "report.pdf")
	if r.code != 0 || r.stdout != "saved "+out+" (29.3 KiB)\n" {
		t.Fatalf("file get: %+v", r)
	}
	if !strings.Contains(r.stderr, "report.pdf") || !strings.Contains(r.stderr, "50%") ||
		!strings.Contains(r.stderr, "100%") || !strings.Contains(r.stderr, "(29/29 KiB") {
		t.Errorf("no progress bar on stderr: %q", r.stderr)
	}
	if got, err := os.ReadFile(out); err != nil || string(got) != string(data) {
		t.Errorf("saved file: %d bytes, %v", len(got), err)
	}
	for deadline := time.Now().Add(5 * time.Second); b.Subscribers() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("subscription left open")
		}
	}

	// Again: the file exists; refused without --force, replaced with it.
	r = hush(t, nil, nil, "--home", home, "file", "get", m.ID)
	if r.code != 1 || r.stderr != "hush: "+out+" already exists; --force replaces it, --out PATH writes elsewhere\n" {
		t.Errorf("overwrite: %+v", r)
	}
	os.WriteFile(out, []byte("old"), 0o600)
	r = hush(t, nil, nil, "--home", home, "file", "get", m.ID, "--force")
	if got, _ := os.ReadFile(out); r.code != 0 || string(got) != string(data) {
		t.Errorf("--force: %+v (%d bytes)", r, len(got))
	}
	// Done already: no waiting, no bar.
	if r.stderr != "" {
		t.Errorf("a downloaded file showed progress: %q", r.stderr)
	}
}

func TestFileGetOut(t *testing.T) {
	b, home, cwd := withFileContacts(t)
	m := b.ReceiveFile("bob", "../../.bashrc", "", []byte("echo owned"))
	b.FetchFile(t.Context(), m.ID)
	b.CompleteFile(m.ID)

	// A hostile name stays in the directory and is not hidden.
	r := hush(t, nil, nil, "--home", home, "file", "get", m.ID)
	if want := filepath.Join(cwd, "bashrc"); r.code != 0 || r.stdout != "saved "+want+" (10 B)\n" {
		t.Fatalf("file get with a path for a name: %+v", r)
	}
	// --out: a relative path made absolute, a directory gets the name.
	os.Mkdir(filepath.Join(cwd, "dl"), 0o700)
	for _, tc := range []struct{ out, want string }{
		{"x/../mine.sh", filepath.Join(cwd, "mine.sh")},
		{"dl", filepath.Join(cwd, "dl", "bashrc")},
		{filepath.Join(cwd, "dl") + "/", filepath.Join(cwd, "dl", "bashrc")},
	} {
		os.Remove(tc.want)
		r := hush(t, nil, nil, "--home", home, "file", "get", m.ID, "--out", tc.out)
		if got, _ := os.ReadFile(tc.want); r.code != 0 || r.stdout != "saved "+tc.want+" (10 B)\n" || string(got) != "echo owned" {
			t.Errorf("--out %s: %+v", tc.out, r)
		}
	}
	// An existing --out is refused before any download starts.
	fetches := b.Fetches()
	r = hush(t, nil, nil, "--home", home, "file", "get", m.ID, "--out", "mine.sh")
	if r.code != 1 || !strings.Contains(r.stderr, "mine.sh already exists") || b.Fetches() != fetches {
		t.Errorf("existing --out: %+v (fetches %d → %d)", r, fetches, b.Fetches())
	}
	r = hush(t, nil, nil, "--home", home, "file", "get", m.ID, "--out", "nodir/x")
	if r.code != 1 || !strings.Contains(r.stderr, "no directory "+filepath.Join(cwd, "nodir")) {
		t.Errorf("--out in a missing directory: %+v", r)
	}
	// Not a file message, an unknown message.
	plain := b.Receive("bob", "hi")
	if r := hush(t, nil, nil, "--home", home, "file", "get", plain.ID); r.code != 1 || !strings.Contains(r.stderr, "no file") {
		t.Errorf("plain message: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "file", "get", "m9999"); r.code != 1 || r.stderr != "hush: no message m9999 on this device (yet): a file can be fetched once its message has arrived; hush messages NAME lists them\n" {
		t.Errorf("unknown message: %+v", r)
	}
}

func TestFileGetFails(t *testing.T) {
	b, home, cwd := withFileContacts(t)
	m := b.ReceiveFile("bob", "big.iso", "", make([]byte, 4096))
	done, _, _ := runAsync("--home", home, "file", "get", m.ID)
	waitFetched(t, b, 1)
	b.FileProgress(m.ID, 1024)
	b.FailFile(m.ID, apitypes.FileFailed, "unreachable")
	r := waitResult(t, done)
	if r.code != 1 || !strings.HasSuffix(r.stderr, "hush: download failed: unreachable; `hush file get "+m.ID+"` tries again\n") {
		t.Errorf("failed download: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(cwd, "big.iso")); !os.IsNotExist(err) {
		t.Errorf("a failed download left a file: %v", err)
	}
	// --timeout: stops waiting; the download goes on.
	m2 := b.ReceiveFile("bob", "slow.bin", "", make([]byte, 10))
	r = hush(t, nil, nil, "--home", home, "file", "get", m2.ID, "--timeout", "50ms")
	if r.code != 1 || !strings.Contains(r.stderr, "did not finish within 50ms; the daemon goes on downloading") {
		t.Errorf("--timeout: %+v", r)
	}
}

func TestFileList(t *testing.T) {
	b, home, cwd := withFileContacts(t)
	if r := hush(t, nil, nil, "--home", home, "file", "list", "alice"); r.code != 0 || r.stdout != "no files with alice yet\n" {
		t.Errorf("empty list: %+v", r)
	}
	os.WriteFile(filepath.Join(cwd, "a.png"), []byte("\x89PNG\r\n\x1a\n"), 0o600)
	hush(t, nil, nil, "--home", home, "file", "send", "bob", "a.png")
	b.Receive("bob", "not a file")
	big := b.ReceiveFile("bob", "movie.mp4", "", make([]byte, 3<<20))
	b.FetchFile(t.Context(), big.ID)
	b.FileProgress(big.ID, 1<<20)
	bad := b.ReceiveFile("bob", "evil\x1b[2J\u202egnp.exe", "", make([]byte, 2000))
	b.FetchFile(t.Context(), bad.ID)
	b.FailFile(bad.ID, apitypes.FileFailed, "corrupted")
	b.ReceiveFile("bob", "later.txt", "", []byte("x"))

	r := hush(t, nil, nil, "--home", home, "file", "list", "bob")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 5 {
		t.Fatalf("file list:\n%s%s", r.stdout, r.stderr)
	}
	fields := func(l string) []string { return strings.Fields(l) }
	for i, want := range [][]string{
		{"ID", "NAME", "SIZE", "STATE", "BYTES"},
		{"a.png", "8", "B", "sent", "8", "B"},
		{"movie.mp4", "3.0", "MiB", "downloading", "1.0", "MiB", "(33%)"},
		{"evil_[2J_gnp.exe", "2.0", "KiB", "failed", "0", "B", "(0%)", "(corrupted)"},
		{"later.txt", "1", "B", "offered", "-"},
	} {
		got := fields(lines[i])
		if i > 0 {
			got = got[1:] // the ID
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d = %q, want fields %q", i, lines[i], want)
		}
	}
	if !strings.HasPrefix(lines[2], big.ID+" ") {
		t.Errorf("line 2 does not start with the message ID: %q", lines[2])
	}
	r = hush(t, nil, nil, "--home", home, "file", "list", "bob", "--json")
	var ms []apitypes.Message
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ms) != nil || len(ms) != 4 || ms[1].File.Bytes != 1<<20 {
		t.Errorf("file list --json: %+v", r)
	}
	if r := hush(t, nil, nil, "--home", home, "file", "list", "carol"); r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Errorf("unknown contact: %+v", r)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 16 << 20: "16.0 MiB", 1 << 30: "1.0 GiB", 5 << 40: "5.0 TiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMediaInfo(t *testing.T) {
	for _, c := range []struct {
		f    apitypes.FileInfo
		want string
	}{
		{apitypes.FileInfo{}, ""},
		{apitypes.FileInfo{Width: 640}, ""},
		{apitypes.FileInfo{Width: 640, Height: 480}, "640x480"},
		{apitypes.FileInfo{DurationMS: 999}, "0:01"},
		{apitypes.FileInfo{DurationMS: 65_432}, "1:05"},
		{apitypes.FileInfo{DurationMS: 3_723_000}, "1:02:03"},
		{apitypes.FileInfo{Width: 1920, Height: 1080, DurationMS: 10_000}, "1920x1080 0:10"},
	} {
		if got := mediaInfo(&c.f); got != c.want {
			t.Errorf("mediaInfo(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestParseAutoLimit(t *testing.T) {
	for in, want := range map[string]int64{"off": 0, "OFF": 0, "0": 0, "default": -1, "1000": 1000,
		"500KiB": 500 << 10, "20MB": 20e6, "1.5MiB": 3 << 19, "1GiB": 1 << 30, "64k": 64 << 10, "7 B": 7} {
		if got, err := parseAutoLimit(in); err != nil || got != want {
			t.Errorf("parseAutoLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1", "nan", "inf", "1e3", "2TiB", "MiB", "1..2k"} {
		if _, err := parseAutoLimit(in); err == nil {
			t.Errorf("parseAutoLimit(%q) took it", in)
		}
	}
}

func TestFileAuto(t *testing.T) {
	b, home, _ := withFileContacts(t)
	run := func(args ...string) result {
		t.Helper()
		return hush(t, nil, nil, append([]string{"--home", home, "file", "auto"}, args...)...)
	}
	if r := run("alice"); r.code != 0 || r.stdout != "auto-download with alice: files up to 16.0 MiB (the default)\n" {
		t.Errorf("show: %+v", r)
	}
	if r := run("alice", "off"); r.code != 0 || r.stdout != "auto-download with alice: off (files wait for hush file get)\n" {
		t.Errorf("off: %+v", r)
	}
	if a, _ := b.AutoDownloadOf("alice", ""); a.Limit != 0 || a.Default {
		t.Errorf("the daemon has %+v", a)
	}
	var a apitypes.AutoDownload
	if r := run("alice", "2MiB", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &a) != nil || a.Limit != 2<<20 || a.Default {
		t.Errorf("2MiB --json: %+v", r)
	}
	if a, _ := b.AutoDownloadOf("bob", ""); !a.Default {
		t.Errorf("bob's policy changed with alice's: %+v", a)
	}
	if r := run("alice", "default"); r.code != 0 || !strings.HasSuffix(r.stdout, "(the default)\n") {
		t.Errorf("default: %+v", r)
	}
	if r := run("carol", "off"); r.code != 1 || r.stderr != "hush: unknown contact\n" {
		t.Errorf("unknown contact: %+v", r)
	}
	if r := run("club", "--group"); r.code != 1 || !strings.HasPrefix(r.stderr, "hush: ") {
		t.Errorf("unknown group: %+v", r)
	}
}

// waitSentFile waits until the daemon has n messages with files to
// alice and returns the last one's ID.
func waitSentFile(t *testing.T, b *apitest.Backend, n int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ms, _ := b.Files("alice"); len(ms) == n {
			return ms[n-1].ID
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not get file %d", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// file send follows the daemon's file events: a bar while it seals the
// file, then one while it uploads it to the relay, and returns when the
// relay has it. Not on a terminal, the same without bars; an upload that
// stops is a warning (the daemon goes on); --json prints the message,
// its upload done.
func TestFileSendProgress(t *testing.T) {
	b, home, cwd := withFileContacts(t)
	b.SetUploads(true)
	data := strings.Repeat("0123456789", 3000)
	os.WriteFile(filepath.Join(cwd, "notes.txt"), []byte(data), 0o600)
	bars := map[string]string{"HUSH_PROGRESS": "1"}

	// The seal shows while it goes on.
	release := make(chan struct{})
	b.HoldSeals(release)
	done, _, stderr := runAsyncEnv(bars, "--home", home, "file", "send", "alice", "notes.txt")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "sealing notes.txt"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no sealing bar while the daemon seals: %q", stderr.String())
		}
	}
	close(release)
	b.HoldSeals(nil)
	id := waitSentFile(t, b, 1)
	b.UploadProgress(id, 15000, false, "")
	b.UploadProgress(id, 30000, true, "")
	r := waitResult(t, done)
	if r.code != 0 || r.stdout != id+" queued\n" {
		t.Fatalf("file send: %+v", r)
	}
	for _, want := range []string{"sealing notes.txt", "uploading notes.txt", "100%", "(29/29 KiB"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %q", want, r.stderr)
		}
	}

	// No terminal: no bar, but it still waits for the upload.
	done, _, _ = runAsync("--home", home, "file", "send", "alice", "notes.txt", "--json")
	id = waitSentFile(t, b, 2)
	select {
	case r := <-done:
		t.Fatalf("file send returned before the upload: %+v", r)
	default:
	}
	b.UploadProgress(id, 30000, true, "")
	r = waitResult(t, done)
	var m apitypes.Message
	if err := json.Unmarshal([]byte(r.stdout), &m); r.code != 0 || err != nil || r.stderr != "" {
		t.Fatalf("file send --json: %+v (%v)", r, err)
	}
	if m.ID != id || m.File == nil || m.File.Upload != apitypes.UploadDone {
		t.Errorf("file send --json printed %+v", m)
	}

	// The upload stops for now: a warning, exit 0.
	done, _, _ = runAsyncEnv(bars, "--home", home, "file", "send", "alice", "notes.txt")
	id = waitSentFile(t, b, 3)
	b.UploadProgress(id, 1000, false, "relay: connect: connection refused; the upload goes on in 30s")
	r = waitResult(t, done)
	if r.code != 0 || r.stdout != id+" queued\n" ||
		!strings.Contains(r.stderr, "warning: the upload of "+id+" to the relay stopped: relay: connect: connection refused; the upload goes on in 30s\n") {
		t.Errorf("file send, upload stopped: %+v", r)
	}

	// Without a relay the send returns once sealed.
	b.SetUploads(false)
	r = hush(t, nil, bars, "--home", home, "file", "send", "alice", "notes.txt")
	if r.code != 0 || strings.Contains(r.stderr, "uploading") {
		t.Errorf("file send without a relay: %+v", r)
	}
	// --wait delivered: a bar of how far the recipient fetched it from
	// this device.
	done, _, stderr = runAsyncEnv(bars, "--home", home, "file", "send", "alice", "notes.txt", "--wait", "delivered")
	id = waitSentFile(t, b, 5)
	serve := apitypes.FileProgress{Phase: apitypes.PhaseServe, ID: id, Bytes: 15000, Total: 30000}
	b.Publish(apitypes.Event{Type: apitypes.EventFile, File: &serve})
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "fetched notes.txt"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no bar of the recipient's fetch: %q", stderr.String())
		}
	}
	serve.Bytes, serve.Done = 30000, true
	b.Publish(apitypes.Event{Type: apitypes.EventFile, File: &serve})
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "fetched notes.txt 100%"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the fetch bar did not fill: %q", stderr.String())
		}
	}
	b.SetState(id, apitypes.StateDelivered)
	if r := waitResult(t, done); r.code != 0 || r.stdout != id+" delivered\n" {
		t.Errorf("file send --wait delivered: %+v", r)
	}

	// A group file goes the same way.
	b.SetUploads(true)
	if _, err := b.CreateGroup("club"); err != nil {
		t.Fatal(err)
	}
	done, _, _ = runAsyncEnv(bars, "--home", home, "group", "file", "send", "club", "notes.txt")
	var gid string
	for deadline := time.Now().Add(5 * time.Second); gid == ""; time.Sleep(5 * time.Millisecond) {
		if ms, _ := b.GroupMessages("club", 0); len(ms) > 0 && ms[len(ms)-1].File != nil {
			gid = ms[len(ms)-1].ID
		}
		if time.Now().After(deadline) {
			t.Fatal("the group file did not reach the daemon")
		}
	}
	b.UploadProgress(gid, 30000, true, "")
	if r := waitResult(t, done); r.code != 0 || r.stdout != gid+" sent\n" || !strings.Contains(r.stderr, "uploading notes.txt") {
		t.Errorf("group file send: %+v", r)
	}
}
