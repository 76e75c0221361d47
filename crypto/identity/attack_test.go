package identity

import (
	"errors"
	"testing"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/x25519"
)

// Research §4 row 12: identity change, rollback, broken chain, certificates
// not signed by the account. Row 13: invalid X25519 keys.

func TestAttackCertTamperEveryByte(t *testing.T) {
	a, d := mustAccount(t), mustDevice(t)
	good := mustCert(t, a, d).Marshal()
	for i := range good {
		for _, mask := range []byte{0x01, 0x80} {
			b := codec.Clone(good)
			b[i] ^= mask
			if c, err := ParseDeviceCert(b); err == nil || c != nil {
				t.Fatalf("byte %d ^ %#x accepted", i, mask)
			}
		}
	}
}

func TestAttackListTamperEveryByte(t *testing.T) {
	a := mustAccount(t)
	v1 := mustList(t, a, nil, mustCert(t, a, mustDevice(t)), mustCert(t, a, mustDevice(t)))
	good := v1.Marshal()
	for i := range good {
		b := codec.Clone(good)
		b[i] ^= 0x01
		if l, err := ParseDeviceList(b); err == nil || l != nil {
			t.Fatalf("byte %d flipped accepted", i)
		}
	}
}

func TestAttackCertNotSignedByAccount(t *testing.T) {
	a, mallory, d := mustAccount(t), mustAccount(t), mustDevice(t)
	// Mallory signs a certificate that claims account a.
	forged := signRawCert(mallory, func() []byte { f := fieldsOf(a, d); return f.body() }())
	if _, err := ParseDeviceCert(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged cert: got %v, want ErrBadSignature", err)
	}
	// A cert validly signed by mallory, put into a's list by a (for
	// example a confused admin device): the list is rejected.
	cm := mustCert(t, mallory, d)
	raw := signRawList(a, newRawList(a, cm).body())
	if _, err := ParseDeviceList(raw); !errors.Is(err, ErrWrongAccount) {
		t.Fatalf("list with foreign cert: got %v, want ErrWrongAccount", err)
	}
}

func TestAttackListNotSignedByAccount(t *testing.T) {
	a, mallory := mustAccount(t), mustAccount(t)
	c := mustCert(t, a, mustDevice(t))
	forged := signRawList(mallory, newRawList(a, c).body())
	if _, err := ParseDeviceList(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}

func TestAttackDeviceListRollback(t *testing.T) {
	a := mustAccount(t)
	d1, d2 := mustDevice(t), mustDevice(t)
	c1, c2 := mustCert(t, a, d1), mustCert(t, a, d2)
	v1 := mustList(t, a, nil, c1, c2)
	v2 := mustList(t, a, v1, c1) // revokes d2
	v2fork := mustList(t, a, v1, c1, c2)
	tests := []struct {
		name       string
		next, prev *DeviceList
	}{
		{"older list re-adding a revoked device", v1, v2},
		{"same list replayed", v2, v2},
		{"same version, other content", v2fork, v2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.next.Follows(tt.prev); !errors.Is(err, ErrRollback) {
				t.Fatalf("got %v, want ErrRollback", err)
			}
		})
	}
}

func TestAttackBrokenHashChain(t *testing.T) {
	a := mustAccount(t)
	c1, c2 := mustCert(t, a, mustDevice(t)), mustCert(t, a, mustDevice(t))
	v1 := mustList(t, a, nil, c1)
	v1other := mustList(t, a, nil, c2)
	v2 := mustList(t, a, v1other, c1, c2) // built on a v1 the peer never saw
	if err := v2.Follows(v1); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("got %v, want ErrBrokenChain", err)
	}
	// A signed v2 whose previous hash is garbage.
	r := newRawList(a, c1)
	r.listVer = 2
	r.prevHash[0] = 0xaa
	bad, err := ParseDeviceList(signRawList(a, r.body()))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Follows(v1); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("garbage prev hash: got %v, want ErrBrokenChain", err)
	}
}

func TestAttackDeviceListWrongAccount(t *testing.T) {
	a, b := mustAccount(t), mustAccount(t)
	la := mustList(t, a, nil, mustCert(t, a, mustDevice(t)))
	lb1 := mustList(t, b, nil, mustCert(t, b, mustDevice(t)))
	lb := mustList(t, b, lb1, mustCert(t, b, mustDevice(t)))
	if err := lb.Follows(la); !errors.Is(err, ErrWrongAccount) {
		t.Fatalf("got %v, want ErrWrongAccount", err)
	}
}

func TestAttackInvalidX25519KeyInCert(t *testing.T) {
	a, d := mustAccount(t), mustDevice(t)
	p := []byte{ // 2^255 - 19, little-endian: non-canonical encoding of 0
		0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	}
	highBit := d.identity.PublicKey().Bytes()
	highBit[31] |= 0x80
	zero := make([]byte, 32)
	one := make([]byte, 32)
	one[0] = 1
	bad := []struct {
		name string
		key  []byte
	}{
		{"high bit set", highBit},
		{"zero (small order)", zero},
		{"one (small order)", one},
		{"u = p (non-canonical)", p},
	}
	for _, tt := range bad {
		for _, slot := range []string{"identity", "mailbox"} {
			t.Run(tt.name+"/"+slot, func(t *testing.T) {
				f := fieldsOf(a, d)
				if slot == "identity" {
					f.identity = tt.key
				} else {
					f.mailbox = tt.key
				}
				_, err := ParseDeviceCert(signRawCert(a, f.body()))
				if !errors.Is(err, ErrMalformed) || !errors.Is(err, x25519.ErrInvalidKey) {
					t.Fatalf("got %v, want ErrMalformed wrapping x25519.ErrInvalidKey", err)
				}
			})
		}
	}
}
