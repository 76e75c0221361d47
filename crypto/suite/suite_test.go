package suite

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestChainStep(t *testing.T) {
	for _, n := range []int{32, 0, 1, 64, 100} {
		ck := make([]byte, n)
		rand.Read(ck)
		next, mk := ChainStep(ck)
		mac := func(b byte) []byte {
			m := hmac.New(sha256.New, ck)
			m.Write([]byte{b})
			return m.Sum(nil)
		}
		if !bytes.Equal(mk, mac(0x01)) {
			t.Errorf("len %d: message key is not HMAC(ck, 0x01)", n)
		}
		if !bytes.Equal(next, mac(0x02)) {
			t.Errorf("len %d: next chain key is not HMAC(ck, 0x02)", n)
		}
		if bytes.Equal(next, mk) || len(next) != 32 || len(mk) != 32 {
			t.Errorf("len %d: bad outputs", n)
		}
	}
	// Steps chain: the second step keys off the first's next key.
	ck := bytes.Repeat([]byte{1}, 32)
	n1, m1 := ChainStep(ck)
	n2, m2 := ChainStep(n1)
	if bytes.Equal(m1, m2) || bytes.Equal(n1, n2) {
		t.Error("chain does not advance")
	}
}

func TestSealOpen(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("hush"), 1000)} {
		for _, ad := range [][]byte{nil, []byte("associated")} {
			sealed := Seal(key, pt, ad)
			if len(sealed) != len(pt)+SealOverhead {
				t.Fatalf("sealed %d bytes for %d", len(sealed), len(pt))
			}
			got, err := Open(key, sealed, ad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Open = %q, %v", got, err)
			}
			if again := Seal(key, pt, ad); bytes.Equal(again[:NonceSizeX], sealed[:NonceSizeX]) {
				t.Fatal("nonce repeated")
			}
		}
	}
}

func TestOpenRejectsEveryTamper(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	ad := []byte("ad")
	sealed := Seal(key, []byte("attack at dawn"), ad)
	for i := range sealed {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sealed)
			bad[i] ^= bit
			if _, err := Open(key, bad, ad); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("flip byte %d bit %x: %v", i, bit, err)
			}
		}
	}
	for n := range sealed {
		if _, err := Open(key, sealed[:n], ad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	other := bytes.Clone(key)
	other[0] ^= 1
	cases := map[string]func() error{
		"wrong key":   func() error { _, err := Open(other, sealed, ad); return err },
		"wrong ad":    func() error { _, err := Open(key, sealed, []byte("AD")); return err },
		"nil ad":      func() error { _, err := Open(key, sealed, nil); return err },
		"short key":   func() error { _, err := Open(key[:16], sealed, ad); return err },
		"appended":    func() error { _, err := Open(key, append(bytes.Clone(sealed), 0), ad); return err },
		"empty input": func() error { _, err := Open(key, nil, ad); return err },
	}
	for name, f := range cases {
		if err := f(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTypedKey(t *testing.T) {
	k := []byte{1, 2, 3}
	got := TypedKey(KeyX25519, k)
	if !bytes.Equal(got, []byte{KeyX25519, 1, 2, 3}) {
		t.Fatalf("TypedKey = %x", got)
	}
	got[1] = 9
	if k[0] != 1 {
		t.Fatal("TypedKey aliases its input")
	}
}

func TestHKDFEmptySaltIsZeros(t *testing.T) {
	secret := []byte("secret")
	if !bytes.Equal(HKDF(secret, nil, "hush/v1/test", 42), HKDF(secret, make([]byte, 32), "hush/v1/test", 42)) {
		t.Fatal("nil salt differs from 32 zero bytes")
	}
	if bytes.Equal(HKDF(secret, nil, "hush/v1/a", 32), HKDF(secret, nil, "hush/v1/b", 32)) {
		t.Fatal("info does not separate")
	}
}
