package relay

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"
)

func sampleMessages() []any {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_ = pub
	var id, id2 ID
	id[0], id2[31] = 1, 2
	var mid MessageID
	mid[3] = 9
	cr := &Create{Time: 1700000000, Invite: []byte("tok"), Nonce: 42}
	SignCreate(cr, priv)
	cr0 := &Create{Time: 1, Invite: []byte{}}
	SignCreate(cr0, priv)
	sub := &Subscribe{Mailbox: id, Live: true}
	sub.Nonce[5] = 7
	SignSubscribe(sub, priv)
	pk := &PutPrekeys{Mailbox: id, Time: 5, LastResort: []byte("lr"), OneTime: [][]byte{[]byte("a"), []byte("bb")}}
	SignPutPrekeys(pk, priv)
	del := &Delete{Mailbox: id, Time: 6}
	SignDelete(del, priv)
	ch := &Challenge{Time: 99}
	ch.Nonce[0] = 1
	return []any{
		cr, cr0,
		&Created{Mailbox: id, Deposit: id2, MaxMessages: 1000, MaxBytes: 64 << 20, TTLSeconds: 3600},
		&Deposit{Deposit: id2, Envelope: bytes.Repeat([]byte{0xAA}, 1024)},
		&Receipt{Message: mid},
		&Hello{Mailbox: id},
		ch,
		sub,
		&Deliver{Message: mid, StoredAt: 77, Envelope: []byte("env")},
		&Ack{Message: mid},
		Drained,
		pk,
		&GetPrekeys{Deposit: id2},
		&Prekeys{Bundle: []byte("bundle"), OneTime: true},
		OK,
		&ErrorMsg{Code: CodeQuota, Message: "mailbox full"},
		Ping,
		del,
	}
}

func TestRoundTripEveryMessage(t *testing.T) {
	for _, m := range sampleMessages() {
		b := Encode(m)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: decode: %v", m, err)
		}
		if !bytes.Equal(Encode(got), b) {
			t.Fatalf("%T: re-encoding differs", m)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(m) {
			t.Fatalf("decoded %T, want %T", got, m)
		}
	}
}

func TestEveryTruncationRejected(t *testing.T) {
	for _, m := range sampleMessages() {
		b := Encode(m)
		for n := 0; n < len(b); n++ {
			if got, err := Decode(b[:n]); err == nil {
				t.Fatalf("%T truncated to %d of %d decoded as %T", m, n, len(b), got)
			} else if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%T truncated: error %v is not ErrBadRequest", m, err)
			}
		}
		if _, err := Decode(append(b, 0)); err == nil {
			t.Fatalf("%T with a trailing byte decoded", m)
		}
	}
}

func TestSignaturesBindFields(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	c := &Create{Time: 10}
	SignCreate(c, priv)
	if !VerifyCreate(c) {
		t.Fatal("valid create rejected")
	}
	c.Nonce++
	if VerifyCreate(c) {
		t.Fatal("create with changed nonce verified")
	}
	s := &Subscribe{Live: true}
	SignSubscribe(s, priv)
	pub := priv.Public().(ed25519.PublicKey)
	s.Live = false
	if VerifySubscribe(s, pub) {
		t.Fatal("subscribe with changed live verified")
	}
}

func TestRemoteErrorIs(t *testing.T) {
	for code, sentinel := range codeErrors {
		err := error(&RemoteError{Code: code, Message: "x"})
		if !errors.Is(err, sentinel) || CodeOf(err) != code {
			t.Fatalf("code %d does not match its sentinel", code)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Encode(m))
	}
	f.Add([]byte{})
	f.Add([]byte{200})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(Encode(m), b) {
			t.Fatalf("accepted payload re-encodes differently: %x", b)
		}
	})
}
