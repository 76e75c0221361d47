package senderkey

import "testing"

func BenchmarkEncryptDecrypt256(b *testing.B) {
	ms := newGroup(b, 2, 1)
	pt := make([]byte, 256)
	b.SetBytes(256)
	for b.Loop() {
		msg, err := ms[0].sk.Encrypt(pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ms[1].recv.Decrypt(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecryptJump2000 is the worst case a member can cause: a message
// MaxForwardJump ahead, which derives and stores 2000 keys.
func BenchmarkDecryptJump2000(b *testing.B) {
	ms := newGroup(b, 2, 1)
	advance(ms[0].sk, MaxForwardJump)
	msg, _ := ms[0].sk.Encrypt([]byte("x"))
	st, _ := ms[1].recv.MarshalBinary()
	for b.Loop() {
		var r Receiver
		if err := r.UnmarshalBinary(st); err != nil {
			b.Fatal(err)
		}
		if _, _, err := r.Decrypt(msg); err != nil {
			b.Fatal(err)
		}
	}
}
