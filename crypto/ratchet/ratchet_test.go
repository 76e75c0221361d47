package ratchet

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/x25519"
)

var t0 = time.Unix(1_700_000_000, 0)

const day = 24 * time.Hour

func newPair(t testing.TB) (alice, bob *Session) {
	t.Helper()
	return newPairAD(t, []byte("hush test AD: alice device cert | bob device cert"))
}

func newPairAD(t testing.TB, ad []byte) (alice, bob *Session) {
	t.Helper()
	sk := make([]byte, 32)
	rand.Read(sk)
	spk := x25519.GenerateKey()
	alice, err := NewInitiator(sk, spk.PublicKey(), ad)
	if err != nil {
		t.Fatal(err)
	}
	bob, err = NewResponder(sk, spk, ad)
	if err != nil {
		t.Fatal(err)
	}
	return alice, bob
}

func enc(t testing.TB, s *Session, pt string) []byte {
	t.Helper()
	m, err := s.Encrypt([]byte(pt))
	if err != nil {
		t.Fatalf("Encrypt(%q): %v", pt, err)
	}
	return m
}

func dec(t testing.TB, s *Session, m []byte, want string) {
	t.Helper()
	decAt(t, s, m, want, t0)
}

func decAt(t testing.TB, s *Session, m []byte, want string, now time.Time) {
	t.Helper()
	pt, err := s.DecryptAt(m, now)
	if err != nil {
		t.Fatalf("Decrypt(%q): %v", want, err)
	}
	if string(pt) != want {
		t.Fatalf("Decrypt = %q, want %q", pt, want)
	}
}

func state(t testing.TB, s *Session) []byte {
	t.Helper()
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reject asserts that m is rejected with target (nil: any error) and that
// the session is unchanged byte for byte.
func reject(t testing.TB, s *Session, m []byte, target error, now time.Time) {
	t.Helper()
	before := state(t, s)
	pt, err := s.DecryptAt(m, now)
	if err == nil {
		t.Fatalf("message accepted (plaintext %q)", pt)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
	if !bytes.Equal(before, state(t, s)) {
		t.Fatalf("session changed by rejected message (%v)", err)
	}
}

func TestConversation(t *testing.T) {
	alice, bob := newPair(t)
	if bob.CanSend() {
		t.Fatal("responder can send before receiving")
	}
	if _, err := bob.Encrypt([]byte("x")); !errors.Is(err, ErrNoSendingChain) {
		t.Fatalf("responder Encrypt before receiving: %v", err)
	}
	keys := map[string]bool{}
	for round := range 6 {
		from, to := alice, bob
		if round%2 == 1 {
			from, to = bob, alice
		}
		k := string(from.RatchetPublicKey())
		if keys[k] {
			t.Fatalf("round %d: ratchet key reused", round)
		}
		keys[k] = true
		for i := range round + 1 {
			pt := fmt.Sprintf("round %d message %d", round, i)
			m := enc(t, from, pt)
			h, err := ParseHeader(m[:HeaderSize])
			if err != nil {
				t.Fatal(err)
			}
			if h.N != uint32(i) || string(h.RatchetKey[:]) != k {
				t.Fatalf("header %+v, want N=%d and the sender's ratchet key", h, i)
			}
			if len(m) != Overhead+len(pt) {
				t.Fatalf("message of %d bytes, want %d", len(m), Overhead+len(pt))
			}
			dec(t, to, m, pt)
		}
	}
	dec(t, bob, enc(t, alice, ""), "")
	if alice.StoredKeys() != 0 || bob.StoredKeys() != 0 {
		t.Fatal("in-order conversation stored skipped keys")
	}
}

// permutations returns every ordering of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func TestOutOfOrder(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "a0"), "a0")
	a1, a2 := enc(t, alice, "a1"), enc(t, alice, "a2")
	b1 := enc(t, bob, "b1")
	dec(t, alice, b1, "b1")
	a3 := enc(t, alice, "a3") // new chain, PN = 3
	a4 := enc(t, alice, "a4")
	msgs := [][]byte{a1, a2, a3, a4}
	names := []string{"a1", "a2", "a3", "a4"}
	for _, order := range permutations(len(msgs)) {
		b := bob.Clone()
		for _, i := range order {
			dec(t, b, msgs[i], names[i])
		}
		for _, i := range order {
			reject(t, b, msgs[i], ErrDuplicate, t0)
		}
		if b.StoredKeys() != 0 {
			t.Fatalf("order %v: %d keys left", order, b.StoredKeys())
		}
	}
	// Replies cross: Bob answers before seeing a3; Alice's reply to that
	// arrives before a3 and a4.
	b := bob.Clone()
	a := alice.Clone()
	dec(t, b, a1, "a1")
	b2 := enc(t, b, "b2")
	dec(t, a, b2, "b2")
	a5 := enc(t, a, "a5") // third Alice chain
	dec(t, b, a5, "a5")   // skips a2 (chain 1) and nothing in chain 2
	dec(t, b, a4, "a4")
	dec(t, b, a2, "a2")
	dec(t, b, a3, "a3")
}

func TestLostMessages(t *testing.T) {
	alice, bob := newPair(t)
	lost := 0
	for round := range 4 {
		from, to := alice, bob
		if round%2 == 1 {
			from, to = bob, alice
		}
		for i := range 10 {
			m := enc(t, from, fmt.Sprint(round, i))
			if i%3 == 1 {
				lost++
				continue
			}
			dec(t, to, m, fmt.Sprint(round, i))
		}
	}
	if got := alice.StoredKeys() + bob.StoredKeys(); got != lost {
		t.Fatalf("%d stored keys, want one per lost message (%d)", got, lost)
	}
	// The last message of a chain lost: the next chain's PN makes the
	// receiver store its key.
	m := enc(t, alice, "lost")
	dec(t, alice, enc(t, bob, "reply"), "reply")
	dec(t, bob, enc(t, alice, "after"), "after")
	dec(t, bob, m, "lost")
}

func TestAttackReplayRejected(t *testing.T) {
	alice, bob := newPair(t)
	first := enc(t, alice, "first")
	dec(t, bob, first, "first")
	reject(t, bob, first, ErrDuplicate, t0)

	m1, m2 := enc(t, alice, "m1"), enc(t, alice, "m2")
	dec(t, bob, m2, "m2") // stores m1's key
	reject(t, bob, m2, ErrDuplicate, t0)
	dec(t, bob, m1, "m1")
	reject(t, bob, m1, ErrDuplicate, t0) // skipped key deleted after use

	// After a DH round trip the old chain's messages are still duplicates.
	dec(t, alice, enc(t, bob, "b"), "b")
	m3 := enc(t, alice, "m3")
	dec(t, bob, m3, "m3")
	for _, m := range [][]byte{first, m1, m2, m3} {
		reject(t, bob, m, ErrDuplicate, t0)
	}
	dec(t, bob, enc(t, alice, "next"), "next")
}

func TestAttackTamperEveryByte(t *testing.T) {
	alice, bob := newPair(t)
	ad := bytes.Clone(bob.ad)
	dec(t, bob, enc(t, alice, "hello"), "hello")
	cases := []struct {
		name string
		make func() []byte
	}{
		{"same chain", func() []byte { return enc(t, alice, "steady chain message") }},
		{"DH step", func() []byte {
			dec(t, alice, enc(t, bob, "reply"), "reply")
			return enc(t, alice, "new chain message")
		}},
	}
	for _, tc := range cases {
		m := tc.make()
		for i := range m {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				bad := bytes.Clone(m)
				bad[i] ^= x
				reject(t, bob, bad, nil, t0)
			}
		}
		// Associated data: the same session state with any AD byte changed.
		for i := range ad {
			other := bob.Clone()
			other.ad[i] ^= 0x01
			reject(t, other, m, ErrDecrypt, t0)
		}
		other := bob.Clone()
		other.ad = append(other.ad, 0)
		reject(t, other, m, ErrDecrypt, t0)
		// Trailing garbage.
		reject(t, bob, append(bytes.Clone(m), 0), nil, t0)
		dec(t, bob, m, map[string]string{"same chain": "steady chain message", "DH step": "new chain message"}[tc.name])
	}
}

// withHeader returns m with its header fields replaced.
func withHeader(m []byte, pn, n uint32) []byte {
	m = bytes.Clone(m)
	binary.BigEndian.PutUint32(m[34:], pn)
	binary.BigEndian.PutUint32(m[38:], n)
	return m
}

func TestAttackSkipLimit(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "a0"), "a0") // Bob: nr = 1
	steady := enc(t, alice, "a1")

	check := func(name string, m []byte, target error) {
		t.Helper()
		d := bob.derivations
		start := time.Now()
		reject(t, bob, m, target, t0)
		if bob.derivations != d {
			t.Errorf("%s: %d keys derived before rejection", name, bob.derivations-d)
		}
		if el := time.Since(start); el > 50*time.Millisecond {
			t.Errorf("%s: rejection took %v", name, el)
		}
	}
	check("N = Nr + MAX_SKIP + 1", withHeader(steady, 0, 1+MaxSkip+1), ErrTooManySkipped)
	check("N = 2^32-2", withHeader(steady, 0, 1<<32-2), ErrTooManySkipped)
	check("N = 2^32-1", withHeader(steady, 0, 1<<32-1), ErrMalformed)

	// Exactly MAX_SKIP skipped keys is allowed.
	var last []byte
	for i := range MaxSkip {
		last = enc(t, alice, fmt.Sprint(i))
	}
	b := bob.Clone()
	d := b.derivations
	dec(t, b, last, fmt.Sprint(MaxSkip-1)) // N = 2001, Nr = 1: skips 2000
	if b.derivations-d != MaxSkip+1 || b.StoredKeys() != MaxSkip {
		t.Fatalf("derived %d keys, stored %d", b.derivations-d, b.StoredKeys())
	}
	over := enc(t, alice, "over") // N = 2002: skips 2001
	check("skip 2001 in chain", over, ErrTooManySkipped)

	// New chain: PN below what was received, PN beyond MAX_SKIP, N beyond.
	dec(t, bob, steady, "a1") // Bob: nr = 2
	dec(t, alice, enc(t, bob, "b"), "b")
	next := enc(t, alice, "new chain") // PN = 2003, N = 0
	check("PN < Nr", withHeader(next, 1, 0), ErrMalformed)
	check("PN = Nr + MAX_SKIP + 1", withHeader(next, 2+MaxSkip+1, 0), ErrTooManySkipped)
	check("PN = 2^32-1", withHeader(next, 1<<32-1, 0), ErrTooManySkipped)
	check("new chain N = MAX_SKIP + 1", withHeader(next, 2, MaxSkip+1), ErrTooManySkipped)
	check("real PN skips 2001", next, ErrTooManySkipped)
}

func TestAttackChainFlooding(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "start"), "start")
	// A malicious peer: every chain skips 450 keys, then a reply gives
	// it a new chain.
	const skip = 450
	var withheld [][]byte
	for round := range 9 {
		dec(t, alice, enc(t, bob, "reply"), "reply")
		var m []byte
		for i := range skip + 1 {
			m = enc(t, alice, fmt.Sprint(round, i))
			if i == 0 {
				withheld = append(withheld, m)
			}
		}
		dec(t, bob, m, fmt.Sprint(round, skip))
		if bob.StoredKeys() > MaxStoredKeys || len(bob.old) > MaxOldChains {
			t.Fatalf("round %d: %d stored keys, %d old chains", round, bob.StoredKeys(), len(bob.old))
		}
	}
	if bob.StoredKeys() != MaxStoredKeys {
		t.Fatalf("%d stored keys, want the cap %d", bob.StoredKeys(), MaxStoredKeys)
	}
	// The newest withheld messages still decrypt; the oldest were evicted.
	dec(t, bob, withheld[8], "8 0")
	dec(t, bob, withheld[7], "7 0")
	reject(t, bob, withheld[0], nil, t0)
	reject(t, bob, withheld[4], ErrDuplicate, t0) // chain remembered, key evicted

	// An outsider sending a fresh ratchet key in every message gets
	// nothing stored.
	m := enc(t, alice, "x")
	for range 20 {
		k := x25519.GenerateKey()
		bad := bytes.Clone(m)
		copy(bad[2:34], k.PublicKey().Bytes())
		reject(t, bob, withHeader(bad, bob.nr, MaxSkip), ErrDecrypt, t0)
	}
}

func TestForwardSecrecy(t *testing.T) {
	alice, bob := newPair(t)
	var sent [][]byte
	for i := range 3 {
		m := enc(t, alice, fmt.Sprint("a", i))
		dec(t, bob, m, fmt.Sprint("a", i))
		sent = append(sent, m)
	}
	b1 := enc(t, bob, "b1")
	dec(t, alice, b1, "b1")
	a3 := enc(t, alice, "a3")
	dec(t, bob, a3, "a3")
	sent = append(sent, a3)

	captured, err := Unmarshal(state(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sent {
		if _, err := captured.DecryptAt(m, t0); err == nil {
			t.Fatal("captured responder state decrypted an earlier message")
		}
	}
	capturedAlice := alice.Clone()
	if _, err := capturedAlice.DecryptAt(b1, t0); err == nil {
		t.Fatal("captured initiator state decrypted an earlier message")
	}
	// A skipped key is the exception until it expires.
	lost := enc(t, alice, "lost")
	dec(t, bob, enc(t, alice, "after"), "after")
	captured = bob.Clone()
	reject(t, captured, lost, ErrExpired, t0.Add(SkippedKeyLifetime))
}

func TestPostCompromiseRecovery(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "a0"), "a0")
	eve := bob.Clone() // full compromise of Bob at time t

	m := enc(t, alice, "a1")
	dec(t, eve, m, "a1") // same chain: readable
	dec(t, bob, m, "a1")
	// Bob's reply still uses the ratchet key Eve holds, so Alice's next
	// chain is readable too.
	dec(t, alice, enc(t, bob, "b1"), "b1")
	a2 := enc(t, alice, "a2")
	dec(t, eve, a2, "a2")
	dec(t, bob, a2, "a2")
	// Bob's next reply carries a fresh key: the round trip is complete.
	dec(t, alice, enc(t, bob, "b2"), "b2")
	for i := range 3 {
		m := enc(t, alice, fmt.Sprint("a", 3+i))
		reject(t, eve, m, ErrDecrypt, t0)
		dec(t, bob, m, fmt.Sprint("a", 3+i))
	}
}

func TestAttackTruncatedFrames(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "a0"), "a0")
	for _, m := range [][]byte{enc(t, alice, "same chain"), func() []byte {
		dec(t, alice, enc(t, bob, "b"), "b")
		return enc(t, alice, "new chain")
	}()} {
		for n := range len(m) {
			reject(t, bob, m[:n], nil, t0)
		}
		if _, err := bob.DecryptAt(m, t0); err != nil {
			t.Fatal(err)
		}
	}
	reject(t, bob, make([]byte, MaxMessageSize+1), ErrMalformed, t0)
}

func TestAttackSpliceSessions(t *testing.T) {
	alice1, bob1 := newPair(t)
	alice2, bob2 := newPair(t)
	dec(t, bob1, enc(t, alice1, "x"), "x")
	dec(t, bob2, enc(t, alice2, "y"), "y")
	m1, m2 := enc(t, alice1, "one"), enc(t, alice2, "two")
	reject(t, bob1, m2, nil, t0)
	// Header of one session, body of the other.
	spliced := append(bytes.Clone(m1[:HeaderSize]), m2[HeaderSize:]...)
	reject(t, bob1, spliced, ErrDecrypt, t0)
	// Headers swapped between two messages of one session.
	m3 := enc(t, alice1, "three")
	swapped := append(bytes.Clone(m3[:HeaderSize]), m1[HeaderSize:]...)
	reject(t, bob1, swapped, ErrDecrypt, t0)
	dec(t, bob1, m1, "one")
	dec(t, bob1, m3, "three")
	dec(t, bob2, m2, "two")
}

func TestSkippedKeyExpiry(t *testing.T) {
	alice, bob := newPair(t)
	m0, m1, m2, m3 := enc(t, alice, "m0"), enc(t, alice, "m1"), enc(t, alice, "m2"), enc(t, alice, "m3")
	dec(t, bob, m3, "m3") // stores keys for m0, m1, m2 at t0
	decAt(t, bob, m0, "m0", t0.Add(SkippedKeyLifetime-time.Second))
	reject(t, bob, m1, ErrExpired, t0.Add(SkippedKeyLifetime))
	if n := bob.Expire(t0.Add(SkippedKeyLifetime - time.Second)); n != 0 {
		t.Fatalf("Expire dropped %d live keys", n)
	}
	if n := bob.Expire(t0.Add(SkippedKeyLifetime)); n != 2 {
		t.Fatalf("Expire dropped %d keys, want 2", n)
	}
	reject(t, bob, m1, ErrDuplicate, t0.Add(SkippedKeyLifetime))
	reject(t, bob, m2, ErrDuplicate, t0.Add(SkippedKeyLifetime))

	// A successful decrypt also purges expired keys.
	l1, l2 := enc(t, alice, "l1"), enc(t, alice, "l2")
	_ = l1
	decAt(t, bob, l2, "l2", t0)
	if bob.StoredKeys() != 1 {
		t.Fatalf("%d keys stored, want 1", bob.StoredKeys())
	}
	decAt(t, bob, enc(t, alice, "l3"), "l3", t0.Add(31*day))
	if bob.StoredKeys() != 0 {
		t.Fatal("expired key kept after a successful decrypt")
	}
}

func TestCounterOverflow(t *testing.T) {
	alice, bob := newPair(t)
	alice.ns = reservedCounter - 1
	m, err := alice.Encrypt([]byte("last"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(m[:HeaderSize])
	if err != nil || h.N != reservedCounter-1 {
		t.Fatalf("last header %+v, %v", h, err)
	}
	before := state(t, alice)
	if _, err := alice.Encrypt([]byte("one too many")); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("Encrypt at 2^32-1: %v", err)
	}
	if !bytes.Equal(before, state(t, alice)) || alice.CanSend() {
		t.Fatal("exhausted Encrypt changed the session or CanSend is true")
	}
	// The receiver never accepts the reserved counter, and bounds the
	// skip to it.
	reject(t, bob, m, ErrTooManySkipped, t0)
	reject(t, bob, withHeader(m, 0, reservedCounter), ErrMalformed, t0)
}

func TestMarshalRoundTrip(t *testing.T) {
	alice, bob := newPair(t)
	var withheld [][]byte
	var names []string
	for round := range 8 {
		from, to := alice, bob
		if round%2 == 1 {
			from, to = bob, alice
		}
		for i := range 4 {
			name := fmt.Sprint(round, i)
			m := enc(t, from, name)
			if i == 1 || i == 2 {
				withheld, names = append(withheld, m), append(names, name)
				continue
			}
			dec(t, to, m, name)
		}
	}
	if len(bob.old) == 0 || bob.StoredKeys() == 0 {
		t.Fatal("test needs old chains and skipped keys")
	}
	for _, s := range []*Session{alice, bob} {
		b := state(t, s)
		r, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(state(t, r), b) {
			t.Fatal("Unmarshal then MarshalBinary differs")
		}
		if !bytes.Equal(state(t, s.Clone()), b) {
			t.Fatal("Clone differs")
		}
	}
	ra, _ := Unmarshal(state(t, alice))
	rb, _ := Unmarshal(state(t, bob))
	c := rb.Clone()
	for i, m := range withheld {
		to := rb
		if names[i][0]%2 == 1 { // odd rounds were Bob's
			to = ra
		}
		dec(t, to, m, names[i])
	}
	if rb.StoredKeys() != 0 || ra.StoredKeys() != 0 {
		t.Fatal("keys left after delivering every withheld message")
	}
	if c.StoredKeys() == 0 {
		t.Fatal("Clone shares skipped keys with the original")
	}
	dec(t, rb, enc(t, ra, "after restore"), "after restore")
	dec(t, ra, enc(t, rb, "reply"), "reply")
}

func TestUnmarshalRejects(t *testing.T) {
	alice, bob := newPair(t)
	m0, m1 := enc(t, alice, "0"), enc(t, alice, "1")
	_ = m0
	dec(t, bob, m1, "1")
	good := state(t, bob)
	if _, err := Unmarshal(good); err != nil {
		t.Fatal(err)
	}
	skipped := len(good) - 2 - 2 - 44 // offset of the one skipped key's n
	mutate := func(off int, v byte) []byte { b := bytes.Clone(good); b[off] = v; return b }
	cases := map[string][]byte{
		"empty":             nil,
		"trailing byte":     append(bytes.Clone(good), 0),
		"state version":     mutate(0, 2),
		"protocol version":  mutate(1, 2),
		"suite":             mutate(2, 2),
		"unknown flag":      mutate(3, good[3]|0x80),
		"ckr flag cleared":  mutate(3, good[3]&^flagCKr),
		"dhr flag cleared":  mutate(3, good[3]&^flagDHr),
		"skipped n too big": mutate(skipped, 0xff),
		"too many chains":   append(bytes.Clone(good[:len(good)-2]), 0, MaxOldChains+1),
	}
	for n := range len(good) {
		cases[fmt.Sprint("prefix ", n)] = good[:n]
	}
	for name, b := range cases {
		if _, err := Unmarshal(b); !errors.Is(err, ErrInvalidState) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A key count over the cap is rejected before allocating.
	over := binary.BigEndian.AppendUint16(bytes.Clone(good[:len(good)-2-2-44]), MaxStoredKeys+1)
	if _, err := Unmarshal(over); !errors.Is(err, ErrInvalidState) {
		t.Errorf("key count over cap: %v", err)
	}
}

func TestNewSessionRejects(t *testing.T) {
	spk := x25519.GenerateKey()
	sk := make([]byte, 32)
	if _, err := NewInitiator(sk[:31], spk.PublicKey(), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("short sk: %v", err)
	}
	if _, err := NewResponder(append(sk, 0), spk, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("long sk: %v", err)
	}
	if _, err := NewInitiator(sk, spk.PublicKey(), make([]byte, MaxAD+1)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("long AD: %v", err)
	}
	if _, err := NewInitiator(sk, nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil key: %v", err)
	}
	if _, err := NewResponder(sk, nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("nil key: %v", err)
	}
	alice, err := NewInitiator(sk, spk.PublicKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Encrypt(make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrPlaintextTooLarge) {
		t.Errorf("large plaintext: %v", err)
	}
	if _, err := alice.Encrypt(make([]byte, MaxPlaintext)); err != nil {
		t.Errorf("MaxPlaintext: %v", err)
	}
}

func TestParseHeader(t *testing.T) {
	h := Header{PN: 7, N: 9}
	rand.Read(h.RatchetKey[:])
	b, _ := h.MarshalBinary()
	if len(b) != HeaderSize {
		t.Fatalf("header of %d bytes", len(b))
	}
	got, err := ParseHeader(b)
	if err != nil || got != h {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	bad := map[string][]byte{
		"version":  append([]byte{2}, b[1:]...),
		"suite":    append([]byte{1, 2}, b[2:]...),
		"short":    b[:HeaderSize-1],
		"trailing": append(bytes.Clone(b), 0),
		"counter":  binary.BigEndian.AppendUint32(bytes.Clone(b[:38]), reservedCounter),
	}
	for name, in := range bad {
		if _, err := ParseHeader(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkEncryptDecrypt256(b *testing.B) {
	alice, bob := newPair(b)
	pt := make([]byte, 256)
	b.SetBytes(256)
	b.ReportAllocs()
	for b.Loop() {
		m, err := alice.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.DecryptAt(m, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDHStep(b *testing.B) {
	alice, bob := newPair(b)
	pt := make([]byte, 256)
	from, to := alice, bob
	b.ReportAllocs()
	for b.Loop() {
		m, err := from.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.DecryptAt(m, t0); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
}

// BenchmarkRejectTampered is the cost of a forged message in a steady
// chain (no DH step).
func BenchmarkRejectTampered(b *testing.B) {
	alice, bob := newPair(b)
	dec(b, bob, enc(b, alice, "first"), "first")
	m, _ := alice.Encrypt(make([]byte, 256))
	m[len(m)-1] ^= 1
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bob.DecryptAt(m, t0); err == nil {
			b.Fatal("accepted")
		}
	}
}
