package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

var t0 = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

func mustAccount(t testing.TB) *Account {
	t.Helper()
	a, err := NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustDevice(t testing.TB) *Device {
	t.Helper()
	d, err := NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustCert(t testing.TB, a *Account, d *Device) *DeviceCert {
	t.Helper()
	c, err := a.Certify(d, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustList(t testing.TB, a *Account, prev *DeviceList, certs ...*DeviceCert) *DeviceList {
	t.Helper()
	l, err := a.NewDeviceList(prev, certs, t0)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fieldsOf returns the raw fields of a real certificate for d by a.
func fieldsOf(a *Account, d *Device) certFields {
	return certFields{
		account:  a.id,
		device:   d.id,
		signing:  d.SigningPublic(),
		identity: d.identity.PublicKey().Bytes(),
		mailbox:  d.mailbox.PublicKey().Bytes(),
		caps:     CapPQRequired,
		created:  uint64(t0.Unix()),
	}
}

// signRawCert signs an arbitrary certificate body with signer, bypassing
// every check Certify makes: what a malicious or buggy account could emit.
func signRawCert(signer *Account, body []byte) []byte {
	return append(codec.Clone(body), ed25519.Sign(signer.priv, signedMessage(labelDeviceCert, body))...)
}

// rawList describes a device list body before any check.
type rawList struct {
	version  uint8
	suite    uint8
	account  AccountID
	listVer  uint64
	prevHash [HashSize]byte
	issued   uint64
	count    int // written count; -1 means len(certs)
	certs    [][]byte
}

func (r rawList) body() []byte {
	w := codec.NewWriter(MaxDeviceListSize)
	w.U8(r.version)
	w.U8(r.suite)
	w.Fixed(r.account[:])
	w.U64(r.listVer)
	w.Fixed(r.prevHash[:])
	w.U64(r.issued)
	n := r.count
	if n < 0 {
		n = len(r.certs)
	}
	w.U16(uint16(n))
	for _, c := range r.certs {
		w.Fixed(c)
	}
	return w.Bytes()
}

func newRawList(a *Account, certs ...*DeviceCert) rawList {
	r := rawList{version: suite.Version, suite: suite.ID, account: a.id, listVer: 1, issued: uint64(t0.Unix()), count: -1}
	for _, c := range certs {
		r.certs = append(r.certs, c.Marshal())
	}
	return r
}

func signRawList(signer *Account, body []byte) []byte {
	return append(codec.Clone(body), ed25519.Sign(signer.priv, signedMessage(labelDeviceList, body))...)
}

func TestAccountRoundTrip(t *testing.T) {
	a := mustAccount(t)
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != AccountPrivateSize {
		t.Fatalf("account encoding is %d bytes, want %d", len(b), AccountPrivateSize)
	}
	a2, err := ParseAccount(b)
	if err != nil {
		t.Fatal(err)
	}
	if a2.Public() != a.Public() || !a2.priv.Equal(a.priv) {
		t.Fatal("account changed in round trip")
	}
	if !bytes.Equal(a.Public().PublicKey(), a.priv.Public().(ed25519.PublicKey)) {
		t.Fatal("account id is not the ed25519 public key")
	}
}

func TestDeviceRoundTrip(t *testing.T) {
	d := mustDevice(t)
	b, err := d.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != DevicePrivateSize {
		t.Fatalf("device encoding is %d bytes, want %d", len(b), DevicePrivateSize)
	}
	d2, err := ParseDevice(b)
	if err != nil {
		t.Fatal(err)
	}
	if d2.ID() != d.ID() || !d2.SigningKey().Equal(d.SigningKey()) ||
		!d2.IdentityKey().Equal(d.IdentityKey()) || !d2.MailboxKey().Equal(d.MailboxKey()) {
		t.Fatal("device changed in round trip")
	}
	if d.IdentityKey().Equal(d.MailboxKey()) {
		t.Fatal("identity and mailbox keys are the same key")
	}
}

func TestParsePrivateRejects(t *testing.T) {
	acc, _ := mustAccount(t).MarshalBinary()
	dev, _ := mustDevice(t).MarshalBinary()
	with := func(b []byte, i int, v byte) []byte { b = codec.Clone(b); b[i] = v; return b }
	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
		want  error
	}{
		{"account empty", parseAccountErr, nil, ErrMalformed},
		{"account truncated", parseAccountErr, acc[:len(acc)-1], ErrMalformed},
		{"account trailing", parseAccountErr, append(codec.Clone(acc), 0), ErrMalformed},
		{"account version", parseAccountErr, with(acc, 0, 2), ErrUnsupportedVersion},
		{"account suite", parseAccountErr, with(acc, 1, 0), ErrUnsupportedVersion},
		{"account as device", parseDeviceErr, acc, ErrMalformed},
		{"device empty", parseDeviceErr, nil, ErrMalformed},
		{"device truncated", parseDeviceErr, dev[:len(dev)-1], ErrMalformed},
		{"device trailing", parseDeviceErr, append(codec.Clone(dev), 0), ErrMalformed},
		{"device version", parseDeviceErr, with(dev, 0, 0), ErrUnsupportedVersion},
		{"device as account", parseAccountErr, dev, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func parseAccountErr(b []byte) error { _, err := ParseAccount(b); return err }
func parseDeviceErr(b []byte) error  { _, err := ParseDevice(b); return err }

func TestIDStrings(t *testing.T) {
	var id AccountID
	for i := range id {
		id[i] = byte(i)
	}
	if got := id.String(); got != "00010203" {
		t.Errorf("AccountID.String = %q", got)
	}
	if got := id.Hex(); len(got) != 64 || got[:8] != "00010203" || got[62:] != "1f" {
		t.Errorf("AccountID.Hex = %q", got)
	}
	var did DeviceID
	did[0], did[15] = 0xab, 0xcd
	if did.String() != "ab000000" || did.Hex() != "ab0000000000000000000000000000cd" {
		t.Errorf("DeviceID strings %q %q", did.String(), did.Hex())
	}
	if _, err := ParseAccountID(make([]byte, 31)); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseAccountID accepted 31 bytes: %v", err)
	}
	if got, err := ParseAccountID(id[:]); err != nil || got != id {
		t.Errorf("ParseAccountID round trip: %v", err)
	}
}

func TestDeviceIDDerivation(t *testing.T) {
	d := mustDevice(t)
	sum := sha256.Sum256(append([]byte("hush/v1/device-id\x02"), d.SigningPublic()...))
	if d.ID() != DeviceID(sum[:16]) || DeviceIDOf(d.SigningPublic()) != d.ID() {
		t.Fatalf("device id %s, want %x", d.ID().Hex(), sum[:16])
	}
}

func TestSignVerify(t *testing.T) {
	a := mustAccount(t)
	d := mustDevice(t)
	const label = "hush/v1/contact-card"
	msg := []byte("card")
	sig, err := a.Sign(label, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(a.Public().PublicKey(), label, msg, sig); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	dsig, err := d.Sign(label, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(d.SigningPublic(), label, msg, dsig); err != nil {
		t.Fatalf("valid device signature rejected: %v", err)
	}
	bad := []struct {
		name  string
		pub   ed25519.PublicKey
		label string
		msg   []byte
		sig   []byte
	}{
		{"other label", a.Public().PublicKey(), "hush/v1/contact-cart", msg, sig},
		{"other msg", a.Public().PublicKey(), label, []byte("cards"), sig},
		{"other key", d.SigningPublic(), label, msg, sig},
		{"short sig", a.Public().PublicKey(), label, msg, sig[:63]},
		{"short key", a.Public().PublicKey()[:31], label, msg, sig},
		{"reserved label", a.Public().PublicKey(), labelDeviceCert, msg, sig},
	}
	for _, tt := range bad {
		if err := Verify(tt.pub, tt.label, tt.msg, tt.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: got %v", tt.name, err)
		}
	}
	for _, l := range []string{labelDeviceCert, labelDeviceList, labelDeviceID, "hush/v1/", "hush/v2/x", "other"} {
		if _, err := a.Sign(l, msg); !errors.Is(err, ErrReservedLabel) {
			t.Errorf("Account.Sign(%q) = %v, want ErrReservedLabel", l, err)
		}
		if _, err := d.Sign(l, msg); !errors.Is(err, ErrReservedLabel) {
			t.Errorf("Device.Sign(%q) = %v, want ErrReservedLabel", l, err)
		}
	}
}

func TestCertRoundTrip(t *testing.T) {
	a, d := mustAccount(t), mustDevice(t)
	c := mustCert(t, a, d)
	enc := c.Marshal()
	if len(enc) != CertSize {
		t.Fatalf("cert is %d bytes, want %d", len(enc), CertSize)
	}
	c2, err := ParseDeviceCert(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Equal(c) || c2.Account() != a.Public() || c2.DeviceID() != d.ID() ||
		!c2.SigningKey().Equal(d.SigningPublic()) ||
		!c2.IdentityKey().Equal(d.IdentityKey().PublicKey()) ||
		!c2.MailboxKey().Equal(d.MailboxKey().PublicKey()) ||
		!c2.PQRequired() || c2.Capabilities() != CapPQRequired || !c2.CreatedAt().Equal(t0) {
		t.Fatal("cert fields changed in round trip")
	}
	enc[0] ^= 0xff
	if !bytes.Equal(c.Marshal(), c2.Marshal()) {
		t.Fatal("Marshal returned an aliased slice")
	}
	if _, err := a.Certify(d, time.Unix(-1, 0)); err == nil {
		t.Fatal("Certify accepted a time before 1970")
	}
}

func TestCertRejects(t *testing.T) {
	a, d := mustAccount(t), mustDevice(t)
	good := mustCert(t, a, d).Marshal()
	signed := func(mod func(f *certFields)) []byte {
		f := fieldsOf(a, d)
		mod(&f)
		return signRawCert(a, f.body())
	}
	with := func(i int, v byte) []byte { b := codec.Clone(good); b[i] = v; return b }
	resign := func(i int, v byte) []byte {
		b := codec.Clone(good[:certBodySize])
		b[i] = v
		return signRawCert(a, b)
	}
	other := mustDevice(t)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:CertSize-1], ErrMalformed},
		{"trailing", append(codec.Clone(good), 0), ErrMalformed},
		{"version", with(0, 2), ErrUnsupportedVersion},
		{"suite", with(1, 2), ErrUnsupportedVersion},
		{"version re-signed", resign(0, 0), ErrUnsupportedVersion},
		{"signing key type", resign(2+32+16, suite.KeyX25519), ErrMalformed},
		{"identity key type", resign(2+32+16+33, suite.KeyEd25519), ErrMalformed},
		{"mailbox key type", resign(2+32+16+66, suite.KeyMLKEM1024), ErrMalformed},
		{"unknown capability", signed(func(f *certFields) { f.caps |= 2 }), ErrMalformed},
		{"no pq capability", signed(func(f *certFields) { f.caps = 0 }), ErrMalformed},
		{"created overflow", signed(func(f *certFields) { f.created = math.MaxInt64 + 1 }), ErrMalformed},
		{"device id mismatch", signed(func(f *certFields) { f.device = other.ID() }), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseDeviceCert(tt.in)
			if !errors.Is(err, tt.want) || c != nil {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestListRoundTrip(t *testing.T) {
	a := mustAccount(t)
	d1, d2, d3 := mustDevice(t), mustDevice(t), mustDevice(t)
	c1, c2, c3 := mustCert(t, a, d1), mustCert(t, a, d2), mustCert(t, a, d3)
	v1 := mustList(t, a, nil, c3, c1, c2)
	if v1.Version() != 1 || v1.PrevHash() != [HashSize]byte{} || v1.Len() != 3 || v1.Account() != a.Public() || !v1.IssuedAt().Equal(t0) {
		t.Fatal("v1 header wrong")
	}
	got := v1.Devices()
	for i := 1; i < len(got); i++ {
		if bytes.Compare(got[i-1].device[:], got[i].device[:]) >= 0 {
			t.Fatal("devices not sorted by id")
		}
	}
	for _, d := range []*Device{d1, d2, d3} {
		if !v1.Contains(d.ID()) || v1.Device(d.ID()).DeviceID() != d.ID() {
			t.Fatalf("v1 lost device %v", d.ID())
		}
	}
	parsed, err := ParseDeviceList(v1.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Hash() != v1.Hash() || parsed.Hash() != sha256.Sum256(v1.Marshal()) {
		t.Fatal("hash differs after round trip or is not SHA-256 of the encoding")
	}
	// v2 revokes d2.
	v2 := mustList(t, a, v1, c1, c3)
	if v2.Version() != 2 || v2.PrevHash() != v1.Hash() {
		t.Fatal("v2 does not chain to v1")
	}
	if v2.Contains(d2.ID()) || v2.Device(d2.ID()) != nil {
		t.Fatal("revoked device still listed")
	}
	if err := v2.Follows(v1); err != nil {
		t.Fatalf("v2 does not follow v1: %v", err)
	}
	if len(v1.Marshal()) != listHeaderSize+3*CertSize+SignatureSize {
		t.Fatal("v1 encoding has unexpected size")
	}
}

func TestFollowsAcceptsVersionJump(t *testing.T) {
	a := mustAccount(t)
	c := mustCert(t, a, mustDevice(t))
	v1 := mustList(t, a, nil, c)
	v2 := mustList(t, a, v1, c)
	v3 := mustList(t, a, v2, c)
	if err := v3.Follows(v1); err != nil {
		t.Fatalf("jump v1 -> v3 rejected: %v", err)
	}
	if err := v3.Follows(nil); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("Follows(nil) = %v", err)
	}
}

func TestListDuplicateDevice(t *testing.T) {
	a, d := mustAccount(t), mustDevice(t)
	c := mustCert(t, a, d)
	c2, err := a.Certify(d, t0.Add(time.Hour)) // same device, other bytes
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.NewDeviceList(nil, []*DeviceCert{c, c2}, t0); !errors.Is(err, ErrDuplicateDevice) {
		t.Fatalf("NewDeviceList = %v, want ErrDuplicateDevice", err)
	}
	raw := signRawList(a, newRawList(a, c, c2).body())
	if _, err := ParseDeviceList(raw); !errors.Is(err, ErrDuplicateDevice) {
		t.Fatalf("ParseDeviceList = %v, want ErrDuplicateDevice", err)
	}
}

func TestListTooManyDevices(t *testing.T) {
	a := mustAccount(t)
	certs := make([]*DeviceCert, MaxDevices+1)
	for i := range certs {
		certs[i] = mustCert(t, a, mustDevice(t))
	}
	full := mustList(t, a, nil, certs[:MaxDevices]...)
	if len(full.Marshal()) != MaxDeviceListSize {
		t.Fatalf("full list is %d bytes, MaxDeviceListSize %d", len(full.Marshal()), MaxDeviceListSize)
	}
	if _, err := ParseDeviceList(full.Marshal()); err != nil {
		t.Fatalf("list of MaxDevices rejected: %v", err)
	}
	if _, err := a.NewDeviceList(nil, certs, t0); !errors.Is(err, ErrTooManyDevices) {
		t.Fatalf("NewDeviceList = %v, want ErrTooManyDevices", err)
	}
	raw := signRawList(a, newRawList(a, certs...).body())
	if _, err := ParseDeviceList(raw); !errors.Is(err, ErrTooManyDevices) {
		t.Fatalf("ParseDeviceList(17 devices) = %v, want ErrTooManyDevices", err)
	}
	// A short input that declares 17 devices fails on the count, before
	// anything is read or allocated for them.
	r := newRawList(a)
	r.count = MaxDevices + 1
	if _, err := ParseDeviceList(r.body()); !errors.Is(err, ErrTooManyDevices) {
		t.Fatalf("declared count 17 = %v, want ErrTooManyDevices", err)
	}
	r.count = 0xffff
	if _, err := ParseDeviceList(r.body()); !errors.Is(err, ErrTooManyDevices) {
		t.Fatalf("declared count 65535 = %v, want ErrTooManyDevices", err)
	}
}

func TestListRejects(t *testing.T) {
	a := mustAccount(t)
	c1, c2 := mustCert(t, a, mustDevice(t)), mustCert(t, a, mustDevice(t))
	good := mustList(t, a, nil, c1, c2).Marshal()
	signedRaw := func(mod func(r *rawList)) []byte {
		r := newRawList(a, c1, c2)
		if bytes.Compare(c1.device[:], c2.device[:]) > 0 {
			r.certs[0], r.certs[1] = r.certs[1], r.certs[0]
		}
		mod(&r)
		return signRawList(a, r.body())
	}
	badCert := codec.Clone(c1.Marshal())
	badCert[CertSize-1] ^= 1
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"header only", good[:listHeaderSize], ErrMalformed},
		{"trailing", append(codec.Clone(good), 0), ErrMalformed},
		{"oversize", make([]byte, MaxDeviceListSize+1), ErrTooManyDevices},
		{"version", signedRaw(func(r *rawList) { r.version = 2 }), ErrUnsupportedVersion},
		{"suite", signedRaw(func(r *rawList) { r.suite = 0 }), ErrUnsupportedVersion},
		{"no devices", signedRaw(func(r *rawList) { r.certs = nil }), ErrNoDevices},
		{"list version 0", signedRaw(func(r *rawList) { r.listVer = 0 }), ErrMalformed},
		{"list version max", signedRaw(func(r *rawList) { r.listVer = math.MaxUint64; r.prevHash[0] = 1 }), ErrMalformed},
		{"v1 with prev hash", signedRaw(func(r *rawList) { r.prevHash[31] = 1 }), ErrMalformed},
		{"v2 without prev hash", signedRaw(func(r *rawList) { r.listVer = 2 }), ErrMalformed},
		{"issued overflow", signedRaw(func(r *rawList) { r.issued = math.MaxInt64 + 1 }), ErrMalformed},
		{"unsorted", signedRaw(func(r *rawList) { r.certs[0], r.certs[1] = r.certs[1], r.certs[0] }), ErrMalformed},
		{"bad cert signature", signedRaw(func(r *rawList) { r.certs = [][]byte{badCert} }), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseDeviceList(tt.in)
			if !errors.Is(err, tt.want) || l != nil {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewDeviceListRejects(t *testing.T) {
	a, b := mustAccount(t), mustAccount(t)
	ca := mustCert(t, a, mustDevice(t))
	cb := mustCert(t, b, mustDevice(t))
	lb := mustList(t, b, nil, cb)
	tests := []struct {
		name  string
		prev  *DeviceList
		certs []*DeviceCert
		want  error
	}{
		{"empty", nil, nil, ErrNoDevices},
		{"nil cert", nil, []*DeviceCert{nil}, ErrMalformed},
		{"foreign cert", nil, []*DeviceCert{ca, cb}, ErrWrongAccount},
		{"foreign prev", lb, []*DeviceCert{ca}, ErrWrongAccount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.NewDeviceList(tt.prev, tt.certs, t0); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func BenchmarkParseDeviceList(b *testing.B) {
	a := mustAccount(b)
	certs := make([]*DeviceCert, MaxDevices)
	for i := range certs {
		certs[i] = mustCert(b, a, mustDevice(b))
	}
	enc := mustList(b, a, nil, certs...).Marshal()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := ParseDeviceList(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCertify(b *testing.B) {
	a, d := mustAccount(b), mustDevice(b)
	for b.Loop() {
		if _, err := a.Certify(d, t0); err != nil {
			b.Fatal(err)
		}
	}
}
