package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/card"
)

// TestNATTraversal puts alice and bob each behind a NAT of their own (see
// natNet) with a relay on the public side, as their mailbox and circuit
// relay, and has them message each other both ways while both are online.
// Their daemons' debug logs say how they were connected ("peer connection"
// path=relayed or path=direct; node/host.go), and the test logs it.
//
// Every message must arrive in both variants, and the two devices must
// reach each other through the relay's circuit: each holds a reservation
// there and dials the other's /p2p-circuit address. A relayed connection is
// limited (go-libp2p's defaults: 2 min, 128 KiB), so no message travels on
// it: the outbox waits for a direct connection and, failing that within its
// dial timeout, deposits into the recipient's mailbox on the same relay.
//
//   - cone: nftables' masquerade keeps a flow's source port when it is
//     free, so one inside address:port maps to the same outside port
//     whatever the destination (endpoint-independent mapping), while only
//     replies come in (address- and port-dependent filtering). The port the
//     relay observes is the one the peer must aim at, so hole punching
//     (DCUtR, over the relayed connection) opens a direct connection, and
//     the test requires it.
//   - symmetric: masquerade fully-random gives every flow a random outside
//     port (endpoint-dependent mapping): the port the relay observes is not
//     the one a packet towards the peer leaves from, so hole punching
//     cannot succeed. The test requires that no direct connection appears:
//     the messages went through the relay.
func TestNATTraversal(t *testing.T) {
	requireNetns(t)
	for _, nat := range []struct {
		name, masq string
		direct     bool
	}{
		{"cone", "masquerade", true},
		{"symmetric", "masquerade fully-random", false},
	} {
		t.Run(nat.name, func(t *testing.T) {
			t.Parallel()
			natPair(t, nat.masq, nat.direct)
		})
	}
}

// natMessages is how many messages each side sends.
const natMessages = 5

func natPair(t *testing.T, masq string, wantDirect bool) {
	start := time.Now()
	world := newNATNet(t, masq, "a", "b")
	r := newRelay(t, "")
	startRelayIn(world, r, world.ns("pub"), "11.0.0.1")
	t.Cleanup(func() { r.stop(syscall.SIGTERM) })

	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.bin = world.wrap(world.ns("a"), alice.bin)
	bob.bin = world.wrap(world.ns("b"), bob.bin)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("relay log:\n%s", r.log)
		for name, u := range map[string]*user{"alice": alice, "bob": bob} {
			if u.log != nil {
				t.Logf("%s's log:\n%s", name, u.log)
			}
		}
	})
	for _, u := range []*user{alice, bob} {
		u.startBehindNAT(r)
		t.Cleanup(u.stop)
	}
	launched := time.Now()
	up := launched.Sub(start)
	// Each device is reachable through the relay once its link lists a
	// circuit address (a reservation is held) and its mailbox there.
	for _, u := range []*user{alice, bob} {
		within(t, 30*time.Second, "a link with a circuit address and a mailbox", func() bool {
			out, _, code := u.run("id")
			return code == 0 && linkReachableViaRelay(out)
		})
	}
	reserved := time.Since(launched)
	befriend(t, alice, bob, "alice", "bob")

	sent := time.Now()
	for i := range natMessages {
		alice.mustRun("send", "bob", fmt.Sprintf("nat alice %d", i))
		bob.mustRun("send", "alice", fmt.Sprintf("nat bob %d", i))
	}
	within(t, 40*time.Second, "every message delivered both ways", func() bool {
		for _, side := range []struct {
			u       *user
			contact string
		}{{alice, "bob"}, {bob, "alice"}} {
			ms := side.u.messages(side.contact)
			if len(dir(ms, "in")) < natMessages {
				return false
			}
			for _, m := range dir(ms, "out") {
				if m.State != "delivered" && m.State != "read" {
					return false
				}
			}
		}
		return true
	})
	delivered := time.Since(sent)
	for _, side := range []struct {
		u            *user
		contact, who string
	}{{alice, "bob", "bob"}, {bob, "alice", "alice"}} {
		in := dir(side.u.messages(side.contact), "in")
		if len(in) != natMessages {
			t.Fatalf("%d messages from %s, want %d (nothing doubled)", len(in), side.who, natMessages)
		}
		for i, m := range in {
			if want := fmt.Sprintf("nat %s %d", side.who, i); m.Text != want {
				t.Errorf("message %d from %s is %q, want %q", i, side.who, m.Text, want)
			}
		}
	}

	relayed, direct := connectionTimes(alice.log.String(), bob.log.String())
	if relayed.IsZero() {
		t.Fatal("no relayed connection between alice and bob: they did not reach each other through the relay's circuit")
	}
	if wantDirect {
		within(t, 10*time.Second, "a direct connection after hole punching", func() bool {
			_, direct = connectionTimes(alice.log.String(), bob.log.String())
			return !direct.IsZero()
		})
	} else if !direct.IsZero() {
		t.Fatal("a direct connection through a symmetric NAT: the test's NAT is not what it claims")
	}
	fallbacks := strings.Count(alice.log.String(), "direct delivery failed, using relays") +
		strings.Count(bob.log.String(), "direct delivery failed, using relays")
	how := "relayed only: hole punching failed, the messages went through the relay's mailboxes"
	if !direct.IsZero() {
		how = fmt.Sprintf("direct after hole punching (DCUtR) %v after the relayed connection", direct.Sub(relayed).Round(time.Millisecond))
	}
	t.Logf("NAT %q: %s. Namespaces, relay and daemons up in %v (binaries built on first use), circuit reservations %v later; "+
		"%d messages each way delivered in %v; outboxes fell back to the relay's mailbox %d times; %v in all",
		masq, how, up.Round(time.Millisecond), reserved.Round(time.Millisecond), natMessages,
		delivered.Round(time.Millisecond), fallbacks, time.Since(start).Round(time.Millisecond))
}

// linkReachableViaRelay reports whether the link on the first line of
// `hush id` lists a mailbox and a /p2p-circuit address.
func linkReachableViaRelay(id string) bool {
	c, err := card.ParseLink(strings.TrimSpace(strings.SplitN(id, "\n", 2)[0]), time.Now())
	if err != nil || len(c.Devices) == 0 || len(c.Devices[0].Mailboxes) == 0 {
		return false
	}
	for _, b := range c.Devices[0].Addrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				return true
			}
		}
	}
	return false
}

// connectionTimes reads the daemons' "peer connection" debug lines and
// returns when the first relayed and the first direct connection between
// them opened (zero if none did).
func connectionTimes(logs ...string) (relayed, direct time.Time) {
	for _, log := range logs {
		for _, line := range strings.Split(log, "\n") {
			if !strings.Contains(line, `msg="peer connection"`) {
				continue
			}
			var at time.Time
			var path string
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "time="); ok {
					at, _ = time.Parse(time.RFC3339Nano, v)
				} else if v, ok := strings.CutPrefix(f, "path="); ok {
					path = v
				}
			}
			p := &direct
			if path == "relayed" {
				p = &relayed
			} else if path != "direct" {
				continue
			}
			if p.IsZero() || at.Before(*p) {
				*p = at
			}
		}
	}
	return relayed, direct
}
