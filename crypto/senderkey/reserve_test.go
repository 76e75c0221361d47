package senderkey

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func iterationOf(msg []byte) uint32 { return binary.BigEndian.Uint32(msg[HeaderSize-4 : HeaderSize]) }

func stored(t *testing.T, sk *SenderKey) []byte {
	t.Helper()
	b, err := sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load(t *testing.T, b []byte) *SenderKey {
	t.Helper()
	var sk SenderKey
	if err := sk.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	return &sk
}

// A chain stored after Reserve and loaded after a "crash" that lost the
// later states signs from the mark: no iteration it may have used comes
// again, and a member reads the new message and the late ones. Without
// the reservation the same crash reuses an iteration, which the member
// refuses as a duplicate.
func TestReserveCrashNeverReusesAnIteration(t *testing.T) {
	ms := newGroup(t, 2, 1)
	alice, bob := ms[0], ms[1]
	mustDecrypt(t, bob.recv, encrypt(t, alice.sk, "hello"), "hello", alice.device)

	noReserve := stored(t, alice.sk)
	r := alice.sk.Reserve()
	st := stored(t, alice.sk)
	alice.sk.Confirm(r)
	var sent [][]byte
	used := map[uint32]bool{}
	for i := range 5 {
		if !alice.sk.Reserved() {
			t.Fatalf("message %d not covered", i)
		}
		m := encrypt(t, alice.sk, "before the crash")
		used[iterationOf(m)] = true
		sent = append(sent, m)
	}
	for _, m := range sent[:3] {
		mustDecrypt(t, bob.recv, m, "before the crash", alice.device)
	}
	after := encrypt(t, load(t, st), "after the crash")
	if it := iterationOf(after); used[it] || it != 1+ReserveAhead {
		t.Fatalf("after the crash iteration %d, want %d", it, 1+ReserveAhead)
	}
	mustDecrypt(t, bob.recv, after, "after the crash", alice.device)
	mustDecrypt(t, bob.recv, sent[4], "before the crash", alice.device)

	reused := encrypt(t, load(t, noReserve), "no reservation")
	if !used[iterationOf(reused)] {
		t.Fatal("the control did not reuse an iteration")
	}
	if _, _, err := bob.recv.Decrypt(reused); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("reused iteration: %v, want ErrDuplicate", err)
	}
}

// The stored form of a reserved chain is the state of a chain that sent
// up to the mark; Reserved holds from Confirm to the mark; ReserveLow
// asks again at half; a reservation of an older chain (a rotation loads
// a new one into the same value) confirms nothing.
func TestReserveSenderKeyLifecycle(t *testing.T) {
	ms := newGroup(t, 2, 1)
	alice := ms[0]
	ahead := load(t, stored(t, alice.sk))
	if alice.sk.Reserved() || !alice.sk.ReserveLow() {
		t.Fatal("a fresh chain is reserved")
	}
	r := alice.sk.Reserve()
	advance(ahead, ReserveAhead)
	if !bytes.Equal(stored(t, alice.sk), stored(t, ahead)) {
		t.Fatal("the reserved state differs from the chain advanced to the mark")
	}
	if alice.sk.Reserved() {
		t.Fatal("Reserved before Confirm")
	}
	alice.sk.Confirm(r)
	for i := range ReserveAhead {
		if !alice.sk.Reserved() {
			t.Fatalf("message %d not reserved", i)
		}
		if low := alice.sk.ReserveLow(); low != (i > ReserveAhead/2) {
			t.Fatalf("message %d: ReserveLow %v", i, low)
		}
		encrypt(t, alice.sk, "m")
	}
	if alice.sk.Reserved() {
		t.Fatal("Reserved past the mark")
	}
	old := alice.sk.Reserve()
	if err := alice.sk.UnmarshalBinary(stored(t, ms[1].sk)); err != nil { // another chain
		t.Fatal(err)
	}
	alice.sk.Confirm(old)
	if alice.sk.Reserved() {
		t.Fatal("another chain's reservation confirmed")
	}
}
