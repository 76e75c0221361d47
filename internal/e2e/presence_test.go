package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hushnet/hush/api"
)

// startPresence runs u's daemon with the relay and a one-second presence
// heartbeat.
func (u *user) startPresence(r *relayProc) {
	u.t.Helper()
	cfg, _ := json.Marshal(map[string]any{"relays": []string{r.addr}, "presence_heartbeat": "1s"})
	if err := os.WriteFile(filepath.Join(u.home, "config.json"), cfg, 0o600); err != nil {
		u.t.Fatal(err)
	}
	u.start()
}

// waitPresenceRounds waits until u's daemon has run k more presence
// heartbeat rounds (health's presence_rounds).
func (u *user) waitPresenceRounds(k int64) {
	u.t.Helper()
	rounds := func() int64 {
		var h struct {
			Rounds int64 `json:"presence_rounds"`
		}
		if err := api.NewClient(filepath.Join(u.home, api.SocketFile)).Call(context.Background(), "health", nil, &h); err != nil {
			u.t.Fatal(err)
		}
		return h.Rounds
	}
	from := rounds()
	eventually(u.t.(*testing.T), "presence heartbeats", func() bool { return rounds() >= from+k })
}

// Two daemons with a relay: presence is off until both turn it on, then
// each lists the other online; one stopping is "last seen" at once. With
// presence on and bob offline, alice's heartbeats deposit nothing on the
// relay (its deposit counter), while a text in the same situation is
// deposited; when bob is back (his receipt connects him to alice
// directly) he is online again.
func TestPresenceCLI(t *testing.T) {
	r := newRelay(t, "")
	r.metrics = freeAddr(t)
	r.start()
	defer r.stop(syscall.SIGTERM)
	deposits := func() (n, bytes float64) {
		page := scrape(t, "http://"+r.metrics+"/metrics")
		return metricValue(page, "hush_relay_deposits_accepted_total"), metricValue(page, "hush_relay_deposit_bytes_total")
	}
	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.startPresence(r)
	defer alice.stop()
	bob.startPresence(r)
	alice.waitMailboxes(1)
	bob.waitMailboxes(1)
	befriend(t, alice, bob, "alice", "bob")
	alice.mustRun("send", "bob", "hi bob", "--wait", "delivered")
	bob.mustRun("send", "alice", "hi alice", "--wait", "delivered")

	if out := alice.mustRun("presence"); !strings.Contains(out, "presence is off") {
		t.Fatalf("presence by default: %q", out)
	}
	alice.mustRun("presence", "on")
	alice.waitPresenceRounds(3)
	if out := alice.mustRun("contact", "list"); strings.Contains(out, "online") || strings.Contains(out, "last seen") {
		t.Fatalf("alice sees bob's presence while his is off: %q", out)
	}
	bob.mustRun("presence", "on")
	eventually(t, "alice sees bob online", func() bool { return strings.Contains(alice.mustRun("chats"), "· online") })
	eventually(t, "bob sees alice online", func() bool { return strings.Contains(bob.mustRun("contact", "list"), "online") })

	bob.stop()
	eventually(t, "alice sees bob last seen", func() bool {
		return strings.Contains(alice.mustRun("contact", "list"), "last seen just now")
	})
	n0, b0 := deposits()
	alice.waitPresenceRounds(3) // three heartbeats with bob offline
	if n, b := deposits(); n != n0 {
		t.Fatalf("the relay took %v deposits (%v bytes) while bob was offline with presence on", n-n0, b-b0)
	}
	alice.mustRun("send", "bob", "through the relay")
	waitNoQueued(t, alice, "bob")
	n1, b1 := deposits()
	if n1-n0 != 1 {
		t.Fatalf("the relay took %v deposits, want 1 (the text)", n1-n0)
	}
	t.Logf("deposited while bob was offline and presence on: %v envelope(s), %v bytes (the text only)", n1-n0, b1-b0)

	bob.start()
	defer bob.stop()
	eventually(t, "bob gets the text", func() bool { return len(dir(bob.messages("alice"), "in")) == 2 })
	eventually(t, "alice sees bob online again", func() bool { return strings.Contains(alice.mustRun("chats"), "· online") })

	// Off: alice no longer sees bob, and bob no longer sees alice.
	bob.mustRun("presence", "off")
	eventually(t, "alice no longer sees bob", func() bool {
		out := alice.mustRun("contact", "list")
		return !strings.Contains(out, "online") && !strings.Contains(out, "last seen")
	})
	if out := bob.mustRun("chats"); strings.Contains(out, "online") || strings.Contains(out, "last seen") {
		t.Errorf("bob, off, sees alice's presence: %q", out)
	}
}
