package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/api"
	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/internal/testutil"
)

// fillWithBigTexts has from send count texts of 16 KiB to contact over
// the API (one process, as a bot would), so that a history transfer
// takes long enough to be killed half-way.
func fillWithBigTexts(t *testing.T, from *user, contact string, count int) {
	t.Helper()
	c := api.NewClient(filepath.Join(from.home, api.SocketFile))
	text := strings.Repeat("x", apitypes.MaxTextSize-16)
	for i := range count {
		var m apitypes.Message
		if err := c.Call(context.Background(), "send", apitypes.SendParams{To: contact, Text: fmt.Sprintf("%04d %s", i, text)}, &m); err != nil {
			t.Fatal(err)
		}
	}
}

var progressRE = regexp.MustCompile(`\((\d+)/(\d+)`)

// joinKilledMidway runs `hush device join` and kills it (SIGKILL) once
// its progress bar shows part of the transfer, or, with killLaptop, kills
// the laptop's daemon then. It reports whether the join was cut.
func joinKilledMidway(t *testing.T, phone, laptop *user, args []string, killLaptop bool) bool {
	t.Helper()
	cmd := exec.Command(phone.bin, append([]string{"--home", phone.home, "device", "join"}, args...)...)
	errb := &testutil.SyncBuffer{}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			t.Logf("join ended before it could be cut (%v): %s", err, errb)
			return false
		case <-time.After(5 * time.Millisecond):
		}
		for _, m := range progressRE.FindAllStringSubmatch(errb.String(), -1) {
			d, _ := strconv.Atoi(m[1])
			total, _ := strconv.Atoi(m[2])
			if d > 0 && d < total {
				if killLaptop {
					laptop.kill()
					<-done
				} else {
					cmd.Process.Kill()
					<-done
				}
				return true
			}
		}
	}
}

// A history transfer killed on either side (SIGKILL of `hush device
// join`, then of the laptop's daemon) resumes with `device join` run
// again on the same home: complete, nothing doubled.
func TestLinkKilledAndResumedCLI(t *testing.T) {
	laptop, bob := newUser(t, "alice"), newUser(t, "bob")
	laptop.start()
	defer laptop.stop()
	bob.start()
	defer bob.stop()
	befriend(t, laptop, bob, "alice", "bob")
	const count = 400
	fillWithBigTexts(t, bob, "alice", count)
	eventually(t, "the texts on the laptop", func() bool { return len(laptop.messages("bob")) == count })

	var offer struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal([]byte(laptop.mustRun("device", "link", "--json")), &offer); err != nil {
		t.Fatal(err)
	}
	phone := &user{t: t, bin: laptop.bin, home: filepath.Join(t.TempDir(), "home")}
	if !joinKilledMidway(t, phone, laptop, []string{offer.Code, "--name", "phone", "--no-passphrase"}, false) {
		t.Fatal("the join was not cut half-way: make the history bigger")
	}
	// Killed again, on the laptop's side this time.
	if !joinKilledMidway(t, phone, laptop, []string{"--no-passphrase"}, true) {
		t.Fatal("the resumed join was not cut half-way: make the history bigger")
	}
	laptop.start()
	out := phone.mustRun("device", "join", "--no-passphrase")
	if !strings.Contains(out, "Start it with") {
		t.Fatalf("resumed join said: %s", out)
	}
	phone.start()
	defer phone.stop()
	got, want := phone.messages("bob"), laptop.messages("bob")
	if len(got) != count {
		t.Fatalf("the phone shows %d messages, the laptop %d", len(got), len(want))
	}
	seen := map[string]bool{}
	for _, m := range got {
		if seen[m.ID] {
			t.Fatalf("message %s twice", m.ID)
		}
		seen[m.ID] = true
	}
	for _, m := range want {
		if !seen[m.ID] {
			t.Fatalf("message %s missing on the phone", m.ID)
		}
	}
}
