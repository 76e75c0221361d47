package node

import (
	"errors"
	"testing"
	"time"
)

// A failing store shows in Health until a commit succeeds, and a run of
// failures is logged when it begins and then at most once a minute.
func TestStoreHealthAndBoundedLog(t *testing.T) {
	var h storeHealth
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	if got := h.health(); got.Status != "ok" {
		t.Fatalf("fresh: %+v", got)
	}
	disk := errors.New("no space left on device")
	logged := 0
	for i := range 3000 { // a retry loop hammering a full disk for 50 s
		at := now.Add(time.Duration(i) * (50 * time.Second / 3000))
		h.commitDone(disk, at)
		if h.logNow(at) {
			logged++
		}
	}
	if logged != 1 {
		t.Fatalf("%d log lines for 50 s of failures, want 1", logged)
	}
	got := h.health()
	if got.Status != "failing" || got.Error != disk.Error() || got.Since == nil || !got.Since.Equal(now) {
		t.Fatalf("failing: %+v", got)
	}
	h.commitDone(nil, now.Add(time.Minute))
	if got := h.health(); got.Status != "ok" {
		t.Fatalf("after a commit succeeded: %+v", got)
	}
}

// A node whose store stops taking commits says so in Health.
func TestNodeHealthReportsStoreFailure(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	if got := a.n.Health(); got.Status != "ok" {
		t.Fatalf("healthy node: %+v", got)
	}
	a.n.db.Close() // the disk is gone, as far as the store can tell
	if _, err := a.n.AddContact("carol", newSelf(t).Link); err == nil {
		t.Fatal("a commit on a closed store succeeded")
	}
	if got := a.n.Health(); got.Status != "failing" || got.Error == "" {
		t.Fatalf("after a failed commit: %+v", got)
	}
}
