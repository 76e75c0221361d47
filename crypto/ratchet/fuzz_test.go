package ratchet

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// loadKAT reads the stored vectors: deterministic sessions and messages
// shared by every fuzz worker process.
func loadKAT(f *testing.F) katFile {
	b, err := os.ReadFile(katPath)
	if err != nil {
		f.Fatal(err)
	}
	var k katFile
	if err := json.Unmarshal(b, &k); err != nil {
		f.Fatal(err)
	}
	return k
}

func FuzzDecrypt(f *testing.F) {
	k := loadKAT(f)
	// The responder just before it receives a message from an old chain:
	// it holds an old chain with a skipped key and a current chain.
	v := k.Vectors[len(k.Vectors)-1]
	var base []byte
	for _, d := range v.Deliveries {
		f.Add([]byte(d.Message))
		if d.To == "responder" && base == nil {
			if s, err := Unmarshal(d.StateBefore); err == nil && len(s.old) > 0 {
				base = d.StateBefore
			}
		}
		m := d.Message
		f.Add([]byte(withHeader(m, 0, MaxSkip+5)))
		f.Add([]byte(m[:HeaderSize]))
	}
	if base == nil {
		f.Fatal("no vector state with an old chain")
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := Unmarshal(base)
		if err != nil {
			t.Fatal(err)
		}
		pt, err := s.DecryptAt(msg, t0)
		after := state(t, s)
		if err != nil {
			if pt != nil || !bytes.Equal(after, base) {
				t.Fatalf("failed decrypt (%v) changed the session or returned plaintext", err)
			}
			return
		}
		if bytes.Equal(after, base) {
			t.Fatal("successful decrypt left the session unchanged")
		}
		if _, err := s.DecryptAt(msg, t0); err == nil {
			t.Fatal("message decrypted twice")
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	h := Header{PN: 3, N: 4}
	b, _ := h.MarshalBinary()
	f.Add(b)
	f.Add(b[:10])
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseHeader(in)
		if err != nil {
			return
		}
		out, _ := h.MarshalBinary()
		if !bytes.Equal(out, in) {
			t.Fatalf("header %x re-encodes as %x", in, out)
		}
	})
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 1, 1, 7})
	for _, v := range loadKAT(f).Vectors {
		f.Add([]byte(v.InitiatorState))
		f.Add([]byte(v.ResponderState))
		for _, d := range v.Deliveries {
			f.Add([]byte(d.StateAfter))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := Unmarshal(in)
		if err != nil {
			return
		}
		if out := state(t, s); !bytes.Equal(out, in) {
			t.Fatalf("state re-encodes differently")
		}
		// A decoded state must be usable without panicking.
		_, _ = s.Clone().DecryptAt(make([]byte, Overhead), t0)
		if s.CanSend() {
			if _, err := s.Clone().Encrypt([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	})
}
