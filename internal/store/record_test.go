package store

import (
	"bytes"
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
	for name, seal := range map[string]func(){
		"data":  func() { tk.sealData(key, id, 7, value) },
		"plain": func() { tk.sealRecord(pkey, id, value) },
	} {
		if n := testing.AllocsPerRun(100, seal); n != 2 {
			t.Errorf("sealing a %s record: %v allocations, want 2", name, n)
		}
	}
}
