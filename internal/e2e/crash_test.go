package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"testing"
	"time"
)

// kill stops the daemon with SIGKILL, as a crash or an OOM kill would.
func (u *user) kill() {
	u.t.Helper()
	if u.daemon == nil {
		return
	}
	u.daemon.Process.Kill()
	u.daemon.Wait()
	u.daemon = nil
}

// Killing the sender's daemon with SIGKILL while it sends loses and
// doubles nothing, and the session goes on, as a user sees it. (The
// defences are proved deterministically in node: a ciphertext leaves
// before its commit only under a reserved ratchet index, and a retry
// with the same --txn-id makes the same message ID, which the recipient
// drops as a copy (TestCrashBetweenEncryptAndCommit,
// TestSendEarlyKilledBeforeCommit); a kill lands in those millisecond
// windows too rarely for this test to catch their removal.) Every tenth send is cut by a kill at a random moment:
// before the daemon reads it, while it encrypts and commits, or after,
// while earlier messages are still being delivered. The user retries
// the send with the same --txn-id, as the CLI's error tells them to.
func TestKilledSenderLosesAndDoublesNothing(t *testing.T) {
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.start()
	defer bob.stop()
	befriend(t, alice, bob, "alice", "bob")
	const total = 60
	var want []string
	for i := range total {
		text := fmt.Sprintf("msg %03d", i)
		want = append(want, text)
		txn := fmt.Sprintf("txn-%03d", i)
		if i%10 == 9 {
			cmd := exec.Command(alice.bin, "--home", alice.home, "send", "bob", text, "--txn-id", txn)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond) // the crash comes when it comes
			alice.kill()
			cmd.Wait()
			alice.start()
		}
		alice.mustRun("send", "bob", text, "--txn-id", txn) // a retry of a committed send returns it
	}
	expectExactly(t, bob, "alice", want)
	bob.mustRun("send", "alice", "got all sixty")
	eventually(t, "the reply at alice", func() bool {
		in := dir(alice.messages("bob"), "in")
		return len(in) == 1 && in[0].Text == "got all sixty"
	})
}
