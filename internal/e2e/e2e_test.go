package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/internal/testutil"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// hushBin builds cmd/hush once per test binary.
func hushBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "hush-e2e-bin")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir, "../../cmd/hush").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "hush")
}

type user struct {
	t      testing.TB
	bin    string
	home   string
	daemon *exec.Cmd
	log    *testutil.SyncBuffer
	pass   string // passphrase file, "" for --no-passphrase
}

// displayName is the display name a test user's card carries: long and
// distinctive, so a leak check can grep for it.
func displayName(name string) string { return name + "-display-name" }

func newUser(t testing.TB, name string) *user {
	// The directory is not named after the user, so a path in a log is
	// not mistaken for a leaked name.
	u := &user{t: t, bin: hushBin(t), home: filepath.Join(t.TempDir(), "home")}
	u.mustRun("init", "--name", displayName(name), "--no-passphrase")
	return u
}

// run runs a CLI verb and returns stdout, stderr and the exit code.
func (u *user) run(args ...string) (string, string, int) {
	u.t.Helper()
	cmd := exec.Command(u.bin, append([]string{"--home", u.home}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		u.t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (u *user) mustRun(args ...string) string {
	u.t.Helper()
	out, errs, code := u.run(args...)
	if code != 0 {
		u.t.Fatalf("hush %v: exit %d: %s", args, code, errs)
	}
	return out
}

// start runs the daemon and waits until it answers.
func (u *user) start() {
	u.t.Helper()
	u.launch()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, code := u.run("contact", "list"); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("daemon did not start: %s", u.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// launch starts the daemon and returns at once, as `hush daemon &` does.
func (u *user) launch(extra ...string) {
	u.t.Helper()
	args := []string{"--home", u.home, "daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}
	args = append(args, extra...)
	if os.Getenv("HUSH_TEST_LOG") != "" {
		args = append(args, "--debug")
	}
	if u.pass != "" {
		args = append(args, "--passphrase-file", u.pass)
	}
	cmd := exec.Command(u.bin, args...)
	if u.log == nil {
		u.log = &testutil.SyncBuffer{} // kept across restarts: the leak check reads all of it
	}
	cmd.Stdout, cmd.Stderr = u.log, u.log
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	u.daemon = cmd
}

// stop sends SIGTERM and waits for a clean exit.
func (u *user) stop() {
	u.t.Helper()
	if u.daemon == nil {
		return
	}
	u.daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- u.daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			u.t.Errorf("daemon exit: %v\n%s", err, u.log)
		}
	case <-time.After(20 * time.Second):
		u.daemon.Process.Kill()
		u.t.Errorf("daemon did not stop on SIGTERM")
	}
	u.daemon = nil
}

func (u *user) link() string {
	return strings.SplitN(u.mustRun("id"), "\n", 2)[0]
}

type message struct {
	ID        string              `json:"id"`
	Direction string              `json:"direction"`
	Text      string              `json:"text"`
	State     string              `json:"state"`
	Time      time.Time           `json:"time"`
	ReplyTo   string              `json:"reply_to"`
	Edited    bool                `json:"edited"`
	Deleted   bool                `json:"deleted"`
	Reactions map[string][]string `json:"reactions"`
}

func (u *user) messages(contact string) []message {
	u.t.Helper()
	var ms []message
	if err := json.Unmarshal([]byte(u.mustRun("messages", contact, "--json", "--limit", "0")), &ms); err != nil {
		u.t.Fatal(err)
	}
	return ms
}

func dir(ms []message, d string) []message {
	var out []message
	for _, m := range ms {
		if m.Direction == d {
			out = append(out, m)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// befriend exchanges links both ways.
func befriend(t testing.TB, a, b *user, aName, bName string) {
	a.mustRun("contact", "add", bName, b.link())
	b.mustRun("contact", "add", aName, a.link())
}

func TestTwoDaemonsChat(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")

	var secrets []string
	for i := range 20 {
		a := fmt.Sprintf("from alice %d ✨ secret-a%d", i, i)
		b := fmt.Sprintf("from bob %d secret-b%d", i, i)
		secrets = append(secrets, a, b)
		alice.mustRun("send", "bob", a)
		bob.mustRun("send", "alice", b)
	}
	eventually(t, "20 messages each way, delivered", func() bool {
		ma, mb := alice.messages("bob"), bob.messages("alice")
		if len(dir(ma, "in")) != 20 || len(dir(mb, "in")) != 20 {
			return false
		}
		for _, m := range append(dir(ma, "out"), dir(mb, "out")...) {
			if m.State != "delivered" {
				return false
			}
		}
		return true
	})
	for i, m := range dir(bob.messages("alice"), "in") {
		if want := fmt.Sprintf("from alice %d ✨ secret-a%d", i, i); m.Text != want {
			t.Fatalf("bob's message %d is %q, want %q (order)", i, m.Text, want)
		}
	}
	for i, m := range dir(alice.messages("bob"), "in") {
		if want := fmt.Sprintf("from bob %d secret-b%d", i, i); m.Text != want {
			t.Fatalf("alice's message %d is %q, want %q (order)", i, m.Text, want)
		}
	}

	// Edit, delete, reaction and read receipt show on the other side.
	outs := dir(alice.messages("bob"), "out")
	edited, deleted := outs[0], outs[1]
	bobsFirst := dir(alice.messages("bob"), "in")[0]
	alice.mustRun("edit", "bob", edited.ID, "edited text")
	alice.mustRun("delete", "bob", deleted.ID)
	alice.mustRun("react", "bob", bobsFirst.ID, "❤️")
	bob.mustRun("read", "alice")
	eventually(t, "edit, delete, reaction and read receipt", func() bool {
		var okEdit, okDel, okReact bool
		for _, m := range bob.messages("alice") {
			switch m.ID {
			case edited.ID:
				okEdit = m.Edited && m.Text == "edited text"
			case deleted.ID:
				okDel = m.Deleted && m.Text == ""
			case bobsFirst.ID:
				okReact = len(m.Reactions["❤️"]) == 1
			}
		}
		read := 0
		for _, m := range dir(alice.messages("bob"), "out") {
			if m.State == "read" {
				read++
			}
		}
		return okEdit && okDel && okReact && read == 20
	})
	secrets = append(secrets, "edited text")

	// Restart both: history and contacts intact.
	alice.stop()
	bob.stop()
	// Bob is away; Alice sends three messages, then also goes down.
	alice.start()
	for i := range 3 {
		alice.mustRun("send", "bob", fmt.Sprintf("while you were away %d", i))
	}
	alice.stop()
	alice.start()
	bob.start()
	eventually(t, "queued messages after restart", func() bool { return len(dir(bob.messages("alice"), "in")) == 23 })
	time.Sleep(500 * time.Millisecond)
	in := dir(bob.messages("alice"), "in")
	if len(in) != 23 {
		t.Fatalf("bob has %d messages, want 23 (nothing doubled)", len(in))
	}
	for i := range 3 {
		if in[20+i].Text != fmt.Sprintf("while you were away %d", i) {
			t.Fatalf("queued message %d is %q", i, in[20+i].Text)
		}
	}
	if out := alice.mustRun("contact", "list"); !strings.Contains(out, "bob") {
		t.Fatalf("contacts lost after restart: %q", out)
	}
	if len(alice.messages("bob")) != 43 {
		t.Fatalf("alice's history has %d messages after restarts, want 43", len(alice.messages("bob")))
	}

	// Nothing readable on disk: no message text, contact name or key.
	alice.stop()
	bob.stop()
	var ids []string
	for _, u := range []*user{alice, bob} {
		ids = append(ids, accountOf(t, u))
	}
	// Needles are long enough not to turn up by chance in ciphertext (a
	// 3-byte name would, in a few hundred KiB of random bytes).
	needles := append(secrets, "while you were away", displayName("alice"), displayName("bob"))
	for _, id := range ids {
		raw, _ := hex.DecodeString(id)
		needles = append(needles, id, string(raw))
	}
	for _, u := range []*user{alice, bob} {
		grepTree(t, u.home, needles, "api.token")
		for _, n := range needles[:len(needles)-2*len(ids)] {
			if strings.Contains(u.log.String(), n) {
				t.Errorf("daemon log of %s contains %q", filepath.Base(u.home), n)
			}
		}
	}
}

// accountOf reads a user's account key hex from `hush id --json`.
func accountOf(t *testing.T, u *user) string {
	var self struct {
		Account string `json:"account"`
	}
	u.start()
	defer u.stop()
	if err := json.Unmarshal([]byte(u.mustRun("id", "--json")), &self); err != nil || len(self.Account) != 64 {
		t.Fatalf("hush id --json: %v %q", err, self.Account)
	}
	return self.Account
}

// grepTree fails if any file under root (except skip) contains a needle.
func grepTree(t *testing.T, root string, needles []string, skip string) {
	t.Helper()
	files := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == skip {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		for _, n := range needles {
			if n != "" && bytes.Contains(b, []byte(n)) {
				t.Errorf("%s contains %q in clear", path, n)
			}
		}
		return nil
	})
	if files < 3 {
		t.Fatalf("only %d files under %s: nothing was checked", files, root)
	}
}

func TestBadInput(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	good := bob.link()

	// Links: malformed, truncated, bad signature.
	body := good[len("hush://"):]
	flipped := []byte(body)
	flipped[len(flipped)/2] ^= 0x01
	if flipped[len(flipped)/2] < 'A' || flipped[len(flipped)/2] > 'Z' {
		flipped[len(flipped)/2] = 'Q'
	}
	for name, link := range map[string]string{
		"not a link":    "https://example.com",
		"garbage":       "hush://not-base32!",
		"truncated":     good[:len(good)*2/3],
		"bad signature": "hush://" + string(flipped),
	} {
		_, errs, code := alice.run("contact", "add", "bob", link)
		if code == 0 || strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "hush: ") {
			t.Errorf("%s: exit %d, stderr %q: want one clear line and a non-zero exit", name, code, errs)
		}
	}
	if out := alice.mustRun("contact", "list", "--json"); strings.Contains(out, "bob") {
		t.Fatal("a bad link added a contact")
	}
	alice.mustRun("contact", "add", "bob", good)

	// Unknown contact, empty and oversized messages.
	for name, args := range map[string][]string{
		"unknown contact": {"send", "nobody", "hi"},
		"empty":           {"send", "bob", ""},
		"oversized":       {"send", "bob", strings.Repeat("x", 16<<10+1)},
	} {
		_, errs, code := alice.run(args...)
		if code == 0 || !strings.HasPrefix(errs, "hush: ") {
			t.Errorf("%s: exit %d, stderr %q", name, code, errs)
		}
		if name == "oversized" && !strings.Contains(errs, "16384") {
			t.Errorf("oversized: error does not state the limit: %q", errs)
		}
	}
	if len(alice.messages("bob")) != 0 {
		t.Fatal("a refused send left a message")
	}

	// Second daemon on the same home.
	cmd := exec.Command(alice.bin, "--home", alice.home, "daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another daemon") {
		t.Errorf("second daemon: err %v, output %q", err, out)
	}

	// Garbage on /hush/msg/1 from a plain libp2p peer: the daemon keeps serving.
	garbage(t, alice)
	alice.mustRun("send", "bob", "after garbage")
	eventually(t, "message after garbage", func() bool {
		out, _, code := bob.run("request", "list", "--json") // a message request: bob never added alice
		return code == 0 && strings.Contains(out, "after garbage")
	})

	// The HTTP API refuses a call without the token.
	addr, err := os.ReadFile(filepath.Join(alice.home, "api.addr"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+strings.TrimSpace(string(addr))+"/api/v1/rpc", "application/json",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"listContacts"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API call without token: HTTP %d, want 401", resp.StatusCode)
	}

	// No daemon: one line saying how to start it.
	nobody := newUser(t, "carol")
	_, errs, code := nobody.run("contact", "list")
	if code == 0 || !strings.Contains(errs, "daemon") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("no daemon: exit %d, %q", code, errs)
	}
}

// garbage opens /hush/msg/1 to u's daemon and writes junk.
func garbage(t *testing.T, u *user) {
	t.Helper()
	var addrLine string
	for _, l := range strings.Split(u.log.String(), "\n") {
		if strings.HasPrefix(l, "/ip4/") {
			addrLine = strings.TrimSpace(l)
		}
	}
	m, err := ma.NewMultiaddr(addrLine)
	if err != nil {
		t.Fatalf("no listen address in the daemon log: %v", err)
	}
	pi, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *pi); err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0, 0, 0, 5, 1, 2, 3, 4, 5},
		{0xff, 0xff, 0xff, 0xff},
	} {
		s, err := h.NewStream(ctx, pi.ID, "/hush/msg/1")
		if err != nil {
			t.Fatal(err)
		}
		s.Write(junk)
		s.CloseWrite()
		buf := make([]byte, 64)
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		s.Read(buf)
		s.Reset()
	}
}

func TestWrongPassphrase(t *testing.T) {
	bin := hushBin(t)
	home := filepath.Join(t.TempDir(), "dave")
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600)
	u := &user{t: t, bin: bin, home: home, pass: pass}
	u.mustRun("init", "--name", "dave", "--passphrase-file", pass)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not it\n"), 0o600)
	cmd := exec.Command(bin, "--home", home, "daemon", "--passphrase-file", wrong, "--no-mdns")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "wrong passphrase") {
		t.Fatalf("wrong passphrase: err %v, output %q", err, out)
	}
	// Nothing lost: the right passphrase still opens it.
	u.start()
	u.mustRun("id")
	u.stop()
}
