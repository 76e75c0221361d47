package group

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"

	"github.com/hushnet/hush/crypto/suite"
)

// A wire message sealed for its topic opens for members only; the sealed
// bytes show neither the group ID nor the sender's device; after a
// removal, the removed member opens the old epoch's topic messages (the
// removal notice) but not the new epoch's.
func TestSealTopic(t *testing.T) {
	w := newWorld(t, "alice", "bob", "carol")
	w.create()
	alice, bob, carol := w.users[0], w.users[1], w.users[2]
	wire := w.say(alice, "sealed for the topic")
	topic, data, err := alice.e.SealTopic(wire)
	if err != nil {
		t.Fatal(err)
	}
	if topic != alice.e.Topic() || len(data) != 512 {
		t.Fatalf("topic %q (want %q), %d bytes for a %d-byte wire", topic, alice.e.Topic(), len(data), len(wire))
	}
	id := alice.e.ID()
	for _, needle := range [][]byte{id[:], alice.dev[:], []byte("sealed for the topic")} {
		if bytes.Contains(data, needle) {
			t.Fatalf("sealed topic message shows %x", needle)
		}
	}
	got, err := bob.e.OpenTopic(data)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("member open: %v", err)
	}
	// Another group's engine, a flipped byte, bad framing: refused.
	other := newWorld(t, "erin")
	other.create()
	if _, err := other.users[0].e.OpenTopic(data); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("other group: %v", err)
	}
	for _, i := range []int{0, 1, 30, len(data) - 1} {
		bad := bytes.Clone(data)
		bad[i] ^= 1
		if _, err := bob.e.OpenTopic(bad); err == nil {
			t.Fatalf("flipped byte %d opened", i)
		}
	}
	if _, err := bob.e.OpenTopic(data[:TopicOverhead-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}

	// Carol is removed: the removal op goes out in the old epoch, which
	// she can open; the new epoch's messages she cannot.
	carol.offline = true
	nWires := len(w.wires)
	fx, err := alice.e.Remove(carol.acct.Public())
	w.must(alice, fx, err)
	removal := w.wires[nWires]
	_, sealedRemoval, err := alice.e.SealTopic(removal)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := carol.e.OpenTopic(sealedRemoval); err != nil || !bytes.Equal(got, removal) {
		t.Fatalf("removed member cannot open the removal notice: %v", err)
	}
	after := w.say(bob, "after the removal")
	newTopic, sealedAfter, err := bob.e.SealTopic(after)
	if err != nil {
		t.Fatal(err)
	}
	if newTopic == topic {
		t.Fatal("the topic did not change with the epoch")
	}
	if _, err := carol.e.OpenTopic(sealedAfter); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("removed member opened a new-epoch topic message: %v", err)
	}
	if got, err := alice.e.OpenTopic(sealedAfter); err != nil || !bytes.Equal(got, after) {
		t.Fatalf("member open after removal: %v", err)
	}
}

// The topic validator takes sealed topic messages and refuses bare wire
// messages and libp2p-signed ones.
func TestValidatorTakesSealedOnly(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	wire := w.say(w.users[0], "x")
	topic, data, err := w.users[0].e.SealTopic(wire)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(d []byte, from []byte) *pubsub.Message {
		return &pubsub.Message{Message: &pb.Message{Data: d, Topic: &topic, From: from}}
	}
	if !Validator(context.Background(), "", msg(data, nil)) {
		t.Fatal("sealed topic message refused")
	}
	if Validator(context.Background(), "", msg(wire, nil)) {
		t.Fatal("bare wire message accepted")
	}
	long := w.say(w.users[0], strings.Repeat("y", 500))
	if Validator(context.Background(), "", msg(long, nil)) {
		t.Fatal("bare wire message of topic size accepted")
	}
	if Validator(context.Background(), "", msg(data, []byte("author"))) {
		t.Fatal("message with an author accepted")
	}
}

// Topic messages are padded to bucket lengths whatever the text's length,
// and the unpadded form of earlier versions still opens.
func TestSealTopicPads(t *testing.T) {
	w := newWorld(t, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	buckets := map[int]bool{MaxTopicSize: true}
	for _, b := range topicBuckets {
		buckets[b] = true
	}
	for _, n := range []int{1, 200, 300, 500, 1000, 5000, 40000, 63000, MaxPlaintext - 1} {
		wire := w.say(alice, strings.Repeat("x", n))
		_, data, err := alice.e.SealTopic(wire)
		if err != nil {
			t.Fatal(err)
		}
		if !buckets[len(data)] {
			t.Fatalf("a %d-byte text gave a %d-byte topic message, not a bucket", n, len(data))
		}
		if TopicSize(n) != len(data) {
			t.Fatalf("a %d-byte text gave a %d-byte topic message; TopicSize says %d", n, len(data), TopicSize(n))
		}
		got, err := bob.e.OpenTopic(data)
		if err != nil || !bytes.Equal(got, wire) {
			t.Fatalf("%d bytes: open: %v", n, err)
		}
		if !Validator(context.Background(), "", &pubsub.Message{Message: &pb.Message{Data: data, Topic: &[]string{alice.e.Topic()}[0]}}) {
			t.Fatalf("%d bytes: validator refused the padded message", n)
		}
	}
	// The unpadded form ('T'), as earlier versions sealed it.
	wire := w.say(alice, "old form")
	topic, data, _ := alice.e.SealTopic(wire)
	raw, err := alice.e.OpenTopic(data)
	if err != nil {
		t.Fatal(err)
	}
	ep := alice.e.ro.epochs[len(alice.e.ro.epochs)-1]
	old := append([]byte{Version, kindTopicMsg}, suite.Seal(transportKey(alice.e.ID(), ep.n, alice.e.secrets[ep.key]), raw, []byte(topic))...)
	if got, err := bob.e.OpenTopic(old); err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("unpadded form: %v", err)
	}
	// Padding that is not 0x80 0x00* is refused.
	bad := append([]byte{Version, kindTopicPadded}, suite.Seal(transportKey(alice.e.ID(), ep.n, alice.e.secrets[ep.key]), append(raw, 0, 0), []byte(topic))...)
	if _, err := bob.e.OpenTopic(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad padding: %v", err)
	}
}
