package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/node/shortlink"
	"github.com/hushnet/hush/relay"
)

// startNodeQuiet starts a node in a fresh home, a stranger to everyone.
func startNodeQuiet(t *testing.T) *running {
	t.Helper()
	return startNode(t, newHome(t, "carol"))
}

// The invitation token travels as extension tag 4 and comes back; a
// payload without one, or with a token of another size, has none.
func TestPayloadInvite(t *testing.T) {
	p := &payload{Type: ptText, ID: newMessageID(), Text: "hello", Invite: [16]byte{1, 2, 3}}
	got, err := parsePayload(p.marshal())
	if err != nil || got.Invite != p.Invite || got.Text != "hello" {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	p.Invite = [16]byte{}
	if got, err := parsePayload(p.marshal()); err != nil || got.Invite != ([16]byte{}) {
		t.Fatalf("without a token: %+v, %v", got, err)
	}
}

// An address: alice publishes it and goes offline; bob adds her by the
// short link (from the relay) and writes; alice, back, has a request,
// and answers once she accepts it. The relay's store holds neither her
// name nor her card in the clear. Rotating the address kills the old
// link; deleting the new one kills it too; bob stays a contact.
func TestAddressShortLink(t *testing.T) {
	relayDir := t.TempDir()
	addr := startRelayIn(t, relayCfg(), relayDir)
	aHome := newHome(t, "alice")
	a := startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	waitMailbox(t, a)
	ctx := context.Background()
	if _, err := a.n.Address(); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("an address before any: %v", err)
	}
	l, err := a.n.CreateAddress(ctx, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Link) > shortlink.MaxLength || !strings.HasPrefix(l.Link, shortlink.Prefix) || l.Kind != "address" {
		t.Fatalf("address %+v", l)
	}
	if _, err := a.n.CreateAddress(ctx, false, ""); !errors.Is(err, ErrAddressExists) {
		t.Fatalf("a second address: %v", err)
	}
	a.stop(t)

	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	c, err := b.n.AddContact("alice", l.Link)
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != a.n.cert.Account().Hex() {
		t.Fatal("the short link gave another account")
	}
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "found your address"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's message in alice's mailbox", func() bool {
		ms, _ := b.n.Messages("alice", 0)
		return len(ms) == 1 && ms[0].State == StateSent
	})
	a = startNodeCfg(t, Config{Home: aHome, Relays: []string{addr}})
	defer a.stop(t)
	waitFor(t, "bob's request", func() bool {
		rs, _ := a.n.Requests()
		return len(rs) == 1 && len(rs[0].Messages) == 1 && rs[0].Messages[0].Text == "found your address"
	})
	if _, err := a.n.AcceptRequest("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "hello bob"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's answer", func() bool { return len(texts(t, b.n, "alice", "in")) == 1 })
	noMarker(t, relayDir, "alice")
	self, _ := a.n.Self()
	noMarker(t, relayDir, self.Account)

	// After the restart alice's card changed (a new port): the links
	// loop puts the record again, and the link gives the current card.
	carol := startNode(t, newHome(t, "carol"))
	defer carol.stop(t)
	waitFor(t, "the address's record refreshed with alice's new card", func() bool {
		got, _, err := carol.n.resolveShortLink(ctx, l.Link)
		return err == nil && string(got.Marshal()) == string(cardOf(t, a).Marshal())
	})

	// Rotate: the old link is gone for anyone new; the new one works.
	l2, err := a.n.CreateAddress(ctx, true, "")
	if err != nil || l2.Link == l.Link {
		t.Fatalf("rotate: %+v, %v", l2, err)
	}
	if _, err := carol.n.AddContact("alice", l.Link); !errors.Is(err, ErrLinkGone) {
		t.Fatalf("the rotated-away link: %v", err)
	}
	if err := a.n.DeleteAddress(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.AddContact("alice", l2.Link); !errors.Is(err, ErrLinkGone) {
		t.Fatalf("the deleted address: %v", err)
	}
	if cs, _ := a.n.Contacts(); len(cs) != 1 || cs[0].Name != "bob" {
		t.Fatalf("alice's contacts after the address went: %+v", cs)
	}
}

// A one-time invitation: the first to use it becomes a contact at once,
// named by the label; the link then stops working (a clear error).
func TestInvitationOnce(t *testing.T) {
	addr := startRelay(t, relayCfg())
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	waitMailbox(t, a)
	ctx := context.Background()
	inv, err := a.n.CreateInvite(ctx, "bob from work", "txn-1")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.n.CreateInvite(ctx, "bob from work", "txn-1"); err != nil || again != inv {
		t.Fatalf("a retry with the same txnId: %+v, %v; first %+v", again, err, inv)
	}
	if is, _ := a.n.Invites(); len(is) != 1 {
		t.Fatalf("a retried invitation made %d", len(is))
	}
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	if _, err := b.n.AddContact("alice", inv.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.Send(ctx, SendRequest{To: "alice", Text: "it's bob"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob as alice's contact", func() bool {
		cs, _ := a.n.Contacts()
		return len(cs) == 1 && cs[0].Name == "bob from work" && len(texts(t, a.n, "bob from work", "in")) == 1
	})
	if rs, _ := a.n.Requests(); len(rs) != 0 {
		t.Fatalf("an invitation's user is a request: %+v", rs)
	}
	waitFor(t, "the invitation used and its record deleted", func() bool {
		is, _ := a.n.Invites()
		if len(is) != 1 || !is[0].Used {
			return false
		}
		c := startNodeQuiet(t)
		defer c.stop(t)
		_, err := c.n.AddContact("alice", inv.Link)
		return errors.Is(err, ErrLinkGone)
	})
}

// Bad short links (issue 17), each a clear error that adds nothing: an
// unknown ID (a wrong secret: its key and ID both differ), a relay that
// answers with another link's record (it fails the link's key), a
// relay named by a wrong key, a relay that cannot be reached, a
// malformed link; and no relay, no short links.
func TestShortLinkBadInput(t *testing.T) {
	addr := startRelay(t, relayCfg())
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	ctx := context.Background()
	l, err := a.n.CreateAddress(ctx, false, "")
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	parsed, _ := shortlink.Parse(l.Link)
	unknown := *parsed
	unknown.Secret[0] ^= 1 // another ID: the relay has nothing
	unknownText, _ := unknown.String()
	if _, err := b.n.AddContact("alice", unknownText); !errors.Is(err, ErrLinkGone) {
		t.Fatalf("an unknown ID: %v", err)
	}
	// Same ID, another key: made by sealing under a link whose ID
	// collides is not possible, so the record is served to a link that
	// shares the relay but holds a record from another link's secret.
	if _, err := parsed.Open([]byte("not a record at all, just bytes the relay might send back")); !errors.Is(err, shortlink.ErrRecord) {
		t.Fatalf("a record of another link: %v", err)
	}
	// A relay that answers with another link's record: the address's
	// sealed record put (by anyone: a first put of an ID is open) under
	// the ID of a link that did not seal it.
	other, err := shortlink.New(parsed.RelayAddr, parsed.RelayKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := parsed.Seal(&shortlink.Record{Kind: shortlink.KindAddress, Card: cardOf(t, a).Marshal()})
	if err != nil {
		t.Fatal(err)
	}
	ri, _ := relayOfLink(parsed)
	_, owner, _ := ed25519.GenerateKey(rand.Reader)
	err = b.n.withAnonHost(ctx, ri, func(ctx context.Context, h host.Host) error {
		return b.n.relays.PutLink(ctx, h, ri, owner, relay.LinkID(other.ID()), 1, sealed)
	})
	if err != nil {
		t.Fatal(err)
	}
	otherText, _ := other.String()
	if _, err := b.n.AddContact("alice", otherText); !errors.Is(err, shortlink.ErrRecord) || !strings.Contains(err.Error(), "does not belong to this link") {
		t.Fatalf("a relay answering with another link's record: %v", err)
	}
	// A link naming its relay by a wrong key: the relay cannot be
	// reached as that peer.
	wrongKey := *parsed
	wrongPub, _, _ := ed25519.GenerateKey(rand.Reader)
	copy(wrongKey.RelayKey[:], wrongPub)
	wrongKeyText, _ := wrongKey.String()
	if _, err := b.n.AddContact("alice", wrongKeyText); !errors.Is(err, ErrLinkRelay) {
		t.Fatalf("a link naming its relay by a wrong key: %v", err)
	}
	down := *parsed
	down.RelayAddr = ma.StringCast("/ip4/127.0.0.1/tcp/1")
	downText, _ := down.String()
	if _, err := b.n.AddContact("alice", downText); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Fatalf("an unreachable relay: %v", err)
	}
	if _, err := b.n.AddContact("alice", "HUSH:NOTALINK"); err == nil {
		t.Fatal("a malformed short link was taken")
	}
	if cs, _ := b.n.Contacts(); len(cs) != 0 {
		t.Fatalf("bad links left contacts: %+v", cs)
	}
	// No relay: no short links.
	if _, err := b.n.CreateInvite(ctx, "", ""); !errors.Is(err, ErrNoRelay) {
		t.Fatalf("an invitation without a relay: %v", err)
	}
}
