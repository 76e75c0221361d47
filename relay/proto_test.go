package relay

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/internal/wire"
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
	ak := &AddPrekeys{Mailbox: id, Time: 5, LastResort: []byte("lr"), OneTime: [][]byte{[]byte("c")}}
	SignAddPrekeys(ak, priv)
	del := &Delete{Mailbox: id, Time: 6}
	SignDelete(del, priv)
	ch := &Challenge{Time: 99}
	ch.Nonce[0] = 1
	wa := &Watch{Mailbox: id, Time: 7, Topics: []string{"hush/g/0123456789abcdef0123456789abcdef", "hush/g/x"}}
	SignWatch(wa, priv)
	wa0 := &Watch{Mailbox: id2, Time: 8}
	SignWatch(wa0, priv)
	return []any{
		cr, cr0,
		&Created{Mailbox: id, Deposit: id2, MaxMessages: 1000, MaxBytes: 64 << 20, TTLSeconds: 3600},
		&Deposit{Deposit: id2, Envelope: bytes.Repeat([]byte{0xAA}, 1024)},
		&Receipt{Message: mid},
		&Hello{Mailbox: id},
		ch,
		sub,
		&Deliver{Message: mid, StoredAt: 77, Envelope: []byte("env")},
		&Deliver{Message: mid, StoredAt: 78, Source: SourceTopic, Envelope: []byte("group message")},
		&Deliver{Message: mid, StoredAt: 79, Source: SourceTopic, Topic: "hush/g/0123456789abcdef0123456789abcdef", Envelope: []byte("group message")},
		&Ack{Message: mid},
		Drained,
		pk, ak,
		&PrekeyCount{OneTime: 17},
		&GetPrekeys{Deposit: id2},
		&Prekeys{Bundle: []byte("bundle"), OneTime: true},
		OK,
		&ErrorMsg{Code: CodeQuota, Message: "mailbox full"},
		Ping,
		del,
		wa, wa0,
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
	// An AddPrekeys signature is not a PutPrekeys one (a relay cannot
	// turn a top-up into a replacement), and it binds the bundles.
	a := &AddPrekeys{Time: 3, LastResort: []byte("lr"), OneTime: [][]byte{[]byte("x")}}
	SignAddPrekeys(a, priv)
	if !VerifyAddPrekeys(a, pub) {
		t.Fatal("valid AddPrekeys rejected")
	}
	if VerifyPutPrekeys(&PutPrekeys{Mailbox: a.Mailbox, Time: a.Time, LastResort: a.LastResort, OneTime: a.OneTime, Sig: a.Sig}, pub) {
		t.Fatal("an AddPrekeys signature verified as PutPrekeys")
	}
	a.OneTime[0] = []byte("y")
	if VerifyAddPrekeys(a, pub) {
		t.Fatal("AddPrekeys with a changed bundle verified")
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

func TestWatchAndDeliverFields(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	pub := priv.Public().(ed25519.PublicKey)
	topics := []string{"hush/g/aa", "hush/g/bb"}
	w := &Watch{Mailbox: ID{1}, Time: 1700000000, Topics: topics}
	SignWatch(w, priv)
	got, err := Decode(Encode(w))
	if err != nil {
		t.Fatal(err)
	}
	gw := got.(*Watch)
	if gw.Mailbox != w.Mailbox || gw.Time != w.Time || !reflect.DeepEqual(gw.Topics, topics) || !VerifyWatch(gw, pub) {
		t.Fatalf("watch round trip: %+v", gw)
	}
	// The signature covers the topic list and the time.
	gw.Topics = []string{"hush/g/aa"}
	if VerifyWatch(gw, pub) {
		t.Fatal("watch with a changed topic list verified")
	}
	gw.Topics, gw.Time = topics, w.Time+1
	if VerifyWatch(gw, pub) {
		t.Fatal("watch with a changed time verified")
	}

	d := &Deliver{Message: MessageID{4}, StoredAt: 9, Source: SourceTopic, Envelope: []byte("data")}
	gd, err := Decode(Encode(d))
	if err != nil || !reflect.DeepEqual(gd, d) {
		t.Fatalf("deliver round trip: %+v %v", gd, err)
	}
	// The source byte follows kind ‖ message ID ‖ stored-at.
	b := Encode(d)
	if b[1+MessageIDSize+8] != byte(SourceTopic) {
		t.Fatal("source not after stored-at")
	}
	for _, bad := range []byte{2, 0xff} {
		b[1+MessageIDSize+8] = bad
		if _, err := Decode(b); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("source %d: %v", bad, err)
		}
	}
	// With its topic; a topic that is not a group topic name is refused.
	d.Topic = "hush/g/" + strings.Repeat("cd", 16)
	if gd, err := Decode(Encode(d)); err != nil || !reflect.DeepEqual(gd, d) {
		t.Fatalf("deliver with topic round trip: %+v %v", gd, err)
	}
	d.Topic = "not/a/group/topic"
	if _, err := Decode(Encode(d)); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("deliver with a bad topic: %v", err)
	}
}

func TestWatchDecodeRejects(t *testing.T) {
	many := make([]string, MaxWatchTopics+1)
	for i := range many {
		many[i] = fmt.Sprintf("hush/g/%032x", i)
	}
	cases := map[string][]string{
		"too many topics":  many,
		"no prefix":        {"group/abc"},
		"prefix only":      {"hush/g/"},
		"too long":         {"hush/g/" + strings.Repeat("a", 58)},
		"empty name":       {""},
		"one bad of three": {"hush/g/a", "hush/x/b", "hush/g/c"},
	}
	for name, topics := range cases {
		w := &Watch{Mailbox: ID{1}, Time: 5, Topics: topics, Sig: make([]byte, ed25519.SignatureSize)}
		if _, err := Decode(Encode(w)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: decoded (err %v)", name, err)
		}
	}
	// The caps themselves are accepted.
	w := &Watch{Topics: many[:MaxWatchTopics], Sig: make([]byte, ed25519.SignatureSize)}
	w.Topics[0] = "hush/g/" + strings.Repeat("a", 57)
	if _, err := Decode(Encode(w)); err != nil {
		t.Fatalf("%d topics, one of %d bytes: %v", MaxWatchTopics, len(w.Topics[0]), err)
	}
}

func TestMessageRecordSource(t *testing.T) {
	topic := "hush/g/" + strings.Repeat("ab", 16)
	for _, m := range []*message{
		{id: MessageID{1}, storedAt: 2, expiry: 3, source: SourceTopic, topic: topic, envelope: []byte("data")},
		{id: MessageID{1}, storedAt: 2, expiry: 3, source: SourceTopic, envelope: []byte("data")},
		{id: MessageID{1}, storedAt: 2, expiry: 3, source: SourceDeposit, envelope: []byte("data")},
	} {
		got, err := parseMessage(m.encode())
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip %+v %v", got, err)
		}
		// The record's layout, field by field (storage.go), and the
		// same bytes in the parts storeQueueMany gives the store.
		w := codec.NewWriter(0)
		w.Fixed(m.id[:])
		w.U64(m.storedAt)
		w.U64(m.expiry | noIndexBit)
		w.Bytes32(m.envelope)
		w.U8(uint8(m.source))
		if m.source == SourceTopic {
			writeTopic(w, m.topic)
		}
		parts := append(append(m.appendHeader(nil), m.envelope...), m.appendTrailer(nil)...)
		if !bytes.Equal(m.encode(), w.Bytes()) || !bytes.Equal(parts, w.Bytes()) {
			t.Fatalf("record %x, in parts %x, want %x", m.encode(), parts, w.Bytes())
		}
	}
	// A record written before the source existed ends after the envelope:
	// it reads as a deposit; one written before the topic existed ends
	// after the source.
	dep := &message{id: MessageID{1}, storedAt: 2, expiry: 3, envelope: []byte("data")}
	old := dep.encode()
	old = old[:len(old)-1]
	got, err := parseMessage(old)
	if err != nil || got.source != SourceDeposit || !bytes.Equal(got.envelope, dep.envelope) {
		t.Fatalf("old record: %+v %v", got, err)
	}
	got, err = parseMessage(append(bytes.Clone(old), byte(SourceTopic)))
	if err != nil || got.source != SourceTopic || got.topic != "" {
		t.Fatalf("record without a topic: %+v %v", got, err)
	}
	for _, bad := range [][]byte{append(bytes.Clone(old), 9), append(bytes.Clone(old), 1, 3, 'x', 'y', 'z'),
		append(bytes.Clone(old), 0, 0), old[:5], nil} {
		if _, err := parseMessage(bad); err == nil {
			t.Fatalf("garbage record %x parsed", bad)
		}
	}
	w := &watchRecord{time: 5, topics: []string{"hush/g/a"}}
	gw, err := parseWatch(w.encode())
	if err != nil || !reflect.DeepEqual(gw, w) {
		t.Fatalf("watch record %+v %v", gw, err)
	}
	if _, err := parseWatch([]byte{1, 2, 3}); err == nil {
		t.Fatal("garbage watch record parsed")
	}
}

func FuzzParseMessage(f *testing.F) {
	m := &message{id: MessageID{1}, storedAt: 2, expiry: 3, source: SourceTopic, envelope: []byte("data")}
	f.Add(m.encode())
	f.Add(m.encode()[:len(m.encode())-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseMessage(b)
		if err != nil {
			return
		}
		if !got.source.valid() {
			t.Fatalf("accepted source %d", got.source)
		}
	})
}

// appendFrame gives the frame wire.AppendFrame(Encode(m)) gives, for a
// DepositMany (encoded in place) as for any other message, after what
// dst held; a DepositMany over MaxFrame is refused and dst kept.
func TestAppendFrameMatchesEncode(t *testing.T) {
	many := &DepositMany{}
	for i := range 5 {
		many.Items = append(many.Items, DepositItem{Deposit: ID{byte(i), 7}, Envelope: bytes.Repeat([]byte{byte(i)}, 100*i)})
	}
	for _, m := range []any{many, &DepositMany{}, &Receipt{Message: MessageID{3}}, &Deposit{Deposit: ID{1}, Envelope: []byte("env")}} {
		want, err := wire.AppendFrame([]byte("prefix"), Encode(m))
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendFrame([]byte("prefix"), m)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%T: appendFrame gives %x, %v; want %x", m, got, err, want)
		}
	}
	big := &DepositMany{Items: []DepositItem{{Envelope: make([]byte, wire.MaxFrame)}}}
	got, err := appendFrame([]byte("prefix"), big)
	if !errors.Is(err, wire.ErrFrameTooLarge) || string(got) != "prefix" {
		t.Fatalf("an oversized DepositMany: %q, %v", got[:min(len(got), 10)], err)
	}
}
