package e2e

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkDaemonIdleRSS starts a real daemon with one contact, lets it
// sit idle, and reports its resident set size (target: under 60 MiB).
func BenchmarkDaemonIdleRSS(b *testing.B) {
	for b.Loop() {
		alice, bob := newUser(b, "alice"), newUser(b, "bob")
		alice.start()
		bob.start()
		befriend(alice.t, alice, bob, "alice", "bob")
		alice.mustRun("send", "bob", "hello")
		time.Sleep(5 * time.Second)
		rss := vmRSS(b, alice.daemon.Process.Pid)
		alice.stop()
		bob.stop()
		b.ReportMetric(float64(rss)/1024, "idle-RSS-MiB")
	}
}

// vmRSS reads a process's resident set size in KiB.
func vmRSS(b *testing.B, pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
