package ratchet

import (
	"bytes"
	"errors"
	"testing"
)

// header returns a message's (ratchet key, N).
func header(t *testing.T, m []byte) Header {
	t.Helper()
	h, err := ParseHeader(m[:HeaderSize])
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A session stored after Reserve and loaded after a "crash" that lost
// every later state sends from the mark: no index it may have used
// before comes again, and the peer reads the new messages and the late
// ones it skipped. Without the reservation the same crash reuses an
// index, and the peer refuses the second message under it.
func TestReserveCrashNeverReusesAnIndex(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "hello"), "hello")
	dec(t, alice, enc(t, bob, "hi"), "hi") // alice's second chain

	noReserve := state(t, alice) // what a store without reservations holds
	r := alice.Reserve()
	stored := state(t, alice)
	alice.Confirm(r)
	if !alice.Reserved() {
		t.Fatal("not Reserved after Confirm")
	}
	var sent [][]byte
	used := map[uint32]bool{}
	for i := range 5 {
		if !alice.Reserved() {
			t.Fatalf("message %d not covered", i)
		}
		m := enc(t, alice, "before the crash")
		used[header(t, m).N] = true
		sent = append(sent, m)
	}
	// The crash: the states after the five messages were never stored.
	// Three of the messages reached bob.
	for _, m := range sent[:3] {
		dec(t, bob, m, "before the crash")
	}
	again, err := Unmarshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	after := enc(t, again, "after the crash")
	if h := header(t, after); used[h.N] || h.N != ReserveAhead {
		t.Fatalf("after the crash N = %d, want %d (used: %v)", h.N, ReserveAhead, used)
	}
	dec(t, bob, after, "after the crash")
	dec(t, bob, sent[4], "before the crash") // late: its skipped key was kept
	dec(t, bob, sent[3], "before the crash")

	// The control: the store held the state from before the messages.
	old, err := Unmarshal(noReserve)
	if err != nil {
		t.Fatal(err)
	}
	reused := enc(t, old, "after the crash, no reservation")
	if !used[header(t, reused).N] {
		t.Fatal("the control did not reuse an index")
	}
	if _, err := bob.Decrypt(reused); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("reused index: %v, want ErrDuplicate", err)
	}
}

// The stored form of a reserved session is the state a session that sent
// up to the mark would store: the chain key advanced, nothing else.
func TestReserveStoredFormIsTheAdvancedChain(t *testing.T) {
	alice, _ := newPair(t)
	ahead := alice.Clone()
	enc(t, alice, "one")
	enc(t, ahead, "one")
	alice.Reserve()
	for range ReserveAhead {
		enc(t, ahead, "x")
	}
	if !bytes.Equal(state(t, alice), state(t, ahead)) {
		t.Fatal("the reserved state differs from the chain advanced to the mark")
	}
}

// Reserved holds from Confirm until the live chain reaches the mark;
// ReserveLow asks for a new reservation at half; a second Reserve moves
// the mark forward from the old one, never back.
func TestReserveLifecycle(t *testing.T) {
	alice, bob := newPair(t)
	if alice.Reserved() || !alice.ReserveLow() {
		t.Fatal("a fresh session is reserved")
	}
	r := alice.Reserve()
	if alice.Reserved() {
		t.Fatal("Reserved before Confirm")
	}
	alice.Confirm(r)
	for i := range ReserveAhead {
		if !alice.Reserved() {
			t.Fatalf("message %d: not reserved", i)
		}
		if low := alice.ReserveLow(); low != (i > ReserveAhead/2) {
			t.Fatalf("message %d: ReserveLow %v", i, low)
		}
		dec(t, bob, enc(t, alice, "m"), "m")
	}
	if alice.Reserved() {
		t.Fatal("Reserved past the mark")
	}

	// Renewal at half: the old mark's messages stay covered while the
	// new one is written.
	r = alice.Reserve()
	alice.Confirm(r)
	for range ReserveAhead/2 + 1 {
		dec(t, bob, enc(t, alice, "m"), "m")
	}
	r2 := alice.Reserve()
	if r2.mark != r.mark+ReserveAhead/2+1 || !alice.Reserved() {
		t.Fatalf("renewed mark %d (old %d), reserved %v", r2.mark, r.mark, alice.Reserved())
	}
	stored, _ := Unmarshal(state(t, alice))
	if h := header(t, enc(t, stored, "m")); h.N != r2.mark {
		t.Fatalf("stored state sends N = %d, want %d", h.N, r2.mark)
	}
}

// A reservation belongs to its sending chain: after a DH ratchet step
// the new chain is not reserved, and confirming the old one changes
// nothing.
func TestReserveEndsWithTheChain(t *testing.T) {
	alice, bob := newPair(t)
	dec(t, bob, enc(t, alice, "hello"), "hello")
	r := alice.Reserve()
	dec(t, alice, enc(t, bob, "hi"), "hi") // new sending chain
	alice.Confirm(r)
	if alice.Reserved() {
		t.Fatal("the old chain's reservation covers the new chain")
	}
	if h := header(t, sendFromStored(t, alice)); h.N != 0 {
		t.Fatalf("new chain starts at %d", h.N)
	}
	// Nothing to reserve on a responder that cannot send.
	_, fresh := newPair(t)
	if r := fresh.Reserve(); r.mark != 0 || fresh.Reserved() {
		t.Fatal("a session that cannot send reserved")
	}
}

func sendFromStored(t *testing.T, s *Session) []byte {
	t.Helper()
	st, err := Unmarshal(state(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return enc(t, st, "m")
}
