package store

import (
	"bytes"
	"errors"
	"testing"
)

func fuzzTableKeys() *tableKeys {
	dek := bytes.Repeat([]byte{7}, 32)
	return deriveTableKeys(dek, bytes.Repeat([]byte{9}, 32), "fuzz")
}

func FuzzDecodeRecord(f *testing.F) {
	tk := fuzzTableKeys()
	key := tk.idPrefix([]byte("id"))
	f.Add(key, tk.sealRecord(key, []byte("id"), []byte("value")))
	f.Add(key, tk.sealRecord(key, nil, nil))
	f.Add(key, []byte{formatPlain})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, key, raw []byte) {
		id, value, err := tk.decodeRecord(key, raw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			if id != nil || value != nil {
				t.Fatal("data returned with an error")
			}
			return
		}
		// Anything that opens re-seals and opens to the same id and value.
		id2, value2, err := tk.decodeRecord(key, tk.sealRecord(key, id, value))
		if err != nil || !bytes.Equal(id2, id) || !bytes.Equal(value2, value) {
			t.Fatalf("re-seal: %v", err)
		}
	})
}

func FuzzDecodeSeqRecord(f *testing.F) {
	tk := fuzzTableKeys()
	dkey, lkey, hkey := tk.dataKey([]byte("id"), 42), tk.linkKey([]byte("id"), 42), tk.headKey([]byte("id"))
	f.Add(dkey, tk.sealData(dkey, []byte("id"), 42, bytes.Repeat([]byte("x"), 300)))
	f.Add(dkey, tk.sealData(dkey, nil, 0, nil))
	link := &seqNode{h: 3}
	link.setNext(0, 43, true)
	link.setPrev(2, 7, true)
	f.Add(lkey, tk.sealNode(lkey, kindLink, link))
	head := &seqNode{h: 5, count: 9}
	head.setNext(4, 42, true)
	head.setPrev(4, 42, true)
	f.Add(hkey, tk.sealNode(hkey, kindHead, head))
	f.Add(dkey, []byte{formatSeq})
	f.Fuzz(func(t *testing.T, key, raw []byte) {
		rec, err := tk.decodeSeqRecord(key, raw)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			if rec != nil {
				t.Fatal("data returned with an error")
			}
			return
		}
		// Anything that opens re-seals and opens to the same record.
		var again []byte
		if rec.kind == kindData {
			again = tk.sealData(key, rec.id, rec.seq, rec.value)
		} else {
			again = tk.sealNode(key, rec.kind, rec.node)
		}
		rec2, err := tk.decodeSeqRecord(key, again)
		if err != nil || rec2.kind != rec.kind || !bytes.Equal(rec2.id, rec.id) || rec2.seq != rec.seq ||
			!bytes.Equal(rec2.value, rec.value) || rec.node != nil && *rec2.node != *rec.node {
			t.Fatalf("re-seal: %v", err)
		}
		// A node has one encoding.
		if rec.node != nil {
			pt, _ := tk.open(formatSeq, key, raw)
			if !bytes.Equal(rec.node.encode(rec.kind), pt) {
				t.Fatal("node re-encodes differently")
			}
		}
	})
}

func FuzzDecodeKeyring(f *testing.F) {
	dek := bytes.Repeat([]byte{1}, 32)
	kek := bytes.Repeat([]byte{2}, 32)
	f.Add(newKeyring(nil, kek, dek, KDFParams{}).encode())
	f.Add(newKeyring([]byte("pw"), nil, dek, tinyKDF).encode())
	f.Add([]byte{keyringVersion, kdfArgon2id})
	f.Add(make([]byte, keyringSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := decodeKeyring(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		// A decoded keyring has one encoding: the input.
		if !bytes.Equal(k.encode(), b) {
			t.Fatal("re-encoding differs from the input")
		}
		if k.kdf == kdfArgon2id {
			if err := k.params.validate(); err != nil {
				t.Fatalf("accepted invalid params: %v", err)
			}
		}
	})
}
