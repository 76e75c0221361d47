package senderkey

import (
	"bytes"
	"encoding/hex"
	"flag"
	"reflect"
	"testing"
	"testing/cryptotest"

	"github.com/hushnet/hush/crypto/internal/kattest"
)

var update = flag.Bool("update", false, "rewrite testdata")

const katPath = "testdata/kat_senderkey.json"

type katFile struct {
	Description string      `json:"description"`
	Generator   string      `json:"generator"`
	Vectors     []katVector `json:"vectors"`
}

type katMessage struct {
	Iteration int    `json:"iteration"`
	Plaintext string `json:"plaintext"`
	Message   string `json:"message"`
}

type katVector struct {
	Name           string       `json:"name"`
	Seed           uint64       `json:"seed"`
	GroupID        string       `json:"group_id"`
	Epoch          uint64       `json:"epoch"`
	Device         string       `json:"device"`
	ChainID        int64        `json:"chain_id"`
	ChainKey       string       `json:"chain_key"`
	SigningSeed    string       `json:"signing_seed"`
	SigningPublic  string       `json:"signing_public"`
	Distribution   string       `json:"distribution"`
	Messages       []katMessage `json:"messages"`
	DecryptOrder   []int        `json:"decrypt_order"`
	SenderKeyState string       `json:"sender_key_state"`
	ReceiverState  string       `json:"receiver_state"`
}

var katCases = []struct {
	name  string
	seed  uint64
	epoch uint64
	pts   []string
	order []int
}{
	{"one message", 1, 0, []string{"hello group"}, []int{0}},
	{"three messages, out of order", 2, 7, []string{"first", "", "third, a little longer than the others"}, []int{2, 0, 1}},
	{"one lost message", 3, 1 << 40, []string{"a", "lost", "c"}, []int{2, 0}},
}

func katGroup() [GroupIDSize]byte {
	var g [GroupIDSize]byte
	for i := range g {
		g[i] = byte(0x30 + i)
	}
	return g
}

func generate(t *testing.T, name string, seed, epoch uint64, pts []string, order []int) katVector {
	cryptotest.SetGlobalRandom(t, seed)
	group, device := katGroup(), dev(0xD1)
	sk, err := NewSenderKey(group, epoch, device)
	if err != nil {
		t.Fatal(err)
	}
	d := sk.Distribution()
	db, _ := d.MarshalBinary()
	v := katVector{
		Name:          name,
		Seed:          seed,
		GroupID:       hex.EncodeToString(group[:]),
		Epoch:         epoch,
		Device:        hex.EncodeToString(device[:]),
		ChainID:       int64(sk.ChainID()),
		ChainKey:      hex.EncodeToString(d.ChainKey[:]),
		SigningSeed:   hex.EncodeToString(sk.signing.Seed()),
		SigningPublic: hex.EncodeToString(d.SigningKey[:]),
		Distribution:  hex.EncodeToString(db),
		DecryptOrder:  order,
	}
	for i, pt := range pts {
		msg := encrypt(t, sk, pt)
		v.Messages = append(v.Messages, katMessage{Iteration: i, Plaintext: pt, Message: hex.EncodeToString(msg)})
	}
	skb, _ := sk.MarshalBinary()
	v.SenderKeyState = hex.EncodeToString(skb)
	v.ReceiverState = hex.EncodeToString(openVector(t, &v))
	return v
}

// openVector adds the stored distribution to a fresh Receiver, decrypts the
// stored messages in the stored order and returns the receiver state.
func openVector(t *testing.T, v *katVector) []byte {
	t.Helper()
	d, err := ParseDistribution(unhex(t, v.Distribution))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(d.ChainKey[:]) != v.ChainKey || hex.EncodeToString(d.SigningKey[:]) != v.SigningPublic ||
		int64(d.ChainID) != v.ChainID || d.Epoch != v.Epoch || hex.EncodeToString(d.Device[:]) != v.Device {
		t.Fatal("distribution fields differ from the vector")
	}
	r := NewReceiver(d.GroupID)
	if err := r.Add(d); err != nil {
		t.Fatal(err)
	}
	for _, i := range v.DecryptOrder {
		m := v.Messages[i]
		pt, s, err := r.Decrypt(unhex(t, m.Message))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(pt) != m.Plaintext || s.Device != d.Device || s.Epoch != d.Epoch {
			t.Fatalf("message %d: %q from %+v", i, pt, s)
		}
	}
	b, _ := r.MarshalBinary()
	return b
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKAT checks testdata/kat_senderkey.json by regeneration from the seed
// and by decrypting the stored messages from the stored distribution.
func TestKAT(t *testing.T) {
	if *update {
		f := katFile{
			Description: "hush/v1 group sender keys: distribution, signed XChaCha20-Poly1305 group messages, sender and receiver state encodings; chain ID, chain key, signing key and nonces come from the seed",
			Generator:   "go test ./crypto/senderkey -run TestKAT -update",
		}
		for _, c := range katCases {
			t.Run(c.name, func(t *testing.T) {
				f.Vectors = append(f.Vectors, generate(t, c.name, c.seed, c.epoch, c.pts, c.order))
			})
		}
		kattest.Write(t, katPath, f)
	}
	var f katFile
	kattest.Read(t, katPath, &f)
	if len(f.Vectors) != len(katCases) {
		t.Fatalf("%d vectors, want %d", len(f.Vectors), len(katCases))
	}
	for i, v := range f.Vectors {
		c := katCases[i]
		t.Run(v.Name+"/open", func(t *testing.T) {
			if got := openVector(t, &v); !bytes.Equal(got, unhex(t, v.ReceiverState)) {
				t.Fatal("receiver state differs")
			}
			// The stored sender state continues the stored chain.
			var sk SenderKey
			if err := sk.UnmarshalBinary(unhex(t, v.SenderKeyState)); err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(sk.signing.Seed()) != v.SigningSeed || int(sk.Iteration()) != len(v.Messages) {
				t.Fatal("sender key state differs")
			}
		})
		t.Run(v.Name+"/regenerate", func(t *testing.T) {
			got := generate(t, c.name, c.seed, c.epoch, c.pts, c.order)
			if !reflect.DeepEqual(got, v) {
				t.Fatalf("regenerated vector differs:\n got %+v\nwant %+v", got, v)
			}
		})
	}
}
