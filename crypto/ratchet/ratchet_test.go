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
