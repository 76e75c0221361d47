package card

import (
	"encoding/hex"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/internal/kattest"
	"github.com/hushnet/hush/crypto/pqxdh"
)

var update = flag.Bool("update", false, "rewrite testdata")

var now = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

type party struct {
	account *identity.Account
	device  *identity.Device
	list    *identity.DeviceList
	card    *Card
}

func newParty(t testing.TB, name string) *party {
	t.Helper()
	a, err := identity.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	d, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.Certify(d, now)
	if err != nil {
		t.Fatal(err)
	}
	list, err := a.NewDeviceList(nil, []*identity.DeviceCert{cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	store, err := pqxdh.NewPrekeyStore(d.SigningKey(), now)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := store.Bundle(now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(a, name, list, []Device{{
		ID:        d.ID(),
		Bundle:    bundle,
		PeerID:    []byte("peer-id-bytes"),
		Addrs:     [][]byte{[]byte("/ip4/127.0.0.1/tcp/4001")},
		Mailboxes: []Mailbox{{Relay: []byte("relay"), DepositID: []byte("deposit"), Capability: []byte("cap")}},
	}}, now)
	if err != nil {
		t.Fatal(err)
	}
	return &party{account: a, device: d, list: list, card: c}
}

func TestLinkRoundTrip(t *testing.T) {
	p := newParty(t, "Alice 🦊")
	link := p.card.Link()
	if !strings.HasPrefix(link, Scheme) {
		t.Fatalf("link %q lacks the scheme", link[:20])
	}
	for _, variant := range []string{link, strings.ToLower(link), "  " + link + "\n", "HUSH://" + link[len(Scheme):]} {
		c, err := ParseLink(variant, now)
		if err != nil {
			t.Fatalf("ParseLink: %v", err)
		}
		if c.Name != "Alice 🦊" || c.Account() != p.account.Public() || len(c.Devices) != 1 {
			t.Fatal("parsed card differs")
		}
		if string(c.Marshal()) != string(p.card.Marshal()) {
			t.Fatal("parsing a link twice must give the same card")
		}
		d := c.Device(p.device.ID())
		if d == nil || string(d.PeerID) != "peer-id-bytes" || len(d.Mailboxes) != 1 || string(d.Mailboxes[0].Capability) != "cap" {
			t.Fatal("device entry differs")
		}
	}
	t.Logf("link is %d characters", len(link))
}

func TestParseLinkRejects(t *testing.T) {
	p := newParty(t, "Bob")
	link := p.card.Link()
	other := newParty(t, "Mallory")
	cases := []struct {
		name string
		link string
		want error
	}{
		{"empty", "", ErrNotLink},
		{"wrong scheme", "https://example.com/" + link[len(Scheme):], ErrNotLink},
		{"not base32", Scheme + "!!!!", ErrMalformed},
		{"truncated", link[:len(link)/2], ErrMalformed},
		{"one char short", link[:len(link)-1], ErrMalformed},
		{"oversize", Scheme + strings.Repeat("A", MaxLinkSize), ErrTooLarge},
	}
	for _, tc := range cases {
		if _, err := ParseLink(tc.link, now); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// A card whose device list is Mallory's but signed by Bob's account
	// cannot exist: New refuses, and a spliced card fails the signature.
	if _, err := New(p.account, "x", other.list, nil, now); err == nil {
		t.Error("New accepted another account's device list")
	}
}

// TestAttackTamperEveryByte flips each byte of an encoded card: every
// change must be rejected (bad signature, malformed field or bad prekey).
func TestAttackTamperEveryByte(t *testing.T) {
	enc := newParty(t, "Carol").card.Marshal()
	for i := range enc {
		b := append([]byte(nil), enc...)
		b[i] ^= 0x01
		if _, err := Parse(b, now); err == nil {
			t.Fatalf("byte %d flipped: card accepted", i)
		}
	}
}

func TestAttackSignedByOtherAccount(t *testing.T) {
	p := newParty(t, "Dave")
	m := newParty(t, "Mallory")
	enc := p.card.Marshal()
	// Re-sign Dave's card body with Mallory's account key.
	body := enc[:len(enc)-identity.SignatureSize]
	sig, err := m.account.Sign(labelCard, body)
	if err != nil {
		t.Fatal(err)
	}
	forged := append(append([]byte(nil), body...), sig...)
	if _, err := Parse(forged, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}

func TestParseRejects(t *testing.T) {
	enc := newParty(t, "Erin").card.Marshal()
	if _, err := Parse(append(append([]byte(nil), enc...), 0), now); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: got %v", err)
	}
	v := append([]byte(nil), enc...)
	v[0] = 2
	if _, err := Parse(v, now); !errors.Is(err, ErrVersion) {
		t.Errorf("unknown version: got %v", err)
	}
	for n := range len(enc) {
		if _, err := Parse(enc[:n], now); err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
	if _, err := Parse(enc, now.Add(400*24*time.Hour)); !errors.Is(err, pqxdh.ErrExpired) {
		t.Errorf("stale card: got %v, want pqxdh.ErrExpired", err)
	}
}

func TestNameRules(t *testing.T) {
	for _, name := range []string{"", strings.Repeat("x", MaxNameSize+1), "bad\x00name", "\xff"} {
		if err := checkName(name); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if err := checkName(strings.Repeat("é", MaxNameSize/2)); err != nil {
		t.Error(err)
	}
}

// kat is testdata/kat_card.json (format: docs/protocol/kat.md).
type kat struct {
	Description string      `json:"description"`
	Generator   string      `json:"generator"`
	Vectors     []katVector `json:"vectors"`
}

type katVector struct {
	Name    string `json:"name"`
	Seed    uint64 `json:"seed"`
	Time    int64  `json:"time"`
	Display string `json:"display_name"`
	Account string `json:"account"`
	Card    string `json:"card"`
	Link    string `json:"link"`
}

func TestKAT(t *testing.T) {
	path := filepath.Join("testdata", "kat_card.json")
	gen := func(seed uint64, name string) katVector {
		cryptotest.SetGlobalRandom(t, seed)
		p := newParty(t, name)
		return katVector{Name: name, Seed: seed, Time: now.Unix(), Display: name,
			Account: hex.EncodeToString(p.account.Public().PublicKey()),
			Card:    hex.EncodeToString(p.card.Marshal()), Link: p.card.Link()}
	}
	if *update {
		k := kat{
			Description: "contact cards and hush:// links built from seeded identities and prekeys",
			Generator:   "go test ./crypto/card -run TestKAT -update",
			Vectors:     []katVector{gen(1, "Alice"), gen(2, "Bob 🦊")},
		}
		kattest.Write(t, path, k)
	}
	var k kat
	kattest.Read(t, path, &k)
	if len(k.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range k.Vectors {
		// Opening: the stored link parses, verifies and names the account.
		at := time.Unix(v.Time, 0)
		c, err := ParseLink(v.Link, at)
		if err != nil {
			t.Fatalf("%s: stored link: %v", v.Name, err)
		}
		if hex.EncodeToString(c.Marshal()) != v.Card || hex.EncodeToString(c.Account().PublicKey()) != v.Account || c.Name != v.Display {
			t.Fatalf("%s: stored link does not match stored card", v.Name)
		}
		// Regeneration from the seed, byte for byte.
		if g := gen(v.Seed, v.Display); g != v {
			t.Errorf("%s: regenerated vector differs", v.Name)
		}
	}
}

func FuzzParseLink(f *testing.F) {
	p := newParty(f, "Fuzz")
	f.Add(p.card.Link())
	f.Add(Scheme)
	f.Add("hush://AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseLink(s, now)
		if err != nil {
			return
		}
		if _, err := Parse(c.Marshal(), now); err != nil {
			t.Fatalf("accepted card does not re-parse: %v", err)
		}
	})
}

func FuzzParse(f *testing.F) {
	p := newParty(f, "Fuzz")
	f.Add(p.card.Marshal())
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b, now)
		if err != nil {
			return
		}
		if string(c.Marshal()) != string(b) {
			t.Fatal("accepted card re-encodes differently")
		}
	})
}

func TestParseStoredIgnoresExpiry(t *testing.T) {
	enc := newParty(t, "Old").card.Marshal()
	later := now.Add(400 * 24 * time.Hour)
	if _, err := Parse(enc, later); err == nil {
		t.Fatal("expired card parsed")
	}
	c, err := ParseStored(enc)
	if err != nil {
		t.Fatalf("ParseStored: %v", err)
	}
	if !c.Created.Equal(now) {
		t.Fatal("creation time lost")
	}
	b := append([]byte(nil), enc...)
	b[len(b)-1] ^= 1
	if _, err := ParseStored(b); err == nil {
		t.Fatal("ParseStored skipped the signature check")
	}
}
