package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/internal/wire"
)

// Messages sent while the peer is down are delivered, once each and in
// order, when it comes back; history survives restarts of both.
func TestOfflineThenRestart(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "before"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first message", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
	bHome := b.home
	b.stop(t)
	for i := range 10 {
		if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: fmt.Sprintf("while down %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Restart the sender too: the outbox must survive it.
	aHome := a.home
	a.stop(t)
	a = startNode(t, aHome)
	defer func() { a.stop(t) }()
	b = startNode(t, bHome)
	defer func() { b.stop(t) }()
	waitFor(t, "queued messages", func() bool { return len(texts(t, b.n, "alice", "in")) == 11 })
	time.Sleep(300 * time.Millisecond)
	got := texts(t, b.n, "alice", "in")
	if len(got) != 11 {
		t.Fatalf("bob has %d messages, want 11 (no doubles)", len(got))
	}
	for i := range 10 {
		if got[i+1] != fmt.Sprintf("while down %d", i) {
			t.Fatalf("message %d is %q", i+1, got[i+1])
		}
	}
	out, _ := a.n.Messages("bob", 0)
	waitFor(t, "delivered states", func() bool {
		out, _ = a.n.Messages("bob", 0)
		for _, m := range out {
			if m.State != StateDelivered {
				return false
			}
		}
		return true
	})
	cs, _ := b.n.Contacts()
	if len(cs) != 1 || cs[0].Name != "alice" {
		t.Fatalf("contacts after restart: %+v", cs)
	}
}

func TestAddContactIdempotentAndKeyChange(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	sb, _ := b.n.Self()
	for range 2 {
		c, err := a.n.AddContact("bob", sb.Link)
		if err != nil || c.KeyChanged {
			t.Fatalf("re-adding the same link: %+v %v", c, err)
		}
	}
	if cs, _ := a.n.Contacts(); len(cs) != 1 {
		t.Fatalf("%d contacts after adding a link twice", len(cs))
	}
	if _, err := a.n.VerifyContact("bob"); err != nil {
		t.Fatal(err)
	}
	// "bob" now presents a different identity key.
	m := startNode(t, newHome(t, "mallory"))
	defer m.stop(t)
	sm, _ := m.n.Self()
	c, err := a.n.AddContact("bob", sm.Link)
	if err != nil || !c.KeyChanged || c.Verified {
		t.Fatalf("key change: %+v %v", c, err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hi"}); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("send to a verified contact whose key changed: got %v, want ErrKeyChanged", err)
	}
	if _, err := a.n.VerifyContact("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hi"}); err != nil {
		t.Fatalf("send after re-verifying: %v", err)
	}
	// An unverified contact's key change only warns. (Bob's account is
	// still a contact, under "bob (previous key)", so carol is someone new.)
	if _, err := a.n.AddContact("carol", newSelf(t).Link); err != nil {
		t.Fatal(err)
	}
	c, err = a.n.AddContact("carol", newSelf(t).Link)
	if err != nil || !c.KeyChanged {
		t.Fatalf("unverified key change: %+v %v", c, err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "carol", Text: "hi"}); err != nil {
		t.Fatalf("send after an unverified key change must work: %v", err)
	}
}

func newSelf(t testing.TB) Self {
	r := startNode(t, newHome(t, "someone"))
	defer r.stop(t)
	s, err := r.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadLinks(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	s, _ := a.n.Self()
	other := newSelf(t)
	for _, link := range []string{"", "hush://", "https://x", other.Link[:len(other.Link)/2], other.Link[:len(other.Link)-3] + "AAA"} {
		if _, err := a.n.AddContact("x", link); err == nil {
			t.Errorf("link %.20q accepted", link)
		}
	}
	if _, err := a.n.AddContact("me", s.Link); err == nil {
		t.Error("own link accepted")
	}
	if cs, _ := a.n.Contacts(); len(cs) != 0 {
		t.Fatalf("bad links left %d contacts", len(cs))
	}
}

// Someone who only has our link can write first: the message shows up as
// a message request named after their card, apart from the contacts and
// conversations; accepted, it is a contact with that conversation.
func TestMessageRequest(t *testing.T) {
	a, b := startNode(t, newHome(t, "alice")), startNode(t, newHome(t, "bob"))
	defer a.stop(t)
	defer b.stop(t)
	sb, _ := b.n.Self()
	if _, err := a.n.AddContact("bob", sb.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hello stranger"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "message request", func() bool {
		rs, _ := b.n.Requests()
		return len(rs) == 1 && rs[0].Name == "alice" && len(rs[0].Messages) == 1
	})
	if rs, _ := b.n.Requests(); rs[0].Messages[0].Text != "hello stranger" {
		t.Fatalf("bob's request holds %+v", rs[0].Messages)
	}
	if cs, _ := b.n.Contacts(); len(cs) != 0 {
		t.Fatalf("a request is among the contacts: %+v", cs)
	}
	for _, err := range []error{
		func() error { _, err := b.n.Messages("alice", 0); return err }(),
		func() error {
			_, err := b.n.Send(context.Background(), SendRequest{To: "alice", Text: "x"})
			return err
		}(),
		b.n.MarkRead("alice"),
	} {
		if !errors.Is(err, ErrIsRequest) {
			t.Fatalf("a request used as a conversation: %v", err)
		}
	}
	if c, err := b.n.AcceptRequest("alice"); err != nil || c.Request {
		t.Fatalf("accept: %+v, %v", c, err)
	}
	if rs, _ := b.n.Requests(); len(rs) != 0 {
		t.Fatalf("requests after the accept: %+v", rs)
	}
	if got := texts(t, b.n, "alice", "in"); len(got) != 1 || got[0] != "hello stranger" {
		t.Fatalf("bob's conversation after the accept: %q", got)
	}
	if _, err := b.n.AcceptRequest("alice"); !errors.Is(err, ErrNotRequest) {
		t.Fatalf("accepting a contact: %v", err)
	}
	// Bob answers; Alice sees it.
	if _, err := b.n.Send(context.Background(), SendRequest{To: "alice", Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reply", func() bool { return len(texts(t, a.n, "bob", "in")) == 1 })
}

// Garbage on /hush/msg/1 gets rejected statuses or a reset, and the node
// keeps serving.
func TestGarbageOnMsgProtocol(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bInfo := peer.AddrInfo{ID: b.n.host.ID(), Addrs: b.n.host.Addrs()}
	if err := a.n.host.Connect(ctx, bInfo); err != nil {
		t.Fatal(err)
	}
	s, err := a.n.host.NewStream(ctx, bInfo.ID, ProtocolMsg)
	if err != nil {
		t.Fatal(err)
	}
	wire.WriteFrame(s, []byte("not a frame at all"))
	wire.WriteFrame(s, append([]byte{1}, make([]byte, 100)...))
	var st []byte
	for len(st) < 2 {
		f, err := wire.ReadFrame(s, 16)
		if err != nil {
			t.Fatal(err)
		}
		st = append(st, f...)
	}
	for _, v := range st {
		if v != ackRejected {
			t.Fatalf("garbage got status %d", v)
		}
	}
	// An oversized declared length resets the stream.
	s.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	if _, err := wire.ReadFrame(s, 16); err == nil {
		t.Fatal("stream survived an oversized frame")
	}
	s.Reset()
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "still works"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "message after garbage", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
}

func TestSecondNodeSameHome(t *testing.T) {
	home := newHome(t, "alice")
	a := startNode(t, home)
	defer a.stop(t)
	if _, err := New(Config{Home: home}); err == nil {
		t.Fatal("a second node opened the same home")
	}
}

func TestWrongPassphrase(t *testing.T) {
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: "alice", Passphrase: []byte("correct horse"), KDF: testKDF}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Home: home, Passphrase: []byte("wrong")}); err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	n, err := New(Config{Home: home, Passphrase: []byte("correct horse")})
	if err != nil {
		t.Fatalf("right passphrase after a wrong one: %v", err)
	}
	n.Close()
	if _, err := Init(home, InitOptions{Name: "again"}); !errors.Is(err, ErrIdentityExists) {
		t.Fatalf("second init: %v", err)
	}
}
