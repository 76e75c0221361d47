package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
)

// runDemo shows hush working on embedded defaults: it creates two
// identities in a temporary directory, starts a relay and two real
// `hush daemon` processes on loopback, makes them contacts, exchanges
// messages through the local API, registers the recipient for wake-ups
// with a push bridge, sends one through the relay while the recipient is
// offline (the relay has a local WebPush service wake it), prints both
// sides of the conversation, then stops every process it started (by
// PID) and deletes the directory.
func runDemo(ctx context.Context, e *env, args []string) error {
	if _, err := parseArgs(e, newFlags(e, "demo"), args, 0, 0, "demo"); err != nil {
		return err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hush-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(format string, a ...any) { fmt.Fprintf(e.stdout, format+"\n", a...) }

	say("hush demo — two nodes on 127.0.0.1, end-to-end encrypted (PQXDH + Double Ratchet)")
	say("working directory: %s (deleted at the end)\n", dir)
	wake, err := startDemoWake(ctx, self, dir, say)
	if err != nil {
		return err
	}
	defer wake.stop()
	rly, err := startDemoRelay(ctx, filepath.Join(filepath.Dir(self), "hush-relay"), dir, wake.relayConfig)
	if err != nil {
		return fmt.Errorf("start the relay: %w", err)
	}
	defer rly.stop()
	say("started a relay (pid %d) at %s; it asks the bridge to wake sleeping mailboxes", rly.cmd.Process.Pid, rly.addr)
	var daemons []*demoDaemon
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	homes := map[string]string{}
	for _, name := range []string{"Alice", "Bob"} {
		home := filepath.Join(dir, strings.ToLower(name))
		homes[name] = home
		if _, err := initIdentity(home, name, "", nil); err != nil {
			return fmt.Errorf("init %s: %w", name, err)
		}
		cfg := fmt.Sprintf(`{"relays": [%q]}`, rly.addr)
		if err := os.WriteFile(filepath.Join(home, "config.json"), []byte(cfg), 0o600); err != nil {
			return err
		}
		d, err := startDemoDaemon(ctx, self, home, filepath.Join(dir, strings.ToLower(name)+".log"))
		if err != nil {
			return fmt.Errorf("start %s's daemon: %w", name, err)
		}
		daemons = append(daemons, d)
		say("started %s's daemon (pid %d), with a mailbox on the relay", name, d.cmd.Process.Pid)
	}
	alice, bob := daemons[0], daemons[1]
	for _, d := range daemons {
		if err := waitMailbox(ctx, d); err != nil {
			return err
		}
	}

	var sa, sb apitypes.Self
	if err := alice.c.Call(ctx, "getSelf", nil, &sa); err != nil {
		return err
	}
	if err := bob.c.Call(ctx, "getSelf", nil, &sb); err != nil {
		return err
	}
	say("Alice's contact link: %s… (%d characters)", sa.Link[:40], len(sa.Link))
	if err := alice.c.Call(ctx, "addContact", map[string]any{"name": "Bob", "link": sb.Link}, nil); err != nil {
		return err
	}
	if err := bob.c.Call(ctx, "addContact", map[string]any{"name": "Alice", "link": sa.Link}, nil); err != nil {
		return err
	}
	var number struct {
		SafetyNumber string `json:"safetyNumber"`
	}
	if err := alice.c.Call(ctx, "safetyNumber", map[string]any{"name": "Bob"}, &number); err != nil {
		return err
	}
	say("links exchanged; safety number (same on both sides): %s\n", number.SafetyNumber)

	send := func(d *demoDaemon, to, text string) (apitypes.Message, error) {
		var m apitypes.Message
		err := d.c.Call(ctx, "send", map[string]any{"to": to, "text": text}, &m)
		return m, err
	}
	wait := func(d *demoDaemon, id, state string) error {
		return d.c.Call(ctx, "waitMessage", map[string]any{"id": id, "state": state, "timeoutMs": 20000}, nil)
	}
	first, err := send(alice, "Bob", "Hi Bob! This is end-to-end encrypted 🔐")
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := wait(alice, first.ID, "delivered"); err != nil {
		return err
	}
	say("first message (it carries the PQXDH handshake) delivered %v after send returned", time.Since(t0).Round(time.Millisecond))
	reply, err := send(bob, "Alice", "Hi Alice 👋 no server saw that.")
	if err != nil {
		return err
	}
	if err := wait(bob, reply.ID, "delivered"); err != nil {
		return err
	}
	if _, err := send(alice, "Bob", "Typo in this mesage"); err != nil {
		return err
	}
	var hist []apitypes.Message
	if err := alice.c.Call(ctx, "listMessages", map[string]any{"contact": "Bob"}, &hist); err != nil {
		return err
	}
	last := hist[len(hist)-1]
	edit := map[string]any{"to": "Bob", "kind": "edit", "target": last.ID, "text": "Typo fixed in this message"}
	if err := alice.c.Call(ctx, "send", edit, nil); err != nil {
		return err
	}
	if err := bob.c.Call(ctx, "send", map[string]any{"to": "Alice", "kind": "reaction", "target": first.ID, "text": "❤️"}, nil); err != nil {
		return err
	}
	if err := wait(alice, last.ID, "delivered"); err != nil {
		return err
	}
	if err := bob.c.Call(ctx, "markRead", map[string]any{"contact": "Alice"}, nil); err != nil {
		return err
	}
	if err := wait(alice, last.ID, "read"); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond) // let the reaction land

	// Bob's phone registers for wake-ups, then sleeps; Alice's next
	// message waits, sealed, on the relay, which has Bob woken.
	if err := wake.register(ctx, self, dir, homes["Bob"], bob, say); err != nil {
		return fmt.Errorf("push registration: %w", err)
	}
	bob.stop()
	say("\nBob's daemon stopped (offline).")
	offline, err := send(alice, "Bob", "Sent while you were offline: the relay kept it sealed 📬")
	if err != nil {
		return err
	}
	if err := wait(alice, offline.ID, "sent"); err != nil {
		return err
	}
	leaks := []string{"Alice", "Bob", sa.Account, sb.Account, sa.PeerID, sb.PeerID, offline.Text}
	if err := wake.awaitWake(ctx, leaks, say); err != nil {
		return err
	}
	say("Alice's message is on the relay (state: sent). Starting Bob again…")
	if bob, err = startDemoDaemon(ctx, self, homes["Bob"], filepath.Join(dir, "bob2.log")); err != nil {
		return err
	}
	daemons[1] = bob
	t1 := time.Now()
	if err := wait(alice, offline.ID, "delivered"); err != nil {
		return err
	}
	say("Bob fetched it from his mailbox; Alice got his delivery receipt %v after he started.", time.Since(t1).Round(time.Millisecond))
	if err := wake.noMoreWakes(say); err != nil {
		return err
	}

	if err := demoGroup(ctx, alice, bob, say); err != nil {
		return fmt.Errorf("group: %w", err)
	}

	for _, side := range []struct {
		d     *demoDaemon
		who   string
		other string
	}{{alice, "Alice", "Bob"}, {bob, "Bob", "Alice"}} {
		var ms []apitypes.Message
		if err := side.d.c.Call(ctx, "listMessages", map[string]any{"contact": side.other}, &ms); err != nil {
			return err
		}
		say("\n%s's view of the conversation with %s:", side.who, side.other)
		for _, m := range ms {
			arrow := "→"
			if m.Direction == "in" {
				arrow = "←"
			}
			extra := ""
			if m.Edited {
				extra += " (edited)"
			}
			for emoji, who := range m.Reactions {
				extra += fmt.Sprintf(" [%s %s]", emoji, strings.Join(who, ","))
			}
			say("  %s %-9s %s%s", arrow, m.State, m.Text, extra)
		}
	}
	for _, d := range daemons {
		d.stop()
	}
	daemons = nil
	rly.stop()
	wake.stop()
	say("\nstopped both daemons and the relay, then the push bridge and the push service; demo took %v.", time.Since(start).Round(100*time.Millisecond))
	say("Try it yourself: hush --home /tmp/me init --name Me --no-passphrase && hush --home /tmp/me daemon")
	return nil
}

// demoGroup shows a group: Alice creates it and invites Bob, Bob
// accepts, and a message from each arrives at the other over GossipSub
// (sender keys, the topic layer).
func demoGroup(ctx context.Context, alice, bob *demoDaemon, say func(string, ...any)) error {
	const name = "Demo group"
	var g apitypes.Group
	if err := alice.c.Call(ctx, "createGroup", map[string]any{"name": name}, &g); err != nil {
		return err
	}
	if err := alice.c.Call(ctx, "inviteToGroup", map[string]any{"group": name, "contact": "Bob"}, nil); err != nil {
		return err
	}
	poll := func(what string, cond func() (bool, error)) error {
		for {
			ok, err := cond()
			if err != nil || ok {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	members := func(d *demoDaemon, pending bool, n int) func() (bool, error) {
		return func() (bool, error) {
			var gs []apitypes.Group
			if err := d.c.Call(ctx, "listGroups", nil, &gs); err != nil {
				return false, err
			}
			active := 0
			for _, m := range append([]apitypes.Group(nil), gs...) {
				if m.Name != name || m.Pending != pending {
					continue
				}
				if pending {
					return true, nil
				}
				for _, mm := range m.Members {
					if !mm.Invited {
						active++
					}
				}
			}
			return !pending && active == n, nil
		}
	}
	if err := poll("the invitation", members(bob, true, 0)); err != nil {
		return err
	}
	if err := bob.c.Call(ctx, "acceptGroup", map[string]any{"group": name}, nil); err != nil {
		return err
	}
	for _, d := range []*demoDaemon{alice, bob} {
		if err := poll("both members", members(d, false, 2)); err != nil {
			return err
		}
	}
	say("\nAlice created %q (epoch %d) and invited Bob; he accepted.", name, g.Epoch)
	send := func(d *demoDaemon, text string) error {
		return poll("the group keys", func() (bool, error) {
			err := d.c.Call(ctx, "sendGroup", map[string]any{"group": name, "text": text}, nil)
			if err != nil && strings.Contains(err.Error(), "keys have not arrived") {
				return false, nil
			}
			return err == nil, err
		})
	}
	if err := send(alice, "Welcome to the group 👋"); err != nil {
		return err
	}
	if err := send(bob, "Thanks! Sender keys over GossipSub 🗝️"); err != nil {
		return err
	}
	var ms []apitypes.Message
	if err := poll("both group messages", func() (bool, error) {
		for _, d := range []*demoDaemon{alice, bob} {
			if err := d.c.Call(ctx, "listGroupMessages", map[string]any{"group": name}, &ms); err != nil {
				return false, err
			}
			if len(ms) < 2 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return err
	}
	say("Bob's view of %q:", name)
	for _, m := range ms {
		say("  %-6s %s", m.Sender+":", m.Text)
	}
	return nil
}

type demoDaemon struct {
	cmd     *exec.Cmd
	c       *api.Client
	done    chan error
	stopped bool
}

func startDemoDaemon(ctx context.Context, self, home, logPath string) (*demoDaemon, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "--home", home, "daemon", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--api-addr", "")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d := &demoDaemon{cmd: cmd, c: api.NewClient(filepath.Join(home, api.SocketFile)), done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait(); logf.Close() }()
	for {
		err := d.c.Call(ctx, "version", nil, nil)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, api.ErrNoDaemon) {
			d.stop()
			return nil, err
		}
		select {
		case err := <-d.done:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("daemon exited (%v): %s", err, strings.TrimSpace(string(b)))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop ends the daemon by its PID: SIGTERM, then SIGKILL after 10 s.
func (d *demoDaemon) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// waitMailbox waits until the daemon's link lists its relay mailbox.
func waitMailbox(ctx context.Context, d *demoDaemon) error {
	for {
		var s apitypes.Self
		if err := d.c.Call(ctx, "getSelf", nil, &s); err != nil {
			return err
		}
		if s.Mailboxes > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no mailbox on the relay: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demoServer is a server process the demo started (hush-relay or
// hush-pushbridge): it prints its address on its first stdout line; the
// rest of its output goes to a log file in the demo's directory.
type demoServer struct {
	cmd     *exec.Cmd
	addr    string
	done    chan error
	stopped bool
}

// startDemoRelay runs hush-relay (built next to hush) on loopback.
func startDemoRelay(ctx context.Context, bin, dir, config string) (*demoServer, error) {
	cmd := exec.Command(bin, "--data", filepath.Join(dir, "relay"), "--listen", "/ip4/127.0.0.1/tcp/0", "--config", config)
	r, err := startDemoServer(ctx, cmd, filepath.Join(dir, "relay.log"))
	if err != nil {
		return nil, err
	}
	if !strings.Contains(r.addr, "/p2p/") {
		r.stop()
		return nil, fmt.Errorf("relay printed %q, not an address", r.addr)
	}
	return r, nil
}

// startDemoServer starts cmd and waits for its first line.
func startDemoServer(ctx context.Context, cmd *exec.Cmd, logPath string) (*demoServer, error) {
	if _, err := os.Stat(cmd.Path); err != nil {
		return nil, fmt.Errorf("%s not found: run `make build` first", cmd.Path)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	s := &demoServer{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		br := bufio.NewReader(out)
		l, _ := br.ReadString('\n')
		lines <- strings.TrimSpace(l)
		io.Copy(logf, br)
		close(copied)
	}()
	go func() {
		<-copied
		s.done <- cmd.Wait()
		logf.Close()
	}()
	select {
	case s.addr = <-lines:
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
	if s.addr == "" {
		s.stop()
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%s exited: %s", filepath.Base(cmd.Path), strings.TrimSpace(string(b)))
	}
	return s, nil
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 10 s.
func (s *demoServer) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}
