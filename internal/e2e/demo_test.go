package e2e

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// `hush demo` (what `make demo` runs) works from the built binaries and
// shows each part: 1:1, the wake path (registration with the push
// bridge, one content-free push while Bob sleeps), offline through the
// relay, and the group; it leaves no process and no directory behind.
func TestDemo(t *testing.T) {
	relayBin(t)  // the demo starts the hush-relay next to hush
	bridgeBin(t) // and the hush-pushbridge
	raw, err := exec.Command(hushBin(t), "demo").CombinedOutput()
	out := string(raw)
	if err != nil {
		t.Fatalf("hush demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"delivered Sent while you were offline",
		"Bob fetched it from his mailbox",
		"Alice: Welcome to the group",
		"me:    Thanks! Sender keys over GossipSub",
		"stopped both daemons and the relay",
		"it trusts that certificate through SSL_CERT_FILE",
		"push is on: relays will wake this device when a message waits",
		"push: on (webpush via http://127.0.0.1:",
		"1 relay(s) hold the wake handle",
		"it names nobody",
		"Bob's phone got exactly one wake-up push while he slept",
		"then the push bridge and the push service",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}

	// The code of the verification push is the one fed back.
	m := regexp.MustCompile(`Bob's phone, decrypted: \{"t":"verify","code":"([A-Z0-9]+)"\}`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "$ hush push verify "+m[1]+"\n") {
		t.Fatalf("no verification push, or its code was not fed back:\n%s", out)
	}
	// Exactly one wake-up push, content-free, while Bob was offline.
	const wake = `Bob's phone, decrypted: {"t":"wake"} (Urgency high`
	if n := strings.Count(out, `"t":"wake"`); n != 1 {
		t.Fatalf("%d wake-up pushes shown, want 1:\n%s", n, out)
	}
	stopped, woken, fetched := strings.Index(out, "Bob's daemon stopped"), strings.Index(out, wake), strings.Index(out, "Bob fetched it")
	if stopped < 0 || woken < stopped || fetched < woken {
		t.Fatalf("want Bob stopped, then the wake-up push, then Bob fetching:\n%s", out)
	}

	// Every process it started has ended, and its directory is gone.
	for _, pid := range regexp.MustCompile(`\(pid (\d+)\)`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(pid[1])
		if err := syscall.Kill(n, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after the demo (kill 0: %v)", n, err)
		}
	}
	dir := regexp.MustCompile(`working directory: (\S+)`).FindStringSubmatch(out)
	if dir == nil {
		t.Fatalf("no working directory shown:\n%s", out)
	}
	if _, err := os.Stat(dir[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo left %s behind (%v)", dir[1], err)
	}
}
