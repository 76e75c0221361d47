package identity

import (
	"encoding/hex"
	"flag"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/hushnet/hush/crypto/internal/kattest"
)

var update = flag.Bool("update", false, "rewrite testdata")

const katPath = "testdata/kat_identity.json"

type katFile struct {
	Description string      `json:"description"`
	Generator   string      `json:"generator"`
	Vectors     []katVector `json:"vectors"`
}

// katVector is one scenario: an account certifies two devices at
// created_at and created_at+60, signs list v1 = {device1} at created_at and
// list v2 at created_at+60, which either adds device2 or replaces device1
// by device2 (revocation).
type katVector struct {
	Name           string `json:"name"`
	Seed           uint64 `json:"seed"`
	CreatedAt      int64  `json:"created_at"`
	Revoke         bool   `json:"revoke_device1"`
	AccountPrivate string `json:"account_private"`
	AccountID      string `json:"account_id"`
	Device1Private string `json:"device1_private"`
	Device1ID      string `json:"device1_id"`
	Device1Sign    string `json:"device1_signing_pub"`
	Device1IK      string `json:"device1_identity_pub"`
	Device1MK      string `json:"device1_mailbox_pub"`
	Device2Private string `json:"device2_private"`
	Device2ID      string `json:"device2_id"`
	Cert1          string `json:"cert1"`
	Cert2          string `json:"cert2"`
	List1          string `json:"list1"`
	List1Hash      string `json:"list1_hash"`
	List2          string `json:"list2"`
	List2Hash      string `json:"list2_hash"`
}

// katOutputs builds every output of the scenario from the three private
// keys; Ed25519 is deterministic, so this involves no randomness.
func katOutputs(t *testing.T, v *katVector, a *Account, d1, d2 *Device) {
	t.Helper()
	at := time.Unix(v.CreatedAt, 0)
	c1, err := a.Certify(d1, at)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := a.Certify(d2, at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	l1, err := a.NewDeviceList(nil, []*DeviceCert{c1}, at)
	if err != nil {
		t.Fatal(err)
	}
	next := []*DeviceCert{c1, c2}
	if v.Revoke {
		next = []*DeviceCert{c2}
	}
	l2, err := a.NewDeviceList(l1, next, at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := a.MarshalBinary()
	d1b, _ := d1.MarshalBinary()
	d2b, _ := d2.MarshalBinary()
	h1, h2 := l1.Hash(), l2.Hash()
	x := hex.EncodeToString
	v.AccountPrivate, v.AccountID = x(ab), a.Public().Hex()
	v.Device1Private, v.Device1ID = x(d1b), d1.ID().Hex()
	v.Device1Sign = x(d1.SigningPublic())
	v.Device1IK = x(d1.IdentityKey().PublicKey().Bytes())
	v.Device1MK = x(d1.MailboxKey().PublicKey().Bytes())
	v.Device2Private, v.Device2ID = x(d2b), d2.ID().Hex()
	v.Cert1, v.Cert2 = x(c1.Marshal()), x(c2.Marshal())
	v.List1, v.List1Hash = x(l1.Marshal()), x(h1[:])
	v.List2, v.List2Hash = x(l2.Marshal()), x(h2[:])
}

// regenerate runs the scenario from the seed.
func regenerate(t *testing.T, in katVector) katVector {
	t.Helper()
	cryptotest.SetGlobalRandom(t, in.Seed)
	a, err := NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	d1, err := NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	out := katVector{Name: in.Name, Seed: in.Seed, CreatedAt: in.CreatedAt, Revoke: in.Revoke}
	katOutputs(t, &out, a, d1, d2)
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// open checks a stored vector from its private keys only.
func open(t *testing.T, v katVector) {
	t.Helper()
	a, err := ParseAccount(unhex(t, v.AccountPrivate))
	if err != nil {
		t.Fatal(err)
	}
	d1, err := ParseDevice(unhex(t, v.Device1Private))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := ParseDevice(unhex(t, v.Device2Private))
	if err != nil {
		t.Fatal(err)
	}
	got := katVector{Name: v.Name, Seed: v.Seed, CreatedAt: v.CreatedAt, Revoke: v.Revoke}
	katOutputs(t, &got, a, d1, d2)
	if got != v {
		t.Fatalf("outputs from stored private keys differ:\n got %+v\nwant %+v", got, v)
	}
	l1, err := ParseDeviceList(unhex(t, v.List1))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := ParseDeviceList(unhex(t, v.List2))
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Follows(l1); err != nil {
		t.Fatalf("list2 does not follow list1: %v", err)
	}
	if l2.Contains(d1.ID()) == v.Revoke || !l2.Contains(d2.ID()) || l1.Contains(d2.ID()) {
		t.Fatal("device membership differs from the scenario")
	}
	c1, err := ParseDeviceCert(unhex(t, v.Cert1))
	if err != nil {
		t.Fatal(err)
	}
	if c1.Account().Hex() != v.AccountID || c1.DeviceID().Hex() != v.Device1ID ||
		hex.EncodeToString(c1.IdentityKey().Bytes()) != v.Device1IK ||
		hex.EncodeToString(c1.MailboxKey().Bytes()) != v.Device1MK ||
		hex.EncodeToString(c1.SigningKey()) != v.Device1Sign {
		t.Fatal("cert1 fields differ from the stored keys")
	}
}

func TestKAT(t *testing.T) {
	cases := []katVector{
		{Name: "add a second device", Seed: 1, CreatedAt: 1767225600},
		{Name: "replace device 1 by device 2", Seed: 2, CreatedAt: 1767225600, Revoke: true},
	}
	if *update {
		f := katFile{
			Description: "hush identity: account and device private keys, device certificates, device lists v1 and v2 and their hashes",
			Generator:   "go test ./crypto/identity -run TestKAT -update",
		}
		for _, c := range cases {
			f.Vectors = append(f.Vectors, regenerate(t, c))
		}
		kattest.Write(t, katPath, f)
	}
	var f katFile
	kattest.Read(t, katPath, &f)
	if len(f.Vectors) != len(cases) {
		t.Fatalf("%d vectors, want %d", len(f.Vectors), len(cases))
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			t.Run("open", func(t *testing.T) { open(t, v) })
			t.Run("regenerate", func(t *testing.T) {
				if got := regenerate(t, v); got != v {
					t.Fatalf("regenerated vector differs (did the standard library change how it draws randomness?):\n got %+v\nwant %+v", got, v)
				}
			})
		})
	}
}
