package sync

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

// detRand is a deterministic byte stream: SHA-256(label ‖ counter)
// blocks. It stands in for crypto/rand where a test pins bytes.
type detRand struct {
	label string
	n     uint64
	buf   []byte
}

func newDetRand(label string) *detRand { return &detRand{label: label} }

func (d *detRand) Read(p []byte) (int, error) {
	for i := range p {
		if len(d.buf) == 0 {
			h := sha256.New()
			h.Write([]byte(d.label))
			h.Write(binary.BigEndian.AppendUint64(nil, d.n))
			d.n++
			d.buf = h.Sum(nil)
		}
		p[i] = d.buf[0]
		d.buf = d.buf[1:]
	}
	return len(p), nil
}

func readN(r *detRand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// fixedAccount derives an account key from a label.
func fixedAccount(t testing.TB, label string) *identity.Account {
	t.Helper()
	a, err := identity.ParseAccount(append([]byte{1, 1, 1}, readN(newDetRand("account "+label), 32)...))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fixedDevice derives device keys from a label.
func fixedDevice(t testing.TB, label string) *identity.Device {
	t.Helper()
	d, err := identity.ParseDevice(append([]byte{1, 1, 2}, readN(newDetRand("device "+label), 96)...))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func certify(t testing.TB, a *identity.Account, d *identity.Device) *identity.DeviceCert {
	t.Helper()
	c, err := a.Certify(d, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// firstList is a's version-1 list of devs.
func firstList(t testing.TB, a *identity.Account, devs ...*identity.Device) *identity.DeviceList {
	t.Helper()
	var certs []*identity.DeviceCert
	for _, d := range devs {
		certs = append(certs, certify(t, a, d))
	}
	l, err := a.NewDeviceList(nil, certs, t0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fixedClock returns a clock function stopped at t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }
