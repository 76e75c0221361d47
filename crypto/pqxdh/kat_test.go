package pqxdh

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/hushnet/hush/crypto/internal/kattest"
	"github.com/hushnet/hush/crypto/x25519"
)

var update = flag.Bool("update", false, "rewrite testdata")

const katPath = "testdata/kat_pqxdh.json"

type katFile struct {
	Description string      `json:"description"`
	Generator   string      `json:"generator"`
	Vectors     []katVector `json:"vectors"`
}

type katVector struct {
	Name  string `json:"name"`
	Seed  uint64 `json:"seed"`
	Now   int64  `json:"now"`
	OPK   bool   `json:"use_one_time_prekey"`
	PQOPK bool   `json:"use_pq_one_time_prekey"`

	AD                   string `json:"ad"`
	AliceIdentityPrivate string `json:"alice_identity_private"`
	BobIdentityPrivate   string `json:"bob_identity_private"`
	BobSigningSeed       string `json:"bob_signing_seed"`
	BobSigningPublic     string `json:"bob_signing_public"`
	BobStore             string `json:"bob_store"`
	Bundle               string `json:"bundle"`
	SignedPrekeyPrivate  string `json:"signed_prekey_private"`
	OneTimePrekeyPrivate string `json:"one_time_prekey_private"`
	PQPrekeySeed         string `json:"pq_prekey_seed"`
	Initial              string `json:"initial"`
	SK                   string `json:"sk"`
}

var katCases = []struct {
	name       string
	seed       uint64
	opk, pqopk bool
}{
	{"one-time X25519 and ML-KEM prekeys", 1, true, true},
	{"one-time X25519, last-resort ML-KEM", 2, true, false},
	{"no X25519 one-time, one-time ML-KEM", 3, false, true},
	{"last-resort keys only", 4, false, false},
}

func h(b []byte) string { return hex.EncodeToString(b) }

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generateKAT runs one case from the fixed random stream.
func generateKAT(t *testing.T, name string, seed uint64, opk, pqopk bool) katVector {
	cryptotest.SetGlobalRandom(t, seed)
	now := time.Unix(1_800_000_000, 0)
	ad := []byte("certificate of A || certificate of B")
	alice, bob := x25519.GenerateKey(), x25519.GenerateKey()
	signPub, signPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewPrekeyStore(signPriv, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.GenerateOneTime(1, now); err != nil {
		t.Fatal(err)
	}
	b, err := store.Bundle(now)
	if err != nil {
		t.Fatal(err)
	}
	if !opk {
		b.OneTime = nil
	}
	if !pqopk {
		b.PQOneTime = nil
	}
	bundle := b.Marshal()
	parsed, err := ParseBundle(bundle, signPub, now)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Initiate(alice, bob.PublicKey(), parsed, ad)
	if err != nil {
		t.Fatal(err)
	}
	v := katVector{
		Name: name, Seed: seed, Now: now.Unix(), OPK: opk, PQOPK: pqopk,
		AD:                   h(ad),
		AliceIdentityPrivate: h(alice.Bytes()),
		BobIdentityPrivate:   h(bob.Bytes()),
		BobSigningSeed:       h(signPriv.Seed()),
		BobSigningPublic:     h(signPub),
		BobStore:             h(snapshot(t, store)),
		Bundle:               h(bundle),
		SignedPrekeyPrivate:  h(store.signed[0].priv.Bytes()),
		PQPrekeySeed:         h(store.lastResort[0].priv.Bytes()),
		Initial:              h(res.Initial.Marshal()),
		SK:                   h(res.SK),
	}
	if opk {
		v.OneTimePrekeyPrivate = h(store.oneTime[0].priv.Bytes())
	}
	if pqopk {
		v.PQPrekeySeed = h(store.pqOneTime[0].priv.Bytes())
	}
	return v
}

func TestKAT(t *testing.T) {
	if *update {
		f := katFile{
			Description: "PQXDH (X25519, ML-KEM-1024, HKDF-SHA-256): responder prekey store, bundle, initial message and SK per one-time-key combination",
			Generator:   "go test ./crypto/pqxdh -run TestKAT -update",
		}
		for _, c := range katCases {
			t.Run(c.name, func(t *testing.T) {
				f.Vectors = append(f.Vectors, generateKAT(t, c.name, c.seed, c.opk, c.pqopk))
			})
		}
		kattest.Write(t, katPath, f)
		return
	}
	var f katFile
	kattest.Read(t, katPath, &f)
	if len(f.Vectors) != len(katCases) {
		t.Fatalf("%d vectors, want %d", len(f.Vectors), len(katCases))
	}
	for i, want := range f.Vectors {
		t.Run(want.Name, func(t *testing.T) {
			t.Run("regeneration", func(t *testing.T) {
				c := katCases[i]
				if got := generateKAT(t, c.name, c.seed, c.opk, c.pqopk); got != want {
					gj, _ := json.MarshalIndent(got, "", "  ")
					t.Fatalf("regenerated vector differs:\n%s", gj)
				}
			})
			t.Run("responder", func(t *testing.T) { checkKATResponder(t, want) })
		})
	}
}

// checkKATResponder opens a stored vector without the random stream: the
// stored store and initial message must give the stored SK through
// Respond, and an independent re-statement of the KDF over the stored
// private keys must agree.
func checkKATResponder(t *testing.T, v katVector) {
	now := time.Unix(v.Now, 0)
	signPriv := ed25519.NewKeyFromSeed(unhex(t, v.BobSigningSeed))
	if !bytes.Equal(signPriv.Public().(ed25519.PublicKey), unhex(t, v.BobSigningPublic)) {
		t.Fatal("signing seed and public key disagree")
	}
	bob, err := ecdh.X25519().NewPrivateKey(unhex(t, v.BobIdentityPrivate))
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ecdh.X25519().NewPrivateKey(unhex(t, v.AliceIdentityPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBundle(unhex(t, v.Bundle), signPriv.Public().(ed25519.PublicKey), now); err != nil {
		t.Fatalf("stored bundle: %v", err)
	}
	store, err := UnmarshalPrekeyStore(unhex(t, v.BobStore), signPriv)
	if err != nil {
		t.Fatal(err)
	}
	in, err := ParseInitial(unhex(t, v.Initial))
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Respond(bob, alice.PublicKey(), in, unhex(t, v.AD), now)
	if err != nil {
		t.Fatal(err)
	}
	sk := unhex(t, v.SK)
	if !bytes.Equal(p.SK, sk) {
		t.Fatal("Respond on the stored store and initial gives another SK")
	}

	// Independent statement of the KDF (docs/protocol/pqxdh.md).
	spk, _ := ecdh.X25519().NewPrivateKey(unhex(t, v.SignedPrekeyPrivate))
	ek, err := ecdh.X25519().NewPublicKey(in.Ephemeral[:])
	if err != nil {
		t.Fatal(err)
	}
	dh := func(priv *ecdh.PrivateKey, pub *ecdh.PublicKey) []byte {
		s, err := priv.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ikm := bytes.Repeat([]byte{0xff}, 32)
	ikm = append(ikm, dh(spk, alice.PublicKey())...)
	ikm = append(ikm, dh(bob, ek)...)
	ikm = append(ikm, dh(spk, ek)...)
	if v.OPK {
		opk, _ := ecdh.X25519().NewPrivateKey(unhex(t, v.OneTimePrekeyPrivate))
		ikm = append(ikm, dh(opk, ek)...)
	}
	dk, err := mlkem.NewDecapsulationKey1024(unhex(t, v.PQPrekeySeed))
	if err != nil {
		t.Fatal(err)
	}
	ss, err := dk.Decapsulate(in.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	ikm = append(ikm, ss...)
	want, err := hkdf.Key(sha256.New, ikm, make([]byte, 32), "hush/v1/pqxdh X25519_SHA-256_ML-KEM-1024", 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, sk) {
		t.Fatal("stored SK does not follow the specified KDF")
	}
}
