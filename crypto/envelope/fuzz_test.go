package envelope

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"testing"

	"github.com/hushnet/hush/crypto/suite"
)

func fuzzKey(t testing.TB) *ecdh.PrivateKey {
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func FuzzOpen(f *testing.F) {
	priv := fuzzKey(f)
	o, err := NewOpener(priv)
	if err != nil {
		f.Fatal(err)
	}
	good := mustSeal(f, priv.PublicKey(), testInner(20, KindMessage))
	f.Add(good)
	f.Add(good[:HeaderSize])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(mustSeal(f, priv.PublicKey(), testInner(600, KindSenderKey)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := o.Open(b)
		if err != nil {
			if in != nil {
				t.Fatal("inner returned with an error")
			}
			return
		}
		// Anything that opens must have a valid header and re-seal to the
		// same size.
		if _, err := ParseHeader(b); err != nil {
			t.Fatalf("opened but header invalid: %v", err)
		}
		if n, _ := BucketSize(len(in.Body)); n != len(b) {
			t.Fatalf("opened %d-byte envelope with %d-byte body", len(b), len(in.Body))
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	priv := fuzzKey(f)
	good := mustSeal(f, priv.PublicKey(), testInner(20, KindMessage))
	f.Add(good)
	f.Add(good[:17])
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if h != (Header{}) {
				t.Fatal("non-zero header with error")
			}
			return
		}
		if !isBucket(h.Size) || h.Size != len(b) || h.Version != suite.Version || h.Suite != suite.ID ||
			!bytes.Equal(h.MailboxID[:], b[2:18]) {
			t.Fatalf("accepted bad header %+v for %d bytes", h, len(b))
		}
	})
}

func FuzzUnpad(f *testing.F) {
	f.Add([]byte{0x80})
	f.Add([]byte{1, 0x80, 0, 0})
	f.Add([]byte{1, 0x80, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := unpad(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		// Unpad must be the exact inverse of pad.
		if !bytes.Equal(pad(got, len(b)), b) {
			t.Fatalf("unpad(%x) = %x does not re-pad to the input", b, got)
		}
	})
}
