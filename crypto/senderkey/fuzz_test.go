package senderkey

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

// fuzzChain is a fixed chain so fuzzing is reproducible.
func fuzzChain() (*SenderKey, *Receiver) {
	sk := &SenderKey{groupID: testGroup, epoch: 1, device: dev(1), chainID: 42,
		signing: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))}
	copy(sk.chainKey[:], bytes.Repeat([]byte{9}, 32))
	r := NewReceiver(testGroup)
	if err := r.Add(sk.Distribution()); err != nil {
		panic(err)
	}
	return sk, r
}

func FuzzParseDistribution(f *testing.F) {
	sk, _ := fuzzChain()
	b, _ := sk.Distribution().MarshalBinary()
	f.Add(b)
	f.Add(b[:40])
	f.Add(append(bytes.Clone(b), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDistribution(b)
		if err != nil {
			return
		}
		out, _ := d.MarshalBinary()
		if !bytes.Equal(out, b) {
			t.Fatal("accepted distribution does not re-encode to the input")
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	sk, _ := fuzzChain()
	for _, pt := range []string{"", "a", "hello group"} {
		msg, _ := sk.Encrypt([]byte(pt))
		f.Add(msg)
	}
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, r := fuzzChain()
		before, _ := r.MarshalBinary()
		pt, _, err := r.Decrypt(b)
		after, _ := r.MarshalBinary()
		if err != nil {
			if pt != nil || !bytes.Equal(before, after) {
				t.Fatal("failed Decrypt returned plaintext or changed state")
			}
			return
		}
		// Only genuine messages decrypt; replaying it must fail.
		if _, _, err := r.Decrypt(b); err == nil {
			t.Fatal("replay accepted")
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	sk, r := fuzzChain()
	for range 3 {
		msg, _ := sk.Encrypt([]byte("x"))
		sk.Encrypt([]byte("lost"))
		r.Decrypt(msg)
	}
	rb, _ := r.MarshalBinary()
	skb, _ := sk.MarshalBinary()
	f.Add(rb)
	f.Add(skb)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Receiver
		if err := r.UnmarshalBinary(b); err == nil {
			out, _ := r.MarshalBinary()
			if !bytes.Equal(out, b) {
				t.Fatal("accepted receiver state does not re-encode to the input")
			}
		}
		var sk SenderKey
		if err := sk.UnmarshalBinary(b); err == nil {
			out, _ := sk.MarshalBinary()
			if !bytes.Equal(out, b) {
				t.Fatal("accepted sender key state does not re-encode to the input")
			}
		}
	})
}
