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
	skey := tk.seqKey([]byte("id"), 42)
	f.Add(skey, tk.sealRecord(skey, []byte("id"), bytes.Repeat([]byte("x"), 300)))
	f.Add(key, []byte{recordFormat})
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
