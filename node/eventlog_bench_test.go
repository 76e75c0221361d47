package node

import (
	"os"
	"strings"
	"testing"
	"time"
)

// eventLogOffEnv turns the event log off in a benchmark's child node.
const eventLogOffEnv = "HUSH_BENCH_EVENTLOG_OFF"

func init() {
	if os.Getenv(eventLogOffEnv) != "" {
		eventLogOff = true
	}
}

// BenchmarkEventLogThroughput256: BenchmarkNodeThroughput256's load (64
// senders, 256 B, fsync) with the event log on and off in both nodes,
// one right after the other: the log's cost on the hot path.
func BenchmarkEventLogThroughput256(b *testing.B) {
	for _, c := range []struct {
		name string
		off  bool
	}{{"log=on", false}, {"log=off", true}, {"log=on#2", false}, {"log=off#2", true}} {
		b.Run(c.name, func(b *testing.B) {
			old := eventLogOff
			eventLogOff = c.off
			defer func() { eventLogOff = old }()
			if c.off {
				b.Setenv(eventLogOffEnv, "1")
			}
			benchThroughput(b, false)
		})
	}
}

// BenchmarkEventLogAppend: what logging one message event adds to a
// change's batch (JSON, sealing, two records), and the commit of such a
// batch without fsync next to the same batch without the event.
func BenchmarkEventLogAppend(b *testing.B) {
	db, err := openStore(b.TempDir(), nil, testKDF, true, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, h, err := openEvents(db)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	tab := db.Table("bench")
	msg := Message{ID: strings.Repeat("a", 32), Contact: "alice", Direction: "in", Text: strings.Repeat("y", 256), Time: time.Now()}
	rec := make([]byte, 400)
	for _, withEvent := range []bool{false, true} {
		name := "commit-without-event"
		if withEvent {
			name = "commit-with-event"
		}
		b.Run(name, func(b *testing.B) {
			i := uint64(0)
			for b.Loop() {
				i++
				bt := db.Batch()
				bt.Put(tab, seqID(i), rec)
				var evs []Event
				if withEvent {
					evs = []Event{{Type: EventMessage, Message: &msg}}
					h.Number(evs)
					l.append(bt, evs, time.Now())
				}
				if err := db.CommitGrouped(bt); err != nil {
					b.Fatal(err)
				}
				h.Settle(evs, true)
			}
		})
	}
	b.Run("append-only", func(b *testing.B) {
		for b.Loop() {
			bt := db.Batch()
			evs := []Event{{Type: EventMessage, Message: &msg, Seq: 1}}
			l.append(bt, evs, time.Now())
		}
	})
}
