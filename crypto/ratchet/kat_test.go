package ratchet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/hushnet/hush/crypto/internal/kattest"
	"github.com/hushnet/hush/crypto/x25519"
)

var update = flag.Bool("update", false, "rewrite testdata")

const katPath = "testdata/kat_ratchet.json"

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

type katFile struct {
	Description string      `json:"description"`
	Generator   string      `json:"generator"`
	Vectors     []katVector `json:"vectors"`
}

type katVector struct {
	Name   string `json:"name"`
	Seed   uint64 `json:"seed"`
	Script string `json:"script"`
	// Time is the unix time passed to DecryptAt (skipped-key stamps).
	Time                    int64      `json:"time"`
	SK                      hexBytes   `json:"sk"`
	AD                      hexBytes   `json:"ad"`
	ResponderRatchetPrivate hexBytes   `json:"responder_ratchet_private"`
	ResponderRatchetPublic  hexBytes   `json:"responder_ratchet_public"`
	InitiatorState          hexBytes   `json:"initiator_state"`
	ResponderState          hexBytes   `json:"responder_state"`
	Deliveries              []katDeliv `json:"deliveries"`
	InitiatorFinalState     hexBytes   `json:"initiator_final_state"`
	ResponderFinalState     hexBytes   `json:"responder_final_state"`
}

// katDeliv is one message delivered: the receiver's serialised state just
// before, the message, the plaintext and the state just after.
type katDeliv struct {
	To            string   `json:"to"`
	Plaintext     hexBytes `json:"plaintext"`
	Message       hexBytes `json:"message"`
	StateBefore   hexBytes `json:"receiver_state_before"`
	StateAfter    hexBytes `json:"receiver_state_after"`
	SkippedStored int      `json:"skipped_keys_after"`
}

// Scripts: "A:text" is a send by the initiator (B: the responder), "b3" is
// delivery of message 3 (0-based, in send order) to the responder (a: to
// the initiator).
var katCases = []struct {
	name, script string
	seed         uint64
}{
	{"in order, alternating", "A:hello|b0|B:hi Alice|a1|A:|b2|A:second in chain|b3|B:ok|a4", 1},
	{"out of order across DH steps", "A:a0|A:a1|A:a2|b2|b0|B:b0|B:b1|a4|A:a3|b5|a3|b1|A:a4|b6", 2},
}

func generateVector(t *testing.T, name, script string, seed uint64) katVector {
	cryptotest.SetGlobalRandom(t, seed)
	v := katVector{Name: name, Seed: seed, Script: script, Time: 1_700_000_000}
	now := time.Unix(v.Time, 0)
	v.SK = make([]byte, 32)
	rand.Read(v.SK)
	v.AD = []byte("hush kat: initiator device cert hash | responder device cert hash")
	spk := x25519.GenerateKey()
	v.ResponderRatchetPrivate, v.ResponderRatchetPublic = spk.Bytes(), spk.PublicKey().Bytes()
	alice, err := NewInitiator(v.SK, spk.PublicKey(), v.AD)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewResponder(v.SK, spk, v.AD)
	if err != nil {
		t.Fatal(err)
	}
	v.InitiatorState, v.ResponderState = state(t, alice), state(t, bob)
	var sent, pts [][]byte
	for op := range strings.SplitSeq(script, "|") {
		switch op[0] {
		case 'A', 'B':
			s := alice
			if op[0] == 'B' {
				s = bob
			}
			pt := []byte(op[2:])
			sent, pts = append(sent, enc(t, s, string(pt))), append(pts, pt)
		case 'a', 'b':
			s, to := alice, "initiator"
			if op[0] == 'b' {
				s, to = bob, "responder"
			}
			i, err := strconv.Atoi(op[1:])
			if err != nil {
				t.Fatal(err)
			}
			d := katDeliv{To: to, Plaintext: pts[i], Message: sent[i], StateBefore: state(t, s)}
			decAt(t, s, sent[i], string(pts[i]), now)
			d.StateAfter, d.SkippedStored = state(t, s), s.StoredKeys()
			v.Deliveries = append(v.Deliveries, d)
		}
	}
	v.InitiatorFinalState, v.ResponderFinalState = state(t, alice), state(t, bob)
	return v
}

func TestKAT(t *testing.T) {
	f := katFile{
		Description: "hush Double Ratchet (crypto/ratchet): sessions from a fixed session key and responder ratchet key, every message and serialised state",
		Generator:   "go test ./crypto/ratchet -run TestKAT -update",
	}
	for _, c := range katCases {
		f.Vectors = append(f.Vectors, generateVector(t, c.name, c.script, c.seed))
	}
	got := kattest.Encode(t, f)
	if *update {
		kattest.Write(t, katPath, f)
	}
	want, err := os.ReadFile(katPath)
	if err != nil {
		t.Fatal(err)
	}
	var stored katFile
	kattest.Read(t, katPath, &stored)
	if len(stored.Vectors) != len(katCases) {
		t.Fatalf("%d stored vectors, want %d", len(stored.Vectors), len(katCases))
	}

	// Opening: independent of how the standard library draws randomness.
	for _, v := range stored.Vectors {
		now := time.Unix(v.Time, 0)
		for i, d := range v.Deliveries {
			s, err := Unmarshal(d.StateBefore)
			if err != nil {
				t.Fatalf("%s #%d: state: %v", v.Name, i, err)
			}
			pt, err := s.DecryptAt(d.Message, now)
			if err != nil || !bytes.Equal(pt, d.Plaintext) {
				t.Fatalf("%s #%d: opening: %q, %v", v.Name, i, pt, err)
			}
			if s.StoredKeys() != d.SkippedStored {
				t.Fatalf("%s #%d: %d skipped keys, want %d", v.Name, i, s.StoredKeys(), d.SkippedStored)
			}
		}
		// The initial states follow from the stored inputs alone, apart
		// from the initiator's fresh ratchet key.
		bob, err := Unmarshal(v.ResponderState)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bob.RatchetPublicKey(), v.ResponderRatchetPublic) || !bytes.Equal(bob.rk[:], v.SK) {
			t.Fatalf("%s: responder state does not hold the stored keys", v.Name)
		}
	}

	// Regeneration: byte for byte.
	if !bytes.Equal(got, want) {
		t.Fatalf("regenerated vectors differ from %s (run with -update if the format changed on purpose; see docs/protocol/kat.md)", katPath)
	}
}
