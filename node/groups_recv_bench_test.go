package node

import (
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/testutil"
	"github.com/hushnet/hush/node/group"
)

// BenchmarkGroupReceive measures what one member spends on one group text
// from the topic, without the network: a 2-member group, the other
// member's texts sealed beforehand (sender key, then topic layer), each
// handed to the group inbox (onGroupWires) as the topic reader hands it,
// one message per transaction as the fan-out benchmark delivers them.
// Its time per message is CPU on the receiving member: with 49
// receivers on 2 cores, BenchmarkGroupFanout50's latency above the raw
// arm's is about 49/2 times this.
func BenchmarkGroupReceive(b *testing.B) {
	old := testGroupSync
	testGroupSync = time.Minute // no anti-entropy round during the loop
	nodes := makeGroupWith(b, 2, "recv", waitLong)
	testGroupSync = old
	from, to := nodes[0], nodes[1]
	sendGroupEventuallyFor(b, from, "recv", "warm-up", time.Minute)
	waitLong(b, "the warm-up text", func() bool {
		ms, _ := to.n.GroupMessages("recv", 0)
		return len(ms) == 1
	})
	gid, msgs, keys := sealGroupTexts(b, from, b.N)
	acc, dev := from.n.cert.Account(), from.n.cert.DeviceID()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testutil.ProcessCPU()
	for i := range b.N {
		if k := keys[i]; k != nil { // a rotated key, before the first message under it
			b.StopTimer()
			applyGroupPairwise(b, to, acc, dev, k)
			b.StartTimer()
		}
		if err := to.n.onGroupWires([]topicMsg{{group: gid, data: msgs[i]}}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// The process's CPU, the node's other goroutines included (the
	// engine's periodic save, the commit), is steadier than wall time on
	// a shared machine.
	b.ReportMetric(float64((testutil.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	if ms, _ := to.n.GroupMessages("recv", 0); len(ms) != 1+b.N {
		b.Fatalf("%d messages stored, want %d", len(ms), 1+b.N)
	}
}

// sealGroupTexts seals count texts of 256 B on from for the group "recv",
// as SendGroup would, without publishing them. A sender key rotated on
// the way (every group.RotateMessages) comes back as the Key message for
// the other member, keyed by the index of the first text under it.
func sealGroupTexts(b *testing.B, from *running, count int) (group.GroupID, [][]byte, map[int][]byte) {
	b.Helper()
	from.n.mu.Lock()
	defer from.n.mu.Unlock()
	gs, err := from.n.resolveGroupLocked("recv")
	if err != nil {
		b.Fatal(err)
	}
	var out [][]byte
	keys := map[int][]byte{}
	for i := range count {
		p := &payload{Type: ptText, Text: fanoutText, ID: newMessageID(), TimeMS: from.n.groupClockLocked(time.Now())}
		wire, _, err := gs.eng.Seal(p.marshal())
		if err != nil {
			b.Fatal(err)
		}
		for _, pw := range gs.eng.Flush().Pairwise {
			if pw.Device != from.n.cert.DeviceID() {
				keys[i] = pw.Data
			}
		}
		_, data, err := gs.eng.SealTopic(wire)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, data)
	}
	return gs.eng.ID(), out, keys
}

// applyGroupPairwise hands to a pairwise group message from (acc, dev),
// committed as the session's delivery commits it.
func applyGroupPairwise(b *testing.B, to *running, acc identity.AccountID, dev identity.DeviceID, data []byte) {
	b.Helper()
	n := to.n
	n.mu.Lock()
	t := n.newTxnLocked()
	n.applyGroupPairwiseLocked(t, acc, dev, &payload{Type: ptGroup, Data: data}, time.Now())
	err := n.commitReleasingLock(t)
	n.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
}
