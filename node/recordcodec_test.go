package node

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

func TestRecordCodecRoundTrip(t *testing.T) {
	m := msgRec{
		ID: "00112233445566778899aabbccddeeff", Dir: "out", Text: "héllo", State: StateDelivered,
		Time: time.Unix(1700000000, 123456789).UTC(), ReplyTo: "ff", Edited: true, Deleted: true,
		Reactions: map[string][]string{"👍": {"me", "bob"}, "🎉": {"ann"}}, Error: "e",
		Sender: "ann", From: "abcd", Kind: KindMissing, Missing: 7, Counter: 42,
	}
	var gotM msgRec
	if err := decodeMsgRec(m.marshal(), &gotM); err != nil || !reflect.DeepEqual(gotM, m) {
		t.Fatalf("message record: %+v, %v; want %+v", gotM, err, m)
	}
	ix := indexRec{Account: []byte{1, 2, 3}, Seq: 99}
	var gotIx indexRec
	if err := decodeIndexRec(ix.marshal(), &gotIx); err != nil || !reflect.DeepEqual(gotIx, ix) {
		t.Fatalf("index record: %+v, %v", gotIx, err)
	}
	o := outRec{Seq: 5, MsgID: "aa", Track: true, Account: "bb", Kind: 2, Body: []byte("sealed"),
		Created: time.Unix(1700000001, 0).UTC(), Ephemeral: true, SentMS: 1234, Left: []string{"x", "y"}}
	var gotO outRec
	if err := decodeOutRec(o.marshal(), &gotO); err != nil || !reflect.DeepEqual(gotO, o) {
		t.Fatalf("outbox record: %+v, %v", gotO, err)
	}
	// The zero values round-trip too (no reactions, no time).
	var zero msgRec
	if err := decodeMsgRec((&msgRec{}).marshal(), &zero); err != nil || !reflect.DeepEqual(zero, msgRec{}) {
		t.Fatalf("empty message record: %+v, %v", zero, err)
	}
}

// Records an earlier version wrote as JSON still read.
func TestRecordCodecReadsJSON(t *testing.T) {
	m := msgRec{ID: "01", Dir: "in", Text: "old", State: StateRead, Time: time.Unix(1600000000, 0).UTC(), Counter: 3}
	raw, _ := json.Marshal(&m)
	var got msgRec
	if err := decodeMsgRec(raw, &got); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("JSON message record: %+v, %v", got, err)
	}
	o := outRec{Seq: 9, MsgID: "02", Body: []byte{1, 2}, Created: time.Unix(1600000000, 0).UTC()}
	raw, _ = json.Marshal(&o)
	var gotO outRec
	if err := decodeOutRec(raw, &gotO); err != nil || !reflect.DeepEqual(gotO, o) {
		t.Fatalf("JSON outbox record: %+v, %v", gotO, err)
	}
}

// A damaged record is an error, never a half-filled record.
func TestRecordCodecRejectsDamage(t *testing.T) {
	enc := (&msgRec{ID: "01", Text: "text"}).marshal()
	for _, bad := range [][]byte{enc[:len(enc)-1], append(enc, 0)} {
		var m msgRec
		if err := decodeMsgRec(bad, &m); !errors.Is(err, codec.ErrTruncated) && !errors.Is(err, codec.ErrTrailing) {
			t.Errorf("damaged message record: %v", err)
		}
	}
	enc = (&outRec{Body: []byte("body")}).marshal()
	var o outRec
	if err := decodeOutRec(enc[:len(enc)-3], &o); !errors.Is(err, codec.ErrTruncated) {
		t.Errorf("truncated outbox record: %v", err)
	}
}

// A message queued by an earlier version (its outbox entry a sequenced
// JSON record, its message record JSON) is delivered after an upgrade,
// and its entry is rewritten as a plain record.
func TestLegacyOutboxEntryDelivered(t *testing.T) {
	a, b := pair(t)
	sendAndWait(t, a.n, "bob", 1)
	sendAndWait(t, b.n, "alice", 1)
	b.stop(t)
	m, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "queued before the upgrade"})
	if err != nil {
		t.Fatal(err)
	}
	a.stop(t)

	// Rewrite alice's store as the earlier version left it.
	n, err := New(Config{Home: a.home, KDF: testKDF, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	legacy := n.db.Batch()
	var entries int
	err = n.tabs.outbox.Scan(func(id, v []byte) error {
		var o outRec
		if err := decodeOutRec(v, &o); err != nil {
			return err
		}
		raw, _ := json.Marshal(&o)
		legacy.Delete(n.tabs.outbox, id)
		legacy.PutSeq(n.tabs.outbox, id[:len(identity.DeviceID{})], o.Seq, raw)
		entries++
		return nil
	})
	if err != nil || entries != 1 {
		t.Fatalf("%d outbox entries (%v), want 1", entries, err)
	}
	id, _ := parseMsgID(m.ID)
	rec, ix, err := n.loadMsgLocked(id)
	if err != nil {
		t.Fatal(err)
	}
	rawMsg, _ := json.Marshal(rec)
	rawIx, _ := json.Marshal(&ix)
	legacy.PutSeq(n.tabs.messages, ix.Account, ix.Seq, rawMsg)
	legacy.Put(n.tabs.msgIndex, id[:], rawIx)
	if err := legacy.Commit(); err != nil {
		t.Fatal(err)
	}
	n.Close()

	a = startNode(t, a.home)
	defer a.stop(t)
	b = startNode(t, b.home)
	defer b.stop(t)
	if _, err := b.n.Send(context.Background(), SendRequest{To: "alice", Text: "back again"}); err != nil {
		t.Fatal(err) // carries bob's route, should his port have changed
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	if got, err := a.n.WaitState(ctx, m.ID, StateDelivered); err != nil || got.State != StateDelivered {
		t.Fatalf("legacy entry: %s, %v", got.State, err)
	}
	if got := lastIn(t, b.n, "alice"); got.Text != "queued before the upgrade" {
		t.Fatalf("bob's last message is %q", got.Text)
	}
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	var seqs int
	a.n.tabs.outbox.ScanAllSeq(func([]byte, uint64, []byte) error { seqs++; return nil })
	if seqs != 0 {
		t.Fatalf("%d sequenced outbox records left after the upgrade", seqs)
	}
}

// A message delivered directly costs the sender one fsync, its Send's:
// recording the delivery (settle) rides on a lazy commit.
func TestDirectDeliveryOneSyncedWrite(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	sendAndWait(t, a.n, "bob", 1)
	sendAndWait(t, b.n, "alice", 1)
	const count = 20
	before := a.n.db.SyncedWrites()
	for range count {
		sendAndWait(t, a.n, "bob", 1)
	}
	// Other jobs may commit meanwhile; a synced settle would double it.
	if got := a.n.db.SyncedWrites() - before; got > count+count/4 {
		t.Fatalf("%d synced writes for %d messages delivered one by one, want about %d", got, count, count)
	}
}

// A message with an attachment keeps it through the codec, and damage
// to the attachment's block is an error.
func TestRecordCodecAttachment(t *testing.T) {
	m := msgRec{ID: "01", Dir: "in", Text: "caption", State: StateReceived,
		File: &FileInfo{Name: "a.jpg", MIME: "image/jpeg", Size: 12345, Hash: "ab", Width: 3, Height: 4,
			Thumbnail: []byte{1, 2, 3}, State: FileDownloading, Bytes: 100, Error: "", DurationMS: 61_000}}
	enc := m.marshal()
	var got msgRec
	if err := decodeMsgRec(enc, &got); err != nil || !reflect.DeepEqual(got.File, m.File) {
		t.Fatalf("attachment: %+v, %v", got.File, err)
	}
	for _, bad := range [][]byte{enc[:len(enc)-1], append(slices.Clone(enc), 0)} {
		if err := decodeMsgRec(bad, &got); err == nil {
			t.Error("a damaged attachment block was read")
		}
	}
	// A record written before the duration was added reads as 0.
	got = msgRec{}
	if err := decodeMsgRec(enc[:len(enc)-8], &got); err != nil || got.File == nil || got.File.DurationMS != 0 || got.File.Bytes != 100 {
		t.Fatalf("a record without the duration: %+v, %v", got.File, err)
	}
}

// A group read bitmap (block 2) reads back, with and without an
// attachment before it; a damaged one is refused.
func TestRecordCodecReadBy(t *testing.T) {
	for _, file := range []*FileInfo{nil, {Name: "a.jpg", MIME: "image/jpeg", Size: 1, Hash: "ab", State: FileDone, DurationMS: 5}} {
		m := msgRec{ID: "01", Dir: "out", Text: "hi", State: StateSent, File: file, ReadBy: []byte{0b101, 0, 1}}
		enc := m.marshal()
		var got msgRec
		if err := decodeMsgRec(enc, &got); err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("read back %+v, %v", got, err)
		}
		for _, bad := range [][]byte{enc[:len(enc)-1], append(slices.Clone(enc), 0)} {
			if err := decodeMsgRec(bad, &got); err == nil {
				t.Error("a damaged read block was read")
			}
		}
	}
}
