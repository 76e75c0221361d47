package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// natNet is a small internet made of network namespaces, connected to
// nothing outside them:
//
//	pub        bridge br0 11.0.0.1/24: the relay's routable address
//	r<dev>     a home router: wan 11.0.0.N/24 on the bridge, lan 10.0.N.1/24,
//	           forwarding, nftables masquerade out of wan, unsolicited
//	           packets from wan dropped
//	<dev>      a device: eth0 10.0.N.2/24, default route via its router
//
// 11.0.0.0/24 stands for the public internet because libp2p neither
// hole-punches nor trusts observed addresses in private or documentation
// ranges (manet.IsPublicAddr); no packet leaves the namespaces.
type natNet struct {
	t      *testing.T
	prefix string
}

// requireNetns skips the test unless it may create network namespaces
// (root and iproute2's ip); CI runs .ci/run as root, so it runs there.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for ip netns (CI runs .ci/run as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip for network namespaces (.ci/run installs it)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("nft not found: install nftables (.ci/run does)")
	}
}

// newNATNet builds the public namespace and, for each device name, a
// router masquerading with masq (an nftables statement) and the device
// behind it. Everything is deleted when the test ends, failed or not.
func newNATNet(t *testing.T, masq string, devices ...string) *natNet {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	n := &natNet{t: t, prefix: fmt.Sprintf("hush%d-%s", os.Getpid(), hex.EncodeToString(b))}
	var created []string
	t.Cleanup(func() {
		for _, ns := range created {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", ns, err, out)
			}
		}
	})
	add := func(name string) string {
		ns := n.ns(name)
		n.ip("netns", "add", ns)
		created = append(created, ns)
		n.ip("-n", ns, "link", "set", "lo", "up") // the daemon's API listens on 127.0.0.1
		return ns
	}
	pub := add("pub")
	n.ip("-n", pub, "link", "add", "br0", "type", "bridge")
	n.ip("-n", pub, "addr", "add", "11.0.0.1/24", "dev", "br0")
	n.ip("-n", pub, "link", "set", "br0", "up")
	for i, dev := range devices {
		router, host := add("r"+dev), add(dev)
		wan, lan := fmt.Sprintf("11.0.0.%d", i+2), fmt.Sprintf("10.0.%d", i+2)
		n.ip("-n", pub, "link", "add", "w"+dev, "type", "veth", "peer", "name", "wan", "netns", router)
		n.ip("-n", pub, "link", "set", "w"+dev, "master", "br0", "up")
		n.ip("-n", router, "addr", "add", wan+"/24", "dev", "wan")
		n.ip("-n", router, "link", "set", "wan", "up")
		n.ip("-n", router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", host)
		n.ip("-n", router, "addr", "add", lan+".1/24", "dev", "lan")
		n.ip("-n", router, "link", "set", "lan", "up")
		n.ip("-n", host, "addr", "add", lan+".2/24", "dev", "eth0")
		n.ip("-n", host, "link", "set", "eth0", "up")
		n.ip("-n", host, "route", "add", "default", "via", lan+".1")
		n.exec(router, "", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
		// Dropping unsolicited packets (as home routers do) also keeps
		// them out of conntrack: a hole-punch packet from the peer that
		// arrives before our own would otherwise hold the mapping's port.
		n.exec(router, fmt.Sprintf(`
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" %s
	}
}
table ip filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state new drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "wan" ct state new drop
	}
}
`, masq), "nft", "-f", "-")
	}
	return n
}

// ns is the full namespace name of a part of the network.
func (n *natNet) ns(name string) string { return n.prefix + "-" + name }

func (n *natNet) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// exec runs a command inside namespace ns with stdin.
func (n *natNet) exec(ns, stdin string, args ...string) {
	n.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
}

// wrap returns an executable that runs bin inside namespace ns with the
// same arguments, as the same process (ip netns exec execs it): a user
// whose bin is the wrapper runs its daemon and its CLI there.
func (n *natNet) wrap(ns, bin string) string {
	n.t.Helper()
	p := filepath.Join(n.t.TempDir(), filepath.Base(bin)+"-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns, bin)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		n.t.Fatal(err)
	}
	return p
}

// startRelayIn runs r inside namespace ns, listening on ip's TCP and QUIC
// port 4001, and waits for its address line.
func startRelayIn(n *natNet, r *relayProc, ns, ip string) {
	n.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, relayBin(n.t), "--data", r.dir,
		"--listen", "/ip4/"+ip+"/tcp/4001", "--listen", "/ip4/"+ip+"/udp/4001/quic-v1")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = r.log
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	r.cmd = cmd
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		n.t.Fatalf("relay printed no address: %v\n%s", err, r.log)
	}
	go io.Copy(r.log, stdout)
	r.addr = strings.TrimSpace(line)
	if !strings.HasPrefix(r.addr, "/ip4/"+ip+"/tcp/4001/p2p/") {
		n.t.Fatalf("relay address line %q", r.addr)
	}
}

// startBehindNAT runs u's daemon (u.bin already wraps its namespace) with
// relay as its mailbox and circuit relay, listening on every interface,
// with debug logs, and waits until the CLI reaches it.
func (u *user) startBehindNAT(relay *relayProc) {
	u.t.Helper()
	cfg, _ := json.Marshal(map[string]any{"relays": []string{relay.addr}})
	if err := os.WriteFile(filepath.Join(u.home, "config.json"), cfg, 0o600); err != nil {
		u.t.Fatal(err)
	}
	u.launch("--listen", "/ip4/0.0.0.0/tcp/0", "--listen", "/ip4/0.0.0.0/udp/0/quic-v1", "--debug")
	within(u.t, 20*time.Second, "the daemon to answer", func() bool {
		_, _, code := u.run("contact", "list")
		return code == 0
	})
}

// within polls cond every 50 ms until it holds, failing the test after d.
func within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
