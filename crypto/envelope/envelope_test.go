package envelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"testing"

	"github.com/hushnet/hush/crypto/suite"
	"github.com/hushnet/hush/crypto/x25519"
)

func testInner(n int, kind Kind) *Inner {
	in := &Inner{Kind: kind, Body: make([]byte, n)}
	for i := range in.SenderAccount {
		in.SenderAccount[i] = 0xA0 ^ byte(i)
	}
	for i := range in.SenderDevice {
		in.SenderDevice[i] = 0xD0 ^ byte(i)
	}
	for i := range in.Body {
		in.Body[i] = byte(i*7 + 3)
	}
	return in
}

func mustSeal(t testing.TB, to *ecdh.PublicKey, in *Inner) []byte {
	t.Helper()
	sealed, err := Seal(to, in)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return sealed
}

func sameInner(a, b *Inner) bool {
	return a.SenderAccount == b.SenderAccount && a.SenderDevice == b.SenderDevice &&
		a.Kind == b.Kind && bytes.Equal(a.Body, b.Body)
}

// sealRaw seals an arbitrary padded plaintext exactly as Seal would, so
// tests can check what Open does with authenticated but malformed content.
func sealRaw(t testing.TB, to *ecdh.PublicKey, pt []byte) []byte {
	t.Helper()
	pk, err := hpke.NewDHKEMPublicKey(to)
	if err != nil {
		t.Fatal(err)
	}
	id := MailboxID(to)
	enc, s, err := hpke.NewSender(pk, kdf, aead, info(id))
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{suite.Version, suite.ID}, id[:]...)
	out = append(out, enc...)
	ct, err := s.Seal(out, pt)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, ct...)
}

func TestRoundTrip(t *testing.T) {
	priv := x25519.GenerateKey()
	o, err := NewOpener(priv)
	if err != nil {
		t.Fatal(err)
	}
	smallest := MinEnvelopeSize - Overhead - innerFixed - 1
	sizes := []int{0, 1, 100, 256, smallest, smallest + 1, 1000, 4000, 5000, 70000, MaxBody}
	for i, n := range sizes {
		kind := Kind(1 + i%4)
		in := testInner(n, kind)
		sealed := mustSeal(t, priv.PublicKey(), in)
		want, err := BucketSize(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != want || !isBucket(len(sealed)) {
			t.Fatalf("body %d: envelope %d bytes, want bucket %d", n, len(sealed), want)
		}
		h, err := ParseHeader(sealed)
		if err != nil {
			t.Fatalf("body %d: ParseHeader: %v", n, err)
		}
		if h.MailboxID != MailboxID(priv.PublicKey()) || h.Size != len(sealed) ||
			h.Version != suite.Version || h.Suite != suite.ID {
			t.Fatalf("body %d: header %+v", n, h)
		}
		got, err := o.Open(sealed)
		if err != nil {
			t.Fatalf("body %d: Open: %v", n, err)
		}
		if !sameInner(got, in) {
			t.Fatalf("body %d: round trip mismatch", n)
		}
		got2, err := Open(priv, sealed)
		if err != nil || !sameInner(got2, in) {
			t.Fatalf("body %d: package Open: %v", n, err)
		}
	}
}

func TestBucketBoundaries(t *testing.T) {
	prev := 0
	for _, b := range Buckets {
		if b <= prev || b&(b-1) != 0 {
			t.Fatalf("bucket %d not an increasing power of two", b)
		}
		prev = b
		largest := b - Overhead - innerFixed - 1
		if got, _ := BucketSize(largest); got != b {
			t.Fatalf("body %d: bucket %d, want %d", largest, got, b)
		}
		if b == MaxEnvelopeSize {
			if largest != MaxBody {
				t.Fatalf("MaxBody %d, want %d", MaxBody, largest)
			}
			continue
		}
		if got, _ := BucketSize(largest + 1); got != 2*b {
			t.Fatalf("body %d: bucket %d, want %d", largest+1, got, 2*b)
		}
	}
	if Buckets[0] != MinEnvelopeSize || Buckets[len(Buckets)-1] != MaxEnvelopeSize {
		t.Fatal("bucket ends do not match Min/MaxEnvelopeSize")
	}
}

// Sealing the same inner twice gives unrelated bytes (fresh HPKE ephemeral
// key), and neither the sender IDs nor the body appear in clear.
func TestSenderNotVisible(t *testing.T) {
	priv := x25519.GenerateKey()
	in := testInner(300, KindMessage)
	a := mustSeal(t, priv.PublicKey(), in)
	b := mustSeal(t, priv.PublicKey(), in)
	for _, s := range [][]byte{a, b} {
		if bytes.Contains(s, in.SenderAccount[:]) || bytes.Contains(s, in.SenderDevice[:]) ||
			bytes.Contains(s, in.Body[:32]) {
			t.Fatal("sender ID or body visible in sealed bytes")
		}
		for _, chunk := range [][]byte{in.SenderAccount[:8], in.SenderAccount[24:], in.SenderDevice[:8], in.SenderDevice[8:]} {
			if bytes.Contains(s, chunk) {
				t.Fatal("part of the sender ID visible in sealed bytes")
			}
		}
	}
	if bytes.Equal(a[HeaderSize-EncSize:], b[HeaderSize-EncSize:]) {
		t.Fatal("two seals share enc or ciphertext")
	}
	if !bytes.Equal(a[:HeaderSize-EncSize], b[:HeaderSize-EncSize]) {
		t.Fatal("mailbox part of the header differs between seals")
	}
}

func TestAttackTamperEveryByte(t *testing.T) {
	priv := x25519.GenerateKey()
	o, _ := NewOpener(priv)
	in := testInner(200, KindMessage)
	sealed := mustSeal(t, priv.PublicKey(), in)
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80} {
			c := bytes.Clone(sealed)
			c[i] ^= mask
			_, err := o.Open(c)
			var want error
			switch {
			case i < 2:
				want = ErrVersion
			case i < 2+MailboxIDSize:
				want = ErrWrongMailbox
			default:
				want = ErrOpen // enc, ciphertext and tag
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d mask %#x: err %v, want %v", i, mask, err, want)
			}
		}
	}
	if got, err := o.Open(sealed); err != nil || !sameInner(got, in) {
		t.Fatalf("original no longer opens: %v", err)
	}
}

func TestAttackWrongMailbox(t *testing.T) {
	alice := x25519.GenerateKey()
	mallory := x25519.GenerateKey()
	sealed := mustSeal(t, alice.PublicKey(), testInner(50, KindMessage))

	if _, err := Open(mallory, sealed); !errors.Is(err, ErrWrongMailbox) {
		t.Fatalf("other key: %v, want ErrWrongMailbox", err)
	}
	// A relay that rewrites the mailbox ID to Mallory's still cannot make
	// Mallory's key open it, and Alice's key now fails too (ID is in info
	// and aad).
	c := bytes.Clone(sealed)
	mid := MailboxID(mallory.PublicKey())
	copy(c[2:], mid[:])
	if _, err := Open(mallory, c); !errors.Is(err, ErrOpen) {
		t.Fatalf("rewritten ID, other key: %v, want ErrOpen", err)
	}
	if _, err := Open(alice, c); !errors.Is(err, ErrWrongMailbox) {
		t.Fatalf("rewritten ID, right key: %v, want ErrWrongMailbox", err)
	}
}

func TestAttackForgedSender(t *testing.T) {
	bob := x25519.GenerateKey()
	alice := testInner(0, KindMessage)
	// Mallory seals a message claiming Alice's account and device.
	forged := testInner(40, KindMessage)
	forged.SenderAccount = alice.SenderAccount
	forged.SenderDevice = alice.SenderDevice
	got, err := Open(bob, mustSeal(t, bob.PublicKey(), forged))
	if err != nil {
		t.Fatal(err)
	}
	// The body decrypted in Mallory's session, whose remote identity is
	// Mallory's: the check must fail.
	var malloryAcct [32]byte
	var malloryDev [16]byte
	malloryAcct[0], malloryDev[0] = 0x4d, 0x4d
	if err := got.CheckSender(malloryAcct, malloryDev); !errors.Is(err, ErrSenderMismatch) {
		t.Fatalf("CheckSender(mallory) = %v", err)
	}
	// Right account, wrong device, and the reverse, are mismatches too.
	if err := got.CheckSender(alice.SenderAccount, malloryDev); !errors.Is(err, ErrSenderMismatch) {
		t.Fatalf("wrong device: %v", err)
	}
	if err := got.CheckSender(malloryAcct, alice.SenderDevice); !errors.Is(err, ErrSenderMismatch) {
		t.Fatalf("wrong account: %v", err)
	}
	if err := got.CheckSender(alice.SenderAccount, alice.SenderDevice); err != nil {
		t.Fatalf("matching sender rejected: %v", err)
	}
}

func TestAttackOversize(t *testing.T) {
	priv := x25519.GenerateKey()
	if _, err := Seal(priv.PublicKey(), testInner(MaxBody+1, KindMessage)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Seal of MaxBody+1: %v, want ErrTooLarge", err)
	}
	if _, err := BucketSize(-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("BucketSize(-1): %v", err)
	}
	big := mustSeal(t, priv.PublicKey(), testInner(MaxBody, KindMessage))
	over := append(bytes.Clone(big), make([]byte, MaxEnvelopeSize)...)
	for _, n := range []int{MaxEnvelopeSize + 1, 2 * MaxEnvelopeSize} {
		if _, err := ParseHeader(over[:n]); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("ParseHeader(%d bytes): %v", n, err)
		}
		if _, err := Open(priv, over[:n]); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Open(%d bytes): %v", n, err)
		}
	}
	// Non-bucket lengths are structural errors, not crypto ones.
	small := mustSeal(t, priv.PublicKey(), testInner(10, KindMessage))
	if _, err := Open(priv, append(bytes.Clone(small), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestTruncated(t *testing.T) {
	priv := x25519.GenerateKey()
	o, _ := NewOpener(priv)
	sealed := mustSeal(t, priv.PublicKey(), testInner(1000, KindMessage))
	for n := 0; n < len(sealed); n++ {
		_, err := o.Open(sealed[:n])
		if err == nil {
			t.Fatalf("prefix of %d bytes opened", n)
		}
		if n >= 2 && !isBucket(n) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d bytes: %v, want ErrMalformed", n, err)
		}
		if _, err := ParseHeader(sealed[:n]); (err == nil) != isBucket(n) {
			t.Fatalf("ParseHeader on prefix of %d bytes: %v", n, err)
		}
	}
	// A prefix that happens to be a bucket size still fails to open.
	if _, err := o.Open(sealed[:512]); !errors.Is(err, ErrOpen) {
		t.Fatalf("512-byte prefix: %v, want ErrOpen", err)
	}
}

func TestUnpadStrict(t *testing.T) {
	cases := []struct {
		in   []byte
		want []byte
		ok   bool
	}{
		{[]byte{0x80}, []byte{}, true},
		{[]byte{1, 2, 0x80, 0, 0}, []byte{1, 2}, true},
		{[]byte{0x80, 0x80, 0}, []byte{0x80}, true},
		{[]byte{}, nil, false},
		{[]byte{0, 0, 0}, nil, false},
		{[]byte{1, 2, 3}, nil, false},
		{[]byte{1, 0x80, 0, 1}, nil, false},
		{[]byte{1, 0x80, 0x01, 0}, nil, false},
		{[]byte{1, 0x81, 0}, nil, false},
		{[]byte{1, 0x40, 0}, nil, false},
	}
	for _, c := range cases {
		got, err := unpad(c.in)
		if (err == nil) != c.ok || (c.ok && !bytes.Equal(got, c.want)) {
			t.Errorf("unpad(%x) = %x, %v", c.in, got, err)
		}
	}
	p := pad([]byte{9, 9}, 10)
	if !bytes.Equal(p, []byte{9, 9, 0x80, 0, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("pad = %x", p)
	}
}

// Authenticated plaintexts with bad padding or a bad inner encoding are
// rejected with ErrOpen.
func TestOpenRejectsBadInner(t *testing.T) {
	priv := x25519.GenerateKey()
	n := MinEnvelopeSize - Overhead
	good := pad(append(make([]byte, 48), 2, 0, 0, 0, 1, 0xEE), n)
	if _, err := Open(priv, sealRaw(t, priv.PublicKey(), good)); err != nil {
		t.Fatalf("control case: %v", err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"byte after terminator": mut(func(b []byte) []byte { b[n-1] = 1; return b }),
		"no terminator":         make([]byte, n),
		"terminator 0x81":       mut(func(b []byte) []byte { b[54] = 0x81; return b }),
		"kind 0":                mut(func(b []byte) []byte { b[48] = 0; return b }),
		"kind 5":                mut(func(b []byte) []byte { b[48] = 5; return b }),
		"body length too long":  mut(func(b []byte) []byte { b[52] = 2; return b }),
		"body length too short": mut(func(b []byte) []byte { b[52] = 0; return b }),
		"body length huge":      mut(func(b []byte) []byte { b[49] = 0xff; return b }),
		"short inner":           pad([]byte{1, 2, 3}, n),
	}
	for name, pt := range cases {
		if _, err := Open(priv, sealRaw(t, priv.PublicKey(), pt)); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	priv := x25519.GenerateKey()
	p256, _ := ecdh.P256().GenerateKey(nil)
	if _, err := Seal(nil, testInner(1, KindMessage)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("nil key: %v", err)
	}
	if _, err := Seal(p256.PublicKey(), testInner(1, KindMessage)); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("P-256 key: %v", err)
	}
	for _, k := range []Kind{0, 5, 255} {
		if _, err := Seal(priv.PublicKey(), testInner(1, k)); !errors.Is(err, ErrKind) {
			t.Fatalf("kind %d: %v", k, err)
		}
	}
	if _, err := Seal(priv.PublicKey(), nil); err == nil {
		t.Fatal("nil inner sealed")
	}
	if _, err := NewOpener(nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("NewOpener(nil): %v", err)
	}
	if _, err := NewOpener(p256); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("NewOpener(P-256): %v", err)
	}
}

// A small-order enc is refused before HPKE runs.
func TestAttackLowOrderEnc(t *testing.T) {
	priv := x25519.GenerateKey()
	sealed := mustSeal(t, priv.PublicKey(), testInner(10, KindMessage))
	for _, enc := range [][]byte{make([]byte, 32), append([]byte{1}, make([]byte, 31)...)} {
		c := bytes.Clone(sealed)
		copy(c[HeaderSize-EncSize:], enc)
		if _, err := Open(priv, c); !errors.Is(err, ErrOpen) {
			t.Fatalf("enc %x: %v", enc, err)
		}
	}
}

func TestMailboxID(t *testing.T) {
	a, b := x25519.GenerateKey(), x25519.GenerateKey()
	ida, idb := MailboxID(a.PublicKey()), MailboxID(b.PublicKey())
	if ida == idb || ida == [16]byte{} {
		t.Fatal("mailbox IDs collide or are zero")
	}
	if bytes.Equal(ida[:], a.PublicKey().Bytes()[:16]) {
		t.Fatal("mailbox ID is a prefix of the public key")
	}
	o, _ := NewOpener(a)
	if o.MailboxID() != ida {
		t.Fatal("Opener.MailboxID differs")
	}
}
