package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// `hush demo` (what `make demo` runs) works from the built binaries and
// shows each part: 1:1, offline through the relay, and the group.
func TestDemo(t *testing.T) {
	relayBin(t) // the demo starts the hush-relay next to hush
	out, err := exec.Command(hushBin(t), "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("hush demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"delivered Sent while you were offline",
		"Bob fetched it from his mailbox",
		"Alice: Welcome to the group",
		"me:    Thanks! Sender keys over GossipSub",
		"stopped both daemons and the relay",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}
