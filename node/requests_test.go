package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/session"
)

// A flood of first messages from fresh identities (past the strangers'
// session budget, raised here so the request cap is what binds): at most
// MaxRequests requests are kept, the rest dropped and counted; one
// request writing on and on keeps at most MaxRequestMessages; a
// contact's conversation is untouched; a declined request is gone with
// its messages.
func TestRequestCaps(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	b.n.newSessions.mu.Lock()
	b.n.newSessions.strangerBurst = 10 * MaxRequests
	b.n.newSessions.mu.Unlock()
	bCard := cardOf(t, b)
	flood := MaxRequests + 30
	for i := range flood {
		local, c := stranger(t, fmt.Sprintf("stranger %d", i))
		in := prekeyMessageFrom(t, local, bCard, fmt.Sprintf("FLOOD-MARKER %d", i), c.Marshal())
		if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
			t.Fatalf("first message %d: status %d, want ok (dropped or kept, acknowledged alike)", i, st[0])
		}
	}
	rs, err := b.n.Requests()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != MaxRequests {
		t.Fatalf("%d requests kept, want %d", len(rs), MaxRequests)
	}
	if h := b.n.Health(); h.DroppedRequests != int64(flood-MaxRequests) {
		t.Fatalf("health counts %d dropped requests, want %d", h.DroppedRequests, flood-MaxRequests)
	}
	// The contact's conversation goes on.
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "still here"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's message", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
	// One request writes on: its messages are capped.
	if err := b.n.DeclineRequest(rs[0].Name); err != nil {
		t.Fatal(err)
	}
	local, c := stranger(t, "chatty")
	set := newTestSender(t, local, bCard)
	for i := range MaxRequestMessages + 10 {
		var withCard []byte
		if i == 0 {
			withCard = c.Marshal()
		}
		if st := b.n.receive([]*envelope.Inner{set.text(t, fmt.Sprintf("chatty %d", i), withCard)}, false); st[0] != ackOK {
			t.Fatalf("chatty message %d: status %d", i, st[0])
		}
	}
	rs, _ = b.n.Requests()
	var chatty *Request
	for i := range rs {
		if rs[i].Name == "chatty" {
			chatty = &rs[i]
		}
	}
	if chatty == nil || len(chatty.Messages) != MaxRequestMessages {
		t.Fatalf("the chatty request: %+v", chatty)
	}
	if h := b.n.Health(); h.DroppedRequestMessages != 10 {
		t.Fatalf("health counts %d dropped request messages, want 10", h.DroppedRequestMessages)
	}
	// Declined: gone, with its messages.
	if err := b.n.DeclineRequest("chatty"); err != nil {
		t.Fatal(err)
	}
	rs, _ = b.n.Requests()
	for _, r := range rs {
		if r.Name == "chatty" || strings.Contains(r.Name, "chatty") {
			t.Fatal("a declined request is still listed")
		}
	}
	if err := b.n.DeclineRequest("alice"); err == nil {
		t.Fatal("declining a contact worked")
	}
	// Blocked: the request goes, and what its account sends next is
	// neither a request nor stored.
	pest, pc := stranger(t, "pest")
	ps := newTestSender(t, pest, bCard)
	if st := b.n.receive([]*envelope.Inner{ps.text(t, "PEST-MARKER 1", pc.Marshal())}, false); st[0] != ackOK {
		t.Fatalf("pest's first message: status %d", st[0])
	}
	if err := b.n.BlockRequest("pest"); err != nil {
		t.Fatal(err)
	}
	if st := b.n.receive([]*envelope.Inner{ps.text(t, "PEST-MARKER 2", nil)}, false); st[0] != ackOK {
		t.Fatalf("pest's message after the block: status %d, want ok (it learns nothing)", st[0])
	}
	rs, _ = b.n.Requests()
	for _, r := range rs {
		if r.Name == "pest" {
			t.Fatal("a blocked request is still listed")
		}
	}
	if err := b.n.BlockRequest("alice"); !errors.Is(err, ErrNotRequest) {
		t.Fatalf("blocking a contact as a request: %v", err)
	}
}

// testSender is a stranger's session with a node's device, for texts
// made by hand.
type testSender struct {
	local *session.Local
	set   *session.Set
}

func newTestSender(t *testing.T, local *session.Local, to *card.Card) *testSender {
	t.Helper()
	set := session.NewSet(to.List.Device(to.Devices[0].ID))
	if err := set.Start(local, to.Devices[0].Bundle); err != nil {
		t.Fatal(err)
	}
	return &testSender{local: local, set: set}
}

// text is the inner envelope of one text payload (carrying withCard, if
// set).
func (s *testSender) text(t *testing.T, text string, withCard []byte) *envelope.Inner {
	t.Helper()
	p := &payload{Type: ptText, ID: newMessageID(), Text: text, TimeMS: uint64(time.Now().UnixMilli()), Card: withCard}
	kind, body, err := s.set.Encrypt(s.local, p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	return &envelope.Inner{SenderAccount: s.local.Cert.Account(), SenderDevice: s.local.Cert.DeviceID(), Kind: kind, Body: body}
}
