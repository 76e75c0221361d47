package senderkey

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

var testGroup = [GroupIDSize]byte{0x67, 0x72, 0x6f, 0x75, 0x70}

func dev(b byte) [DeviceIDSize]byte {
	var d [DeviceIDSize]byte
	for i := range d {
		d[i] = b
	}
	return d
}

type member struct {
	device [DeviceIDSize]byte
	sk     *SenderKey
	recv   *Receiver
}

// newGroup makes n members in epoch and distributes every chain to every
// other member through the wire encoding.
func newGroup(t testing.TB, n int, epoch uint64) []*member {
	t.Helper()
	ms := make([]*member, n)
	for i := range ms {
		d := dev(byte(i + 1))
		sk, err := NewSenderKey(testGroup, epoch, d)
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = &member{device: d, sk: sk, recv: NewReceiver(testGroup)}
	}
	for _, from := range ms {
		for _, to := range ms {
			if from != to {
				distribute(t, from.sk, to.recv)
			}
		}
	}
	return ms
}

func distribute(t testing.TB, sk *SenderKey, r *Receiver) {
	t.Helper()
	b, err := sk.Distribution().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDistribution(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(d); err != nil {
		t.Fatal(err)
	}
}

func encrypt(t testing.TB, sk *SenderKey, pt string) []byte {
	t.Helper()
	msg, err := sk.Encrypt([]byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func snapshot(t testing.TB, r *Receiver) []byte {
	t.Helper()
	b, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustFail asserts that Decrypt fails with want and leaves r unchanged.
func mustFail(t testing.TB, r *Receiver, msg []byte, want error) {
	t.Helper()
	before := snapshot(t, r)
	pt, _, err := r.Decrypt(msg)
	if !errors.Is(err, want) || pt != nil {
		t.Fatalf("Decrypt: %v (pt %q), want %v", err, pt, want)
	}
	if !bytes.Equal(before, snapshot(t, r)) {
		t.Fatal("a rejected message changed receiver state")
	}
}

func mustDecrypt(t testing.TB, r *Receiver, msg []byte, want string, from [DeviceIDSize]byte) {
	t.Helper()
	pt, s, err := r.Decrypt(msg)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if string(pt) != want || s.Device != from {
		t.Fatalf("Decrypt = %q from %x, want %q from %x", pt, s.Device, want, from)
	}
}

func TestRoundTripSeveralSenders(t *testing.T) {
	ms := newGroup(t, 4, 7)
	for round := range 3 {
		for _, from := range ms {
			pt := fmt.Sprintf("round %d from %x", round, from.device[0])
			msg := encrypt(t, from.sk, pt)
			if len(msg) != len(pt)+MessageOverhead {
				t.Fatalf("message of %d bytes for %d-byte plaintext", len(msg), len(pt))
			}
			for _, to := range ms {
				if to == from {
					continue
				}
				pt2, s, err := to.recv.Decrypt(msg)
				if err != nil || string(pt2) != pt || s != (Sender{Device: from.device, Epoch: 7}) {
					t.Fatalf("decrypt: %q %+v %v", pt2, s, err)
				}
			}
			// A sender cannot read its own message (it has no receiving
			// chain for itself): explicit, not silently accepted.
			mustFail(t, from.recv, msg, ErrUnknownChain)
		}
	}
}

func TestOutOfOrderAndLoss(t *testing.T) {
	ms := newGroup(t, 2, 1)
	alice, bob := ms[0], ms[1]
	var msgs [][]byte
	for i := range 12 {
		msgs = append(msgs, encrypt(t, alice.sk, fmt.Sprint("m", i)))
	}
	order := []int{5, 2, 9, 0, 1, 11, 6} // 3, 4, 7, 8, 10 lost
	for _, i := range order {
		mustDecrypt(t, bob.recv, msgs[i], fmt.Sprint("m", i), alice.device)
	}
	for _, i := range order {
		mustFail(t, bob.recv, msgs[i], ErrDuplicate)
	}
	s := bob.recv.senders[alice.device][0]
	if s.next != 12 || len(s.skipped) != 5 {
		t.Fatalf("chain at %d with %d skipped keys, want 12 and 5", s.next, len(s.skipped))
	}
	// The lost ones still decrypt late.
	for _, i := range []int{10, 3, 8, 4, 7} {
		mustDecrypt(t, bob.recv, msgs[i], fmt.Sprint("m", i), alice.device)
	}
	if len(s.skipped) != 0 {
		t.Fatalf("%d skipped keys left after all delivered", len(s.skipped))
	}
}

// advance moves a SenderKey n iterations without sending, as if n messages
// were sent and lost.
func advance(sk *SenderKey, n int) {
	for range n {
		next, _ := suite.ChainStep(sk.chainKey[:])
		copy(sk.chainKey[:], next)
		sk.iteration++
	}
}

func TestSkipLimit(t *testing.T) {
	ms := newGroup(t, 2, 1)
	alice, bob := ms[0], ms[1]
	advance(alice.sk, MaxForwardJump+1)
	tooFar := encrypt(t, alice.sk, "too far") // iteration 2001, chain at 0
	mustFail(t, bob.recv, tooFar, ErrTooFarAhead)

	bob2 := NewReceiver(testGroup)
	alice2, _ := NewSenderKey(testGroup, 1, alice.device)
	distribute(t, alice2, bob2)
	advance(alice2, MaxForwardJump)
	mustDecrypt(t, bob2, encrypt(t, alice2, "edge"), "edge", alice.device) // iteration 2000
	s := bob2.senders[alice.device][0]
	if len(s.skipped) != MaxSkippedKeys || s.skipped[0].iter != 0 {
		t.Fatalf("%d skipped keys, first %d", len(s.skipped), s.skipped[0].iter)
	}
	// Another full jump evicts the oldest keys: the store stays at the cap.
	advance(alice2, MaxForwardJump)
	mustDecrypt(t, bob2, encrypt(t, alice2, "edge2"), "edge2", alice.device) // iteration 4001
	if len(s.skipped) != MaxSkippedKeys || s.skipped[0].iter != 2001 || s.skipped[MaxSkippedKeys-1].iter != 4000 {
		t.Fatalf("after eviction: %d keys from %d to %d", len(s.skipped), s.skipped[0].iter, s.skipped[len(s.skipped)-1].iter)
	}
}

// forgeWithChainKey builds a message for Alice's chain at iteration iter,
// correctly encrypted with the message key derived from Alice's chain key
// (which every member holds) and signed with a key that is not Alice's.
func forgeWithChainKey(t testing.TB, d *Distribution, iter uint32, pt string, signer ed25519.PrivateKey) []byte {
	t.Helper()
	ck := d.ChainKey[:]
	var mk []byte
	for i := d.Iteration; ; i++ {
		var next []byte
		next, mk = suite.ChainStep(ck)
		if i == iter {
			break
		}
		ck = next
	}
	h := header{d.GroupID, d.Epoch, d.Device, d.ChainID, iter}
	w := codec.NewWriter(0)
	h.append(w)
	sealed := suite.Seal(messageKey(mk), []byte(pt), w.Bytes()[:HeaderSize:HeaderSize])
	w.Fixed(sealed[:suite.NonceSizeX])
	w.Bytes32(sealed[suite.NonceSizeX:])
	msg := w.Bytes()
	return append(msg, ed25519.Sign(signer, msg)...)
}

// Row 8a: M holds Alice's chain key but not her signing key.
func TestAttackForgedSenderChainKey(t *testing.T) {
	ms := newGroup(t, 3, 1)
	alice, bob := ms[0], ms[1]
	// Mallory (ms[2]) holds Alice's chain key but signs with her own key.
	_, mKey, _ := ed25519.GenerateKey(nil)
	// What Mallory received from Alice is exactly what Bob received.
	d := alice.sk.Distribution()
	for _, iter := range []uint32{0, 1500} {
		forged := forgeWithChainKey(t, d, iter, "pay mallory", mKey)
		// Sanity: without the signature check this would decrypt.
		m, err := parseMessage(forged)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := suite.Open(messageKey(chainMK(d, iter)), m.sealed, m.hdr); err != nil {
			t.Fatal("forgery is not AEAD-valid; the test proves nothing")
		}
		mustFail(t, bob.recv, forged, ErrDecrypt)
	}
	if s := bob.recv.senders[alice.device][0]; s.next != 0 || len(s.skipped) != 0 {
		t.Fatal("forgery advanced Alice's chain")
	}
	mustDecrypt(t, bob.recv, encrypt(t, alice.sk, "real"), "real", alice.device)
}

func chainMK(d *Distribution, iter uint32) []byte {
	ck := d.ChainKey[:]
	for i := d.Iteration; ; i++ {
		next, mk := suite.ChainStep(ck)
		if i == iter {
			return mk
		}
		ck = next
	}
}

// Row 8b: M signs with its own chain's key but claims Alice's device and
// chain.
func TestAttackForgedSenderOwnKey(t *testing.T) {
	ms := newGroup(t, 3, 1)
	alice, bob, mallory := ms[0], ms[1], ms[2]
	mallory.sk.mu.Lock()
	mSigning := mallory.sk.signing
	mallory.sk.mu.Unlock()

	// Alice's device and chain ID, Mallory's chain key and signing key.
	dm := mallory.sk.Distribution()
	dm.Device = alice.device
	dm.ChainID = alice.sk.ChainID()
	mustFail(t, bob.recv, forgeWithChainKey(t, dm, 0, "hi from alice", mSigning), ErrDecrypt)

	// Alice's device with Mallory's own chain ID: no such chain for Alice.
	dm2 := mallory.sk.Distribution()
	dm2.Device = alice.device
	mustFail(t, bob.recv, forgeWithChainKey(t, dm2, 0, "hi", mSigning), ErrUnknownChain)

	// Rewriting the device field of a genuine Mallory message breaks the
	// signature under whichever key is looked up.
	msg := encrypt(t, mallory.sk, "hello")
	c := bytes.Clone(msg)
	copy(c[2+GroupIDSize+8:], alice.device[:])
	binary.BigEndian.PutUint32(c[2+GroupIDSize+8+DeviceIDSize:], alice.sk.ChainID())
	mustFail(t, bob.recv, c, ErrDecrypt)
	mustDecrypt(t, bob.recv, msg, "hello", mallory.device)
}

// Row 8c: a non-member (no distributed chain) injects messages.
func TestAttackNonMember(t *testing.T) {
	ms := newGroup(t, 2, 3)
	bob := ms[1]
	eve, _ := NewSenderKey(testGroup, 3, dev(0xEE))
	mustFail(t, bob.recv, encrypt(t, eve, "x"), ErrUnknownChain)
	// Eve claiming a member's device with her own chain ID.
	eve2, _ := NewSenderKey(testGroup, 3, ms[0].device)
	mustFail(t, bob.recv, encrypt(t, eve2, "x"), ErrUnknownChain)
	// A future epoch nobody distributed.
	eve3, _ := NewSenderKey(testGroup, 4, ms[0].device)
	mustFail(t, bob.recv, encrypt(t, eve3, "x"), ErrUnknownChain)
	// Another group.
	other, _ := NewSenderKey([GroupIDSize]byte{1}, 3, ms[0].device)
	mustFail(t, bob.recv, encrypt(t, other, "x"), ErrWrongGroup)
	if err := bob.recv.Add(other.Distribution()); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("Add for another group: %v", err)
	}
}

// Row 1e.
func TestAttackReplay(t *testing.T) {
	ms := newGroup(t, 2, 1)
	alice, bob := ms[0], ms[1]
	m0 := encrypt(t, alice.sk, "zero")
	m1 := encrypt(t, alice.sk, "one")
	m2 := encrypt(t, alice.sk, "two")
	mustDecrypt(t, bob.recv, m0, "zero", alice.device)
	mustFail(t, bob.recv, m0, ErrDuplicate)
	mustDecrypt(t, bob.recv, m2, "two", alice.device)
	mustFail(t, bob.recv, m2, ErrDuplicate)
	mustDecrypt(t, bob.recv, m1, "one", alice.device) // from the skipped store
	mustFail(t, bob.recv, m1, ErrDuplicate)
	// A re-delivered distribution must not rewind the chain.
	if err := bob.recv.Add(alice.sk.Distribution()); err != nil {
		t.Fatal(err)
	}
	d := alice.sk.Distribution()
	d.Iteration = 0 // even one claiming an earlier point
	if err := bob.recv.Add(d); err != nil {
		t.Fatal(err)
	}
	mustFail(t, bob.recv, m0, ErrDuplicate)
	// Same chain ID with another signing key is refused.
	d.SigningKey[0] ^= 1
	if err := bob.recv.Add(d); !errors.Is(err, ErrChainConflict) {
		t.Fatalf("conflicting chain: %v", err)
	}
}

// Row 9: after removing D, every remaining member starts a new chain in a
// new epoch and D, holding all its state, reads none of it.
func TestAttackRemovedMember(t *testing.T) {
	ms := newGroup(t, 4, 1)
	remaining, d := ms[:3], ms[3]
	// D keeps everything it has, plus a copy of a remaining member's
	// receiver state (worst case: it had also stolen that).
	dOwn := NewReceiver(testGroup)
	if err := dOwn.UnmarshalBinary(snapshot(t, d.recv)); err != nil {
		t.Fatal(err)
	}
	dStolen := NewReceiver(testGroup)
	if err := dStolen.UnmarshalBinary(snapshot(t, remaining[0].recv)); err != nil {
		t.Fatal(err)
	}
	dOldMsg := encrypt(t, d.sk, "still here")

	oldChains := make(map[[DeviceIDSize]byte]uint32)
	for _, m := range remaining {
		oldChains[m.device] = m.sk.ChainID()
		sk, err := NewSenderKey(testGroup, 2, m.device)
		if err != nil {
			t.Fatal(err)
		}
		m.sk = sk
	}
	for _, from := range remaining {
		if from.sk.ChainID() == oldChains[from.device] || from.sk.Epoch() != 2 {
			t.Fatalf("member %x kept its chain", from.device[0])
		}
		for _, to := range remaining {
			if from != to {
				distribute(t, from.sk, to.recv)
			}
		}
	}
	// Grace window: epoch-1 traffic from D is still accepted...
	mustDecrypt(t, remaining[1].recv, dOldMsg, "still here", d.device)
	for _, from := range remaining {
		msg := encrypt(t, from.sk, "after removal")
		for _, to := range remaining {
			if to != from {
				mustDecrypt(t, to.recv, msg, "after removal", from.device)
			}
		}
		for _, r := range []*Receiver{d.recv, dOwn, dStolen} {
			mustFail(t, r, msg, ErrUnknownChain)
		}
	}
	// ...until it ends.
	for _, m := range remaining {
		m.recv.RemoveEpochsBefore(2)
	}
	dLate := encrypt(t, d.sk, "late")
	mustFail(t, remaining[2].recv, dLate, ErrUnknownChain)
	if err := remaining[2].recv.Add(d.sk.Distribution()); !errors.Is(err, ErrEpochClosed) {
		t.Fatalf("old-epoch distribution after grace: %v", err)
	}
	// D inventing an epoch-2 chain is a non-member.
	dNew, _ := NewSenderKey(testGroup, 2, d.device)
	mustFail(t, remaining[0].recv, encrypt(t, dNew, "let me in"), ErrUnknownChain)
}

func TestTamperEveryByte(t *testing.T) {
	ms := newGroup(t, 2, 1)
	alice, bob := ms[0], ms[1]
	msg := encrypt(t, alice.sk, "tamper with me")
	for i := range msg {
		c := bytes.Clone(msg)
		c[i] ^= 0x01
		before := snapshot(t, bob.recv)
		pt, _, err := bob.recv.Decrypt(c)
		if err == nil || pt != nil {
			t.Fatalf("byte %d: tampered message accepted", i)
		}
		var want error
		switch {
		case i < 2:
			want = ErrVersion
		case i < 2+GroupIDSize:
			want = ErrWrongGroup
		case i < HeaderSize-4: // epoch, device, chain ID
			want = ErrUnknownChain
		case i >= HeaderSize+suite.NonceSizeX && i < HeaderSize+suite.NonceSizeX+4: // length
			want = ErrMalformed
		default: // iteration, nonce, ciphertext, tag, signature
			want = ErrDecrypt
		}
		if !errors.Is(err, want) {
			t.Fatalf("byte %d: %v, want %v", i, err, want)
		}
		if !bytes.Equal(before, snapshot(t, bob.recv)) {
			t.Fatalf("byte %d: state changed", i)
		}
	}
	mustDecrypt(t, bob.recv, msg, "tamper with me", alice.device)
}

func TestTruncated(t *testing.T) {
	ms := newGroup(t, 2, 1)
	msg := encrypt(t, ms[0].sk, "short")
	for n := range len(msg) {
		mustFail(t, ms[1].recv, msg[:n], ErrMalformed)
	}
	mustFail(t, ms[1].recv, append(bytes.Clone(msg), 0), ErrMalformed)
	mustDecrypt(t, ms[1].recv, msg, "short", ms[0].device)
}

func TestOversize(t *testing.T) {
	ms := newGroup(t, 2, 1)
	if _, err := ms[0].sk.Encrypt(make([]byte, MaxPlaintext+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encrypt(MaxPlaintext+1): %v", err)
	}
	if ms[0].sk.Iteration() != 0 {
		t.Fatal("refused Encrypt advanced the chain")
	}
	big, err := ms[0].sk.Encrypt(make([]byte, MaxPlaintext))
	if err != nil || len(big) != MaxMessageSize {
		t.Fatalf("Encrypt(MaxPlaintext): %d bytes, %v", len(big), err)
	}
	mustFail(t, ms[1].recv, append(bytes.Clone(big), 0), ErrTooLarge)
	// A length field claiming more than the limit is refused by the codec.
	c := bytes.Clone(big[:200])
	binary.BigEndian.PutUint32(c[HeaderSize+suite.NonceSizeX:], math.MaxUint32)
	mustFail(t, ms[1].recv, c, ErrMalformed)
	if _, _, err := ms[1].recv.Decrypt(big); err != nil {
		t.Fatal(err)
	}
}

func TestIterationOverflow(t *testing.T) {
	sk, _ := NewSenderKey(testGroup, 1, dev(1))
	sk.iteration = math.MaxUint32 - 2
	r := NewReceiver(testGroup)
	distribute(t, sk, r)
	m1 := encrypt(t, sk, "a") // MaxUint32-2
	m2 := encrypt(t, sk, "b") // MaxUint32-1
	if _, err := sk.Encrypt([]byte("c")); !errors.Is(err, ErrChainExhausted) {
		t.Fatalf("Encrypt at MaxUint32: %v", err)
	}
	mustDecrypt(t, r, m2, "b", dev(1))
	mustDecrypt(t, r, m1, "a", dev(1))
	mustFail(t, r, m2, ErrDuplicate)
	// A forged message at iteration MaxUint32 only reaches the signature.
	c := bytes.Clone(m2)
	binary.BigEndian.PutUint32(c[HeaderSize-4:], math.MaxUint32)
	mustFail(t, r, c, ErrDecrypt)
	r2 := NewReceiver(testGroup)
	if err := r2.UnmarshalBinary(snapshot(t, r)); err != nil {
		t.Fatal(err)
	}
}

func TestMaxStates(t *testing.T) {
	r := NewReceiver(testGroup)
	var first []byte
	for i := range MaxStates + 1 {
		sk, _ := NewSenderKey(testGroup, uint64(10+i), dev(1))
		distribute(t, sk, r)
		if i == 0 {
			first = encrypt(t, sk, "oldest")
		}
	}
	if n := len(r.senders[dev(1)]); n != MaxStates {
		t.Fatalf("%d states kept, want %d", n, MaxStates)
	}
	mustFail(t, r, first, ErrUnknownChain)
}

func TestRemoveSender(t *testing.T) {
	ms := newGroup(t, 3, 1)
	msg := encrypt(t, ms[0].sk, "x")
	ms[1].recv.RemoveSender(ms[0].device)
	mustFail(t, ms[1].recv, msg, ErrUnknownChain)
	mustDecrypt(t, ms[2].recv, msg, "x", ms[0].device)
}

func TestDistributionEncoding(t *testing.T) {
	sk, _ := NewSenderKey(testGroup, 9, dev(5))
	d := sk.Distribution()
	b, _ := d.MarshalBinary()
	if len(b) != DistributionSize {
		t.Fatalf("distribution of %d bytes, want %d", len(b), DistributionSize)
	}
	got, err := ParseDistribution(b)
	if err != nil || *got != *d {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if !bytes.Equal(got.SigningKey[:], sk.signing.Public().(ed25519.PublicKey)) {
		t.Fatal("signing key mismatch")
	}
	for n := range len(b) {
		if _, err := ParseDistribution(b[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
	if _, err := ParseDistribution(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	for i, v := range [][2]byte{{2, 1}, {1, 2}, {0, 0}} {
		c := bytes.Clone(b)
		c[0], c[1] = v[0], v[1]
		if _, err := ParseDistribution(c); !errors.Is(err, ErrVersion) {
			t.Fatalf("case %d: %v", i, err)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	ms := newGroup(t, 3, 1)
	alice, bob := ms[0], ms[1]
	var msgs [][]byte
	for i := range 6 {
		msgs = append(msgs, encrypt(t, alice.sk, fmt.Sprint(i)))
	}
	mustDecrypt(t, bob.recv, msgs[4], "4", alice.device)
	mustDecrypt(t, bob.recv, msgs[1], "1", alice.device)
	bob.recv.RemoveEpochsBefore(1)

	// Receiver: restore, decrypt the rest from the restored copy.
	st := snapshot(t, bob.recv)
	var r2 Receiver
	if err := r2.UnmarshalBinary(st); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshot(t, &r2), st) {
		t.Fatal("receiver re-encoding differs")
	}
	for _, i := range []int{0, 2, 3, 5} {
		mustDecrypt(t, &r2, msgs[i], fmt.Sprint(i), alice.device)
	}
	mustFail(t, &r2, msgs[4], ErrDuplicate)

	// SenderKey: restore and continue the chain.
	skb, err := alice.sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var sk2 SenderKey
	if err := sk2.UnmarshalBinary(skb); err != nil {
		t.Fatal(err)
	}
	if b, _ := sk2.MarshalBinary(); !bytes.Equal(b, skb) {
		t.Fatal("sender key re-encoding differs")
	}
	mustDecrypt(t, ms[2].recv, encrypt(t, &sk2, "restored"), "restored", alice.device)
	var zero SenderKey
	if _, err := zero.Encrypt(nil); err == nil {
		t.Fatal("zero SenderKey encrypted")
	}
	if _, err := zero.MarshalBinary(); err == nil {
		t.Fatal("zero SenderKey marshalled")
	}
}

func TestUnmarshalRejects(t *testing.T) {
	ms := newGroup(t, 3, 1)
	for range 3 {
		mustDecrypt(t, ms[1].recv, encrypt(t, ms[0].sk, "x"), "x", ms[0].device)
		encrypt(t, ms[2].sk, "lost")
		mustDecrypt(t, ms[1].recv, encrypt(t, ms[2].sk, "y"), "y", ms[2].device)
	}
	good := snapshot(t, ms[1].recv)
	r := NewReceiver([GroupIDSize]byte{9})
	before := snapshot(t, r)
	for n := range len(good) {
		if err := r.UnmarshalBinary(good[:n]); err == nil {
			t.Fatalf("prefix %d accepted", n)
		}
	}
	if err := r.UnmarshalBinary(append(bytes.Clone(good), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	// Layout: ver suite tag group(32) minEpoch(8) nDev(2) dev(16) nStates(2)
	// epoch(8) chainID(4) sig(32) ck(32) next(8) nSkip(2) iter(4) mk(32)...
	const dev0 = 3 + 32 + 8 + 2
	const st0 = dev0 + 16 + 2
	const next0 = st0 + 8 + 4 + 32 + 32
	mut := map[string]func(b []byte){
		"tag":            func(b []byte) { b[2] = 'S' },
		"version":        func(b []byte) { b[0] = 2 },
		"device order":   func(b []byte) { b[dev0] = 0xFF },
		"zero states":    func(b []byte) { b[dev0+17] = 0 },
		"too many":       func(b []byte) { b[dev0+17] = MaxStates + 1 },
		"next too large": func(b []byte) { b[next0+3] = 2 },
		"skip >= next":   func(b []byte) { b[next0+7] = 0 },
		"min epoch":      func(b []byte) { b[3+32+7] = 2 },
	}
	// A single-device state whose only chain has one skipped key.
	one := NewReceiver(testGroup)
	sk3, _ := NewSenderKey(testGroup, 1, dev(3))
	distribute(t, sk3, one)
	encrypt(t, sk3, "lost")
	mustDecrypt(t, one, encrypt(t, sk3, "y"), "y", dev(3))
	single := snapshot(t, one)
	if err := r.UnmarshalBinary(single); err != nil {
		t.Fatal(err)
	}
	before = snapshot(t, r)
	for name, f := range mut {
		c := bytes.Clone(single)
		if name == "device order" {
			c = bytes.Clone(good)
		}
		f(c)
		if err := r.UnmarshalBinary(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if !bytes.Equal(before, snapshot(t, r)) {
		t.Fatal("failed unmarshal changed the receiver")
	}
	var sk SenderKey
	skb, _ := ms[0].sk.MarshalBinary()
	for n := range len(skb) {
		if err := sk.UnmarshalBinary(skb[:n]); err == nil {
			t.Fatalf("sender key prefix %d accepted", n)
		}
	}
	c := bytes.Clone(skb)
	c[2] = 'R'
	if err := sk.UnmarshalBinary(c); err == nil {
		t.Fatal("wrong tag accepted")
	}
	// A distribution is not a sender key state and vice versa.
	db, _ := ms[0].sk.Distribution().MarshalBinary()
	if err := sk.UnmarshalBinary(db); err == nil {
		t.Fatal("distribution accepted as sender key state")
	}
	if _, err := ParseDistribution(skb); err == nil {
		t.Fatal("sender key state accepted as distribution")
	}
}
