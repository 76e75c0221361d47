// Package testutil holds small helpers that tests in several packages
// share. It is imported only by tests.
package testutil

import (
	"bytes"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers:
// a daemon's or logger's output that a test reads while it grows.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ProcessCPU is the CPU time this process has used, user and system:
// benchmarks report CPU per operation, which the other work on a shared
// machine moves much less than rates.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportPercentiles reports the p50 and p99 of d, in µs, as benchmark
// metrics ("p50-µs", "p99-µs").
func ReportPercentiles(b *testing.B, d []time.Duration) {
	d = slices.Clone(d)
	slices.Sort(d)
	p := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(p(0.5), "p50-µs")
	b.ReportMetric(p(0.99), "p99-µs")
}
