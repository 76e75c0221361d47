package gossip

import (
	"bytes"
	"slices"
	"testing"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const (
	topicA = TopicPrefix + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	topicB = TopicPrefix + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func sub(t string, on bool) *pb.RPC_SubOpts { return &pb.RPC_SubOpts{Topicid: &t, Subscribe: &on} }

func msgOn(t string, data string) *pb.Message { return &pb.Message{Topic: &t, Data: []byte(data)} }

func frame(t *testing.T, rpc *pb.RPC) []byte {
	t.Helper()
	body, err := proto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	return append(protowire.AppendVarint(nil, uint64(len(body))), body...)
}

// readFrames decodes the RPC frames written to a recorder.
func readFrames(t *testing.T, b []byte) []*pb.RPC {
	t.Helper()
	var out []*pb.RPC
	for len(b) > 0 {
		size, n := protowire.ConsumeVarint(b)
		if n < 0 || uint64(len(b)-n) < size {
			t.Fatalf("truncated frame in %x", b)
		}
		rpc := &pb.RPC{}
		if err := proto.Unmarshal(b[n:n+int(size)], rpc); err != nil {
			t.Fatal(err)
		}
		out = append(out, rpc)
		b = b[n+int(size):]
	}
	return out
}

// topicsOf lists every topic an RPC names, in order of appearance.
func topicsOf(rpcs []*pb.RPC) []string {
	var ts []string
	for _, r := range rpcs {
		for _, s := range r.GetSubscriptions() {
			ts = append(ts, "sub:"+s.GetTopicid())
		}
		for _, m := range r.GetPublish() {
			ts = append(ts, "msg:"+m.GetTopic())
		}
		for _, ih := range r.GetControl().GetIhave() {
			ts = append(ts, "ihave:"+ih.GetTopicID())
		}
		for _, g := range r.GetControl().GetGraft() {
			ts = append(ts, "graft:"+g.GetTopicID())
		}
		for _, p := range r.GetControl().GetPrune() {
			ts = append(ts, "prune:"+p.GetTopicID())
		}
	}
	return ts
}

// recorder is a stream that keeps what is written to it.
type recorder struct {
	network.Stream
	buf bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) { return r.buf.Write(b) }

func newGuarded(g *Guard, p peer.ID) (*guardedStream, *recorder) {
	rec := &recorder{}
	gs := &guardedStream{Stream: rec, g: g, peer: p, meant: map[string]bool{}, told: map[string]bool{}}
	g.streams[p] = gs
	return gs, rec
}

func bareGuard(mode Mode) *Guard { return newGuard(nil, mode) }

// A peer hears only of the topics it is allowed: subscriptions,
// messages and control entries of other topics are removed, and a frame
// with nothing left is not sent.
func TestGuardFiltersFrames(t *testing.T) {
	g := bareGuard(Members)
	friend := peer.ID("friend")
	g.SetTopicPeers(map[string][]peer.ID{topicA: {friend}})
	gs, rec := newGuarded(g, friend)
	strangerStream, strangerRec := newGuarded(g, peer.ID("stranger"))

	iw := "id"
	rpc := &pb.RPC{
		Subscriptions: []*pb.RPC_SubOpts{sub(topicA, true), sub(topicB, true)},
		Publish:       []*pb.Message{msgOn(topicB, "b"), msgOn(topicA, "a")},
		Control: &pb.ControlMessage{
			Ihave: []*pb.ControlIHave{{TopicID: &[]string{topicB}[0]}, {TopicID: &[]string{topicA}[0]}},
			Graft: []*pb.ControlGraft{{TopicID: &[]string{topicB}[0]}},
			Prune: []*pb.ControlPrune{{TopicID: &[]string{topicA}[0]}},
			Iwant: []*pb.ControlIWant{{MessageIDs: []string{iw}}},
		},
	}
	f := frame(t, rpc)
	for _, s := range []*guardedStream{gs, strangerStream} {
		if n, err := s.Write(f); err != nil || n != len(f) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	got := readFrames(t, rec.buf.Bytes())
	want := []string{"sub:" + topicA, "msg:" + topicA, "ihave:" + topicA, "prune:" + topicA}
	if ts := topicsOf(got); !slices.Equal(ts, want) {
		t.Fatalf("friend heard %q, want %q", ts, want)
	}
	if len(got[0].GetControl().GetIwant()) != 1 {
		t.Fatal("IWANT (message IDs only) was removed")
	}
	if string(got[0].GetPublish()[0].GetData()) != "a" {
		t.Fatal("the kept message changed")
	}
	// The stranger gets the IWANT only.
	sg := readFrames(t, strangerRec.buf.Bytes())
	if ts := topicsOf(sg); len(ts) != 0 {
		t.Fatalf("stranger heard %q", ts)
	}

	// A frame only about other topics is not sent at all; one about
	// allowed topics goes out byte for byte.
	strangerRec.buf.Reset()
	strangerStream.Write(frame(t, &pb.RPC{Publish: []*pb.Message{msgOn(topicA, "x")}}))
	if strangerRec.buf.Len() != 0 {
		t.Fatalf("a frame with nothing allowed was written: %x", strangerRec.buf.Bytes())
	}
	rec.buf.Reset()
	same := frame(t, &pb.RPC{Publish: []*pb.Message{msgOn(topicA, "y")}})
	gs.Write(same)
	if !bytes.Equal(rec.buf.Bytes(), same) {
		t.Fatal("an allowed frame was rewritten")
	}
}

// Frames split across writes are filtered whole.
func TestGuardSplitFrames(t *testing.T) {
	g := bareGuard(Members)
	p := peer.ID("p")
	g.SetTopicPeers(map[string][]peer.ID{topicA: {p}})
	gs, rec := newGuarded(g, p)
	f := append(frame(t, &pb.RPC{Publish: []*pb.Message{msgOn(topicB, "secret")}}),
		frame(t, &pb.RPC{Publish: []*pb.Message{msgOn(topicA, "ok")}})...)
	for i := range f {
		if n, err := gs.Write(f[i : i+1]); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if ts := topicsOf(readFrames(t, rec.buf.Bytes())); !slices.Equal(ts, []string{"msg:" + topicA}) {
		t.Fatalf("heard %q", ts)
	}
	if bytes.Contains(rec.buf.Bytes(), []byte("secret")) {
		t.Fatal("the refused message leaked")
	}
}

// A peer allowed after the router's hello is told of the subscription by
// the guard; one no longer allowed gets the withdrawal; an unsubscribe
// for a topic the peer was never told of is not sent.
func TestGuardLateAuthorisation(t *testing.T) {
	g := bareGuard(Members)
	p := peer.ID("late")
	gs, rec := newGuarded(g, p)
	gs.Write(frame(t, &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{sub(topicA, true), sub(topicB, true)}}))
	if rec.buf.Len() != 0 {
		t.Fatal("hello to an unauthorised peer named a topic")
	}
	g.SetTopicPeers(map[string][]peer.ID{topicA: {p}})
	gs.refresh()
	rpcs := readFrames(t, rec.buf.Bytes())
	if len(rpcs) != 1 || len(rpcs[0].Subscriptions) != 1 || rpcs[0].Subscriptions[0].GetTopicid() != topicA || !rpcs[0].Subscriptions[0].GetSubscribe() {
		t.Fatalf("late authorisation: %v", rpcs)
	}
	rec.buf.Reset()
	gs.refresh() // nothing new
	if rec.buf.Len() != 0 {
		t.Fatal("told twice")
	}
	gs.Write(frame(t, &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{sub(topicB, false)}}))
	if rec.buf.Len() != 0 {
		t.Fatal("unsubscribe of an untold topic sent")
	}
	g.SetTopicPeers(nil)
	gs.refresh()
	rpcs = readFrames(t, rec.buf.Bytes())
	if len(rpcs) != 1 || rpcs[0].Subscriptions[0].GetTopicid() != topicA || rpcs[0].Subscriptions[0].GetSubscribe() {
		t.Fatalf("withdrawal: %v", rpcs)
	}
}

// An Echo guard (a relay) tells a peer of a topic only after the peer
// announced it, and forgets beyond MaxHeardTopics.
func TestGuardEcho(t *testing.T) {
	g := bareGuard(Echo)
	p := peer.ID("member")
	gs, rec := newGuarded(g, p)
	gs.Write(frame(t, &pb.RPC{Subscriptions: []*pb.RPC_SubOpts{sub(topicA, true)}}))
	if rec.buf.Len() != 0 {
		t.Fatal("echo guard announced before hearing")
	}
	if _, err := g.FilterIncomingSubscriptions(p, []*pb.RPC_SubOpts{sub(topicA, true)}); err != nil {
		t.Fatal(err)
	}
	gs.refresh()
	if ts := topicsOf(readFrames(t, rec.buf.Bytes())); !slices.Equal(ts, []string{"sub:" + topicA}) {
		t.Fatalf("after hearing: %q", ts)
	}
	if g.Allowed(peer.ID("other"), topicA) {
		t.Fatal("another peer allowed")
	}
	var many []*pb.RPC_SubOpts
	for i := range MaxHeardTopics + 10 {
		many = append(many, sub(TopicPrefix+string(rune('a'+i%26))+string(rune(i)), true))
	}
	g.FilterIncomingSubscriptions(peer.ID("flood"), many)
	if n := len(g.heard[peer.ID("flood")]); n != MaxHeardTopics {
		t.Fatalf("heard %d topics, cap %d", n, MaxHeardTopics)
	}
}

// filterRPC passes through or drops garbage without panicking.
func FuzzFilterRPC(f *testing.F) {
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01})
	f.Add(frameBody(&pb.RPC{Subscriptions: []*pb.RPC_SubOpts{sub(topicA, true)}, Publish: []*pb.Message{msgOn(topicB, "x")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, same := filterRPC(b, func(_ entryKind, topic []byte) bool { return string(topic) == topicA })
		if same && !bytes.Equal(out, b) {
			t.Fatal("same but changed")
		}
		if !same && out != nil {
			var rpc pb.RPC
			if proto.Unmarshal(out, &rpc) == nil {
				for _, s := range rpc.GetSubscriptions() {
					if s.GetTopicid() != topicA {
						t.Fatalf("kept %q", s.GetTopicid())
					}
				}
			}
		}
	})
}

func frameBody(rpc *pb.RPC) []byte {
	b, _ := proto.Marshal(rpc)
	return b
}

// BenchmarkGuardWrite is the guard's cost on the hot path: one frame with
// a 1 KiB message on a topic the peer may hear of, written through.
func BenchmarkGuardWrite(b *testing.B) {
	g := bareGuard(Members)
	p := peer.ID("p")
	g.SetTopicPeers(map[string][]peer.ID{topicA: {p}})
	gs, _ := newGuarded(g, p)
	rpc := &pb.RPC{Publish: []*pb.Message{msgOn(topicA, string(make([]byte, 1024)))}}
	body, _ := proto.Marshal(rpc)
	f := append(protowire.AppendVarint(nil, uint64(len(body))), body...)
	rec := gs.Stream.(*recorder)
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		gs.Write(f)
		rec.buf.Reset()
	}
}
