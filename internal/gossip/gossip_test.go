package gossip

import (
	"context"
	"strings"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

func TestValidTopic(t *testing.T) {
	for name, want := range map[string]bool{
		TopicPrefix + strings.Repeat("a", 32):                           true,
		TopicPrefix:                                                     false,
		"other/" + strings.Repeat("a", 32):                              false,
		TopicPrefix + strings.Repeat("a", MaxTopicLen):                  false,
		TopicPrefix + strings.Repeat("a", MaxTopicLen-len(TopicPrefix)): true,
	} {
		if got := ValidTopic(name); got != want {
			t.Errorf("ValidTopic(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestAnonymous(t *testing.T) {
	topic := TopicPrefix + strings.Repeat("0", 32)
	framed := func(n int) []byte {
		d := make([]byte, n)
		d[0], d[1] = TagVersion, TagKind
		return d
	}
	msg := func(d []byte, mutate func(*pb.Message)) *pubsub.Message {
		m := &pb.Message{Data: d, Topic: &topic}
		if mutate != nil {
			mutate(m)
		}
		return &pubsub.Message{Message: m}
	}
	ctx := context.Background()
	if !Anonymous(ctx, "", msg(framed(MinMessageSize), nil)) || !Anonymous(ctx, "", msg(framed(MaxMessageSize), nil)) {
		t.Fatal("a well-framed anonymous message was refused")
	}
	other := "elsewhere"
	for name, m := range map[string]*pubsub.Message{
		"short":     msg(framed(MinMessageSize-1), nil),
		"long":      msg(framed(MaxMessageSize+1), nil),
		"unframed":  msg(make([]byte, 100), nil),
		"author":    msg(framed(100), func(m *pb.Message) { m.From = []byte("peer") }),
		"seqno":     msg(framed(100), func(m *pb.Message) { m.Seqno = []byte{1} }),
		"signature": msg(framed(100), func(m *pb.Message) { m.Signature = []byte{1} }),
		"key":       msg(framed(100), func(m *pb.Message) { m.Key = []byte{1} }),
		"topic":     msg(framed(100), func(m *pb.Message) { m.Topic = &other }),
		"nil":       {},
	} {
		if Anonymous(ctx, "", m) {
			t.Errorf("%s: accepted", name)
		}
	}
}
