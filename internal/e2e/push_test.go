package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/pushbridge/fake"
)

// bridgeProc is a hush-pushbridge process.
type bridgeProc struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	log  *testutil.SyncBuffer
	done chan error
}

func bridgeBin(t testing.TB) string {
	hushBin(t) // builds into binDir
	p := filepath.Join(binDir, "hush-pushbridge")
	if _, err := os.Stat(p); err != nil {
		out, err := exec.Command("go", "build", "-o", binDir, "../../cmd/hush-pushbridge").CombinedOutput()
		if err != nil {
			t.Fatalf("go build hush-pushbridge: %v\n%s", err, out)
		}
	}
	return p
}

// startBridge runs the bridge with config (a JSON object) and trusting
// certFile (SSL_CERT_FILE), and waits for its listen line.
func startBridge(t *testing.T, config map[string]any, certFile string) *bridgeProc {
	b := &bridgeProc{dir: t.TempDir(), log: &testutil.SyncBuffer{}, done: make(chan error, 1)}
	config["listen"] = "127.0.0.1:0"
	config["data_dir"] = filepath.Join(b.dir, "data")
	config["log_level"] = "debug"
	cfgFile := filepath.Join(b.dir, "bridge.json")
	raw, _ := json.Marshal(config)
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bridgeBin(t), "--config", cfgFile)
	b.cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile)
	stdout, _ := b.cmd.StdoutPipe()
	b.cmd.Stderr = b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("bridge printed no address: %v\n%s", err, b.log)
	}
	b.url = "http://" + strings.TrimSpace(line)
	go func() { b.done <- b.cmd.Wait() }()
	t.Cleanup(func() {
		b.cmd.Process.Signal(syscall.SIGTERM)
		<-b.done
	})
	return b
}

// The wake path end to end, with real processes: bob's phone app
// (played by bob's daemon and the WebPush receiver) registers with the
// push bridge; bob goes to sleep (daemon stopped); alice's three messages
// reach bob's relay, which asks the bridge to wake bob once; the push
// service receives exactly one content-free push; bob starts and reads.
// Nothing of the token, the code or the messages is in the relay's or the
// bridge's logs and data.
func TestPushWakesSleepingDevice(t *testing.T) {
	push, err := fake.StartWebPush(fake.WebPushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer push.Close()
	certFile := filepath.Join(t.TempDir(), "push-ca.pem")
	if err := os.WriteFile(certFile, push.CertificatePEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	vapidPriv, vapidPub, err := fake.NewVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	relayToken := "relay-token-" + hex.EncodeToString([]byte(t.Name()))
	sum := sha256.Sum256([]byte(relayToken))
	bridge := startBridge(t, map[string]any{
		"relays": []map[string]string{{"name": "community-relay", "token_sha256": hex.EncodeToString(sum[:])}},
		// The relay coalesces (one wake per window per mailbox); the
		// bridge sends each wake it is asked for.
		"limits":  map[string]any{"coalesce_window": "off"},
		"webpush": map[string]any{"vapid_private_key": vapidPriv, "vapid_public_key": vapidPub, "subscriber": "mailto:ops@example.org", "allow_private": true},
	}, certFile)

	tokenFile := filepath.Join(t.TempDir(), "relay-token")
	os.WriteFile(tokenFile, []byte(relayToken), 0o600)
	relayCfg, _ := json.Marshal(map[string]any{"push": map[string]any{"bridge": bridge.url, "token_file": tokenFile}})
	r := newRelay(t, string(relayCfg))
	r.start()
	defer r.stop(syscall.SIGTERM)

	alice, bob := newUser(t, "alice"), newUser(t, "bob")
	alice.start()
	defer alice.stop()
	bob.startWithRelays(r)
	befriend(t, alice, bob, "alice", "bob")

	// Bob's app registers its WebPush subscription.
	sub, err := push.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	subFile := filepath.Join(t.TempDir(), "subscription.json")
	os.WriteFile(subFile, []byte(sub), 0o600)
	if _, errs, code := bob.run("push", "register", "--bridge", "ftp://nowhere", "--provider", "webpush", "--token", "@"+subFile); code == 0 || !strings.Contains(errs, "not an http(s) URL") {
		t.Fatalf("a malformed bridge URL: exit %d, %q", code, errs)
	}
	bob.mustRun("push", "register", "--bridge", bridge.url, "--provider", "webpush", "--token", "@"+subFile)
	var verify struct{ T, Code string }
	eventually(t, "the verification push", func() bool {
		reqs := push.Requests()
		return len(reqs) == 1 && reqs[0].Status == 201 && json.Unmarshal(reqs[0].Plaintext, &verify) == nil && verify.Code != ""
	})
	if _, errs, code := bob.run("push", "verify", "WRONGCODE"); code == 0 {
		t.Fatalf("a wrong code was accepted: %s", errs)
	}
	bob.mustRun("push", "verify", verify.Code)
	if _, _, code := bob.run("push", "verify", verify.Code); code == 0 {
		t.Fatal("a used code was accepted again")
	}
	eventually(t, "the wake handle on the relay", func() bool {
		var st struct {
			State  string `json:"state"`
			Relays int    `json:"relays"`
		}
		return json.Unmarshal([]byte(bob.mustRun("push", "status", "--json")), &st) == nil && st.State == "on" && st.Relays == 1
	})

	// Bob's app sleeps; alice writes three times.
	bob.stop()
	texts := sendAll(t, alice, "bob", "wake me secret-push", 3)
	waitNoQueued(t, alice, "bob")
	eventually(t, "the wake-up push", func() bool { return push.Count() == 2 })
	wake := push.Requests()[1]
	if wake.Status != 201 || wake.Urgency != "high" || wake.Topic != "wake" {
		t.Fatalf("wake push: status %d (%s), urgency %q, topic %q", wake.Status, wake.Reason, wake.Urgency, wake.Topic)
	}
	for _, leak := range append(texts, displayName("alice"), displayName("bob"), accountOfRunning(t, alice)) {
		if strings.Contains(string(wake.Plaintext), leak) {
			t.Fatalf("the push carries %q: %s", leak, wake.Plaintext)
		}
	}

	// Bob wakes up and reads; the three messages were one push.
	bob.start()
	defer bob.stop()
	expectExactly(t, bob, "alice", texts)
	if n := push.Count(); n != 2 {
		t.Fatalf("%d pushes, want the verification and one wake-up", n)
	}

	// Neither the relay nor the bridge keeps or logs the subscription,
	// the code or the messages.
	var s struct{ Endpoint string }
	json.Unmarshal([]byte(sub), &s)
	var keys struct {
		Keys struct{ P256dh, Auth string }
	}
	json.Unmarshal([]byte(sub), &keys)
	needles := append(texts[:1], strings.TrimPrefix(s.Endpoint, push.URL()), keys.Keys.P256dh, keys.Keys.Auth, verify.Code)
	r.stop(syscall.SIGTERM)
	bridge.cmd.Process.Signal(syscall.SIGTERM)
	<-bridge.done
	bridge.done <- nil // for the cleanup
	for _, n := range needles {
		for name, log := range map[string]string{"relay": r.log.String(), "bridge": bridge.log.String()} {
			if strings.Contains(log, n) {
				t.Fatalf("the %s logged %q", name, n)
			}
		}
	}
	grepTree(t, r.dir, needles, "")
	grepTree(t, bridge.dir, needles, "")
	r.start()
}
