package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/internal/testutil"
)

// waitMessageEvent reads sub until a message event with direction dir and
// text arrives, and returns it.
func waitMessageEvent(t *testing.T, sub *api.Subscription, dir, text string) apitypes.Event {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case ev, ok := <-sub.Events:
			if !ok {
				t.Fatalf("waiting for %q: the event stream ended: %v", text, sub.Err())
			}
			if ev.Type == apitypes.EventMessage && ev.Message != nil && ev.Message.Direction == dir && ev.Message.Text == text {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for the message %q (%s)", text, dir)
		}
	}
}

// TestEchoBots runs docs/API.md's two echo bots, the shell one (curl,
// jq, the SSE stream) and the Go one (api.Client), against alice's
// daemon: each answers bob's messages with their text. Each bot starts
// after bob's first message arrived and resumes from before it (AFTER),
// so nothing races its connecting; the second message arrives live.
func TestEchoBots(t *testing.T) {
	for _, tool := range []string{"curl", "jq", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the shell echo bot needs %s (.ci/run installs it)", tool)
		}
	}
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")
	aliceEvents, bobEvents := alice.subscribe(), bob.subscribe()
	defer aliceEvents.Close()
	defer bobEvents.Close()

	token := strings.TrimSpace(alice.mustRun("api", "token", "create", "--name", "echo-bot"))
	goBot := filepath.Join(binDir, "echobot")
	if out, err := exec.Command("go", "build", "-o", goBot, "../../docs/examples/echobot").CombinedOutput(); err != nil {
		t.Fatalf("building the Go echo bot: %v\n%s", err, out)
	}
	bots := []struct {
		name string
		cmd  func(after uint64) *exec.Cmd
	}{
		{"shell", func(after uint64) *exec.Cmd {
			cmd := exec.Command("sh", "../../docs/examples/echo-bot.sh")
			cmd.Env = append(os.Environ(), "HUSH_HOME="+alice.home, "HUSH_TOKEN="+token, fmt.Sprintf("AFTER=%d", after))
			return cmd
		}},
		{"go", func(after uint64) *exec.Cmd {
			return exec.Command(goBot, "--home", alice.home, "--after", fmt.Sprint(after))
		}},
	}
	for _, bot := range bots {
		first, second := bot.name+" bot, echo this", bot.name+" bot, and this, live ✨"
		bob.mustRun("send", "alice", first)
		ev := waitMessageEvent(t, aliceEvents, "in", first)

		cmd := bot.cmd(ev.Seq - 1)
		var log testutil.SyncBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the shell bot is a pipeline
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		waitMessageEvent(t, bobEvents, "in", first)
		bob.mustRun("send", "alice", second)
		waitMessageEvent(t, bobEvents, "in", second)

		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("%s bot did not stop on SIGTERM", bot.name)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s bot's output:\n%s", bot.name, &log)
		}
	}
	// Each message was echoed once.
	echoes := dir(bob.messages("alice"), "in")
	if len(echoes) != 4 {
		t.Errorf("bob got %d echoes, want 4: %+v", len(echoes), echoes)
	}
}

// TestAPITokensDaemon: a read-only token reads and is refused send with
// "forbidden"; once revoked (by the CLI, the daemon running) it gets 401.
func TestAPITokensDaemon(t *testing.T) {
	alice := newUser(t, "alice")
	alice.start()
	defer alice.stop()
	ro := strings.TrimSpace(alice.mustRun("api", "token", "create", "--read-only", "--name", "dashboard"))
	addr, err := os.ReadFile(filepath.Join(alice.home, api.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	rpc := func(body string) (int, api.Response) {
		req, _ := http.NewRequest("POST", "http://"+strings.TrimSpace(string(addr))+api.PathRPC, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ro)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r api.Response
		json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r
	}
	if status, r := rpc(`{"jsonrpc":"2.0","id":1,"method":"listContacts"}`); status != 200 || r.Error != nil {
		t.Fatalf("read-only listContacts: %d %+v", status, r.Error)
	}
	status, r := rpc(`{"jsonrpc":"2.0","id":2,"method":"send","params":{"to":"bob","text":"hi"}}`)
	if status != http.StatusForbidden || r.Error == nil || r.Error.Code != api.CodeForbidden || !strings.HasPrefix(r.Error.Message, "forbidden") {
		t.Fatalf("read-only send: %d %+v", status, r.Error)
	}
	if out := alice.mustRun("api", "token", "list"); !strings.Contains(out, "dashboard") || strings.Contains(out, ro) {
		t.Errorf("token list:\n%s", out)
	}
	alice.mustRun("api", "token", "revoke", "dashboard")
	if status, _ := rpc(`{"jsonrpc":"2.0","id":3,"method":"listContacts"}`); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", status)
	}
}

// TestBotDocs: docs/API.md shows the echo bots TestEchoBots runs, as they
// are.
func TestBotDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"../../docs/examples/echo-bot.sh", "../../docs/examples/echobot/main.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), string(b)+"```") {
			t.Errorf("docs/API.md does not show %s as it is", f)
		}
	}
}
