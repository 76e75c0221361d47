package identity

import (
	"bytes"
	"testing"

	"github.com/hushnet/hush/crypto/codec"
)

// fuzzFixture is a small set of valid encodings for seed corpora.
type fuzzFixture struct {
	account, device, cert, list1, list2 []byte
}

func newFuzzFixture(f *testing.F) fuzzFixture {
	a := mustAccount(f)
	d1, d2 := mustDevice(f), mustDevice(f)
	c1, c2 := mustCert(f, a, d1), mustCert(f, a, d2)
	l1 := mustList(f, a, nil, c1)
	l2 := mustList(f, a, l1, c1, c2)
	ab, _ := a.MarshalBinary()
	db, _ := d1.MarshalBinary()
	return fuzzFixture{ab, db, c1.Marshal(), l1.Marshal(), l2.Marshal()}
}

// addVariants seeds b, its truncations and a few corruptions.
func addVariants(f *testing.F, b []byte) {
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add(b[:len(b)/2])
	f.Add(append(codec.Clone(b), 0))
	v := codec.Clone(b)
	v[0] ^= 0xff
	f.Add(v)
	v = codec.Clone(b)
	v[len(v)-1] ^= 1
	f.Add(v)
}

func FuzzParseDeviceCert(f *testing.F) {
	fx := newFuzzFixture(f)
	addVariants(f, fx.cert)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseDeviceCert(b)
		if err != nil {
			if c != nil {
				t.Fatal("non-nil cert with error")
			}
			return
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatal("accepted cert does not re-encode to its input")
		}
	})
}

func FuzzParseDeviceList(f *testing.F) {
	fx := newFuzzFixture(f)
	addVariants(f, fx.list1)
	addVariants(f, fx.list2)
	many := codec.Clone(fx.list1[:listHeaderSize])
	many[listHeaderSize-2], many[listHeaderSize-1] = 0xff, 0xff
	f.Add(many)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseDeviceList(b)
		if err != nil {
			if l != nil {
				t.Fatal("non-nil list with error")
			}
			return
		}
		if !bytes.Equal(l.Marshal(), b) || l.Len() < 1 || l.Len() > MaxDevices {
			t.Fatal("accepted list is not canonical or breaks a limit")
		}
		for _, c := range l.Devices() {
			if c.Account() != l.Account() || !l.Contains(c.DeviceID()) {
				t.Fatal("accepted list holds a foreign or unfindable cert")
			}
		}
	})
}

func FuzzParseAccount(f *testing.F) {
	fx := newFuzzFixture(f)
	addVariants(f, fx.account)
	f.Add(fx.device)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAccount(b)
		if err != nil {
			return
		}
		if enc, _ := a.MarshalBinary(); !bytes.Equal(enc, b) {
			t.Fatal("accepted account does not re-encode to its input")
		}
	})
}

func FuzzParseDevice(f *testing.F) {
	fx := newFuzzFixture(f)
	addVariants(f, fx.device)
	f.Add(fx.account)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDevice(b)
		if err != nil {
			return
		}
		if enc, _ := d.MarshalBinary(); !bytes.Equal(enc, b) {
			t.Fatal("accepted device does not re-encode to its input")
		}
	})
}
