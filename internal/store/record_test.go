package store

import (
	"bytes"
	"fmt"
	"testing"
)

// Records are sealed in place: the plaintext is built in the record's
// own buffer, so sealing a record allocates that buffer and the
// additional data (which escapes through the AEAD interface), no clear
// copy to wipe, and the record opens to what was put.
func TestSealInPlace(t *testing.T) {
	tk := fuzzTableKeys()
	id, value := []byte("mailbox"), bytes.Repeat([]byte("v"), 1024)
	key := tk.dataKey(id, 7)
	raw := tk.sealData(key, id, 7, value)
	if len(raw) != sealOverhead+1+2+len(id)+8+len(value) || cap(raw) != len(raw) {
		t.Fatalf("sealed data record of %d bytes (capacity %d)", len(raw), cap(raw))
	}
	rec, err := tk.decodeSeqRecord(key, raw)
	if err != nil || rec.kind != kindData || string(rec.id) != string(id) || rec.seq != 7 || !bytes.Equal(rec.value, value) {
		t.Fatalf("data record opens to %+v, %v", rec, err)
	}
	if bytes.Contains(raw, value[:16]) {
		t.Fatal("sealed record holds the value in clear")
	}
	pkey := tk.idPrefix(id)
	praw := tk.sealRecord(pkey, id, value)
	if gotID, gotValue, err := tk.decodeRecord(pkey, praw); err != nil || string(gotID) != string(id) || !bytes.Equal(gotValue, value) {
		t.Fatalf("plain record opens to %q, %d bytes, %v", gotID, len(gotValue), err)
	}
	n := &seqNode{h: 3, hasNext: 5, hasPrev: 1, count: 0}
	n.setNext(0, 9, true)
	n.setNext(2, 12, true)
	n.setPrev(0, 4, true)
	lkey := tk.linkKey(id, 7)
	if rec, err := tk.decodeSeqRecord(lkey, tk.sealNode(lkey, kindLink, n)); err != nil || rec.kind != kindLink || *rec.node != *n {
		t.Fatalf("link record opens to %+v, %v", rec, err)
	}
	for name, seal := range map[string]func(){
		"data":  func() { tk.sealData(key, id, 7, value) },
		"plain": func() { tk.sealRecord(pkey, id, value) },
		"link":  func() { tk.sealNode(lkey, kindLink, n) },
	} {
		if n := testing.AllocsPerRun(100, seal); n != 2 {
			t.Errorf("sealing a %s record: %v allocations, want 2", name, n)
		}
	}
}

// The key memo gives the keys the keyed hashes give, for ids past its
// size (it forgets and starts over) and for seqs other than the one
// remembered; appends that use it store and read back as before.
func TestKeyMemo(t *testing.T) {
	tk := fuzzTableKeys()
	for i := range keyMemoSize + 10 {
		id := fmt.Appendf(nil, "id%d", i)
		for range 2 {
			if got, want := tk.headKey(id), tk.seqRecordKey(kindHead, id, 0, false); !bytes.Equal(got, want) {
				t.Fatalf("head key of %s: %x, want %x", id, got, want)
			}
		}
		tk.memo.setTail(id, uint64(i), tk.seqRecordKey(kindLink, id, uint64(i), true))
		for _, seq := range []uint64{uint64(i), uint64(i) + 1} {
			if got, want := tk.linkKey(id, seq), tk.seqRecordKey(kindLink, id, seq, true); !bytes.Equal(got, want) {
				t.Fatalf("link key of %s, %d: %x, want %x", id, seq, got, want)
			}
		}
	}
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("memo")
	for seq := range uint64(50) {
		b := db.Batch()
		b.PutSeq(tb, []byte("a"), seq, fmt.Appendf(nil, "v%d", seq))
		b.PutSeq(tb, []byte("b"), seq, fmt.Appendf(nil, "w%d", seq))
		if seq%7 == 3 {
			b.DeleteSeq(tb, []byte("a"), seq-1)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	tb.ScanSeq([]byte("a"), 0, 100, func(seq uint64, v []byte) error {
		got = append(got, string(v))
		return nil
	})
	if len(got) != 50-7 || got[0] != "v0" || got[len(got)-1] != "v49" {
		t.Fatalf("id a holds %d records %v…", len(got), got[:3])
	}
}

// PutSeqParts stores the parts joined, as PutSeq of the joined value
// would, and refuses (stickily) a value over MaxValueSize in total.
func TestPutSeqParts(t *testing.T) {
	db := mustOpen(t, t.TempDir(), cfg(""))
	tb := db.Table("parts")
	b := db.Batch()
	if err := b.PutSeqParts(tb, []byte("id"), 1, []byte("head "), nil, []byte("body"), []byte(" tail")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if v, err := tb.GetSeq([]byte("id"), 1); err != nil || string(v) != "head body tail" {
		t.Fatalf("GetSeq: %q, %v", v, err)
	}
	half := make([]byte, MaxValueSize/2+1)
	b = db.Batch()
	if err := b.PutSeqParts(tb, []byte("id"), 2, half, half); err == nil {
		t.Fatal("a value over MaxValueSize in two parts was taken")
	}
	if err := b.Commit(); err == nil {
		t.Fatal("a batch holding a refused value committed")
	}
}
