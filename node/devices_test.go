package node

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/crypto/session"
)

// rogueDevice is a device the account's key certified but that is not in
// the device list its contacts hold (a removed device, or one made by
// whoever stole the account key's output once).
func rogueDevice(t *testing.T, acc *identity.Account) *session.Local {
	t.Helper()
	now := time.Now()
	d, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := acc.Certify(d, now)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := pqxdh.NewPrekeyStore(d.SigningKey(), now)
	if err != nil {
		t.Fatal(err)
	}
	return &session.Local{Cert: cert, Device: d, Prekeys: pk}
}

// prekeyMessageFrom opens a session from local to the first device of
// to's card and returns the inner envelope of one text payload carrying
// withCard (nil: none).
func prekeyMessageFrom(t *testing.T, local *session.Local, to *card.Card, text string, withCard []byte) *envelope.Inner {
	t.Helper()
	dev := to.List.Device(to.Devices[0].ID)
	set := session.NewSet(dev)
	if err := set.Start(local, to.Devices[0].Bundle); err != nil {
		t.Fatal(err)
	}
	p := &payload{Type: ptText, ID: newMessageID(), Text: text, TimeMS: uint64(time.Now().UnixMilli()), Card: withCard}
	kind, body, err := set.Encrypt(local, p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	return &envelope.Inner{SenderAccount: local.Cert.Account(), SenderDevice: local.Cert.DeviceID(), Kind: kind, Body: body}
}

func cardOf(t *testing.T, r *running) *card.Card {
	t.Helper()
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	c, err := r.n.ownCardLocked(r.n.now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A device the contact's account certified but that the contact's device
// list (the one this node holds) does not name is refused, with or
// without the account's current card, and its refused first message
// changes nothing on disk (the prekey store is as before).
func TestUnlistedDeviceRefused(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	rogue := rogueDevice(t, a.n.account)
	aCard := cardOf(t, a) // lists only a's real device
	bCard := cardOf(t, b)
	prekeysBefore, err := b.n.tabs.identity.Get(idPrekeys)
	if err != nil {
		t.Fatal(err)
	}
	for _, withCard := range [][]byte{nil, aCard.Marshal()} {
		in := prekeyMessageFrom(t, rogue, bCard, "I am alice, believe me", withCard)
		if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackRejected {
			t.Fatalf("message from an unlisted device (card %v): status %d, want rejected", withCard != nil, st[0])
		}
	}
	for _, m := range texts(t, b.n, "alice", "in") {
		t.Fatalf("bob shows %q from an unlisted device as alice's", m)
	}
	prekeysAfter, err := b.n.tabs.identity.Get(idPrekeys)
	if err != nil {
		t.Fatal(err)
	}
	if string(prekeysBefore) != string(prekeysAfter) {
		t.Fatal("a refused first message changed the stored prekeys")
	}
	b.n.mu.Lock()
	_, kept := b.n.sets[rogue.Cert.DeviceID()]
	b.n.mu.Unlock()
	if kept {
		t.Fatal("a refused device keeps a session set in memory")
	}
}

// A stranger's first message (a message request) must carry a card that
// lists the device it comes from; one that does not is refused.
func TestRequestFromDeviceOutsideItsCardRefused(t *testing.T) {
	a, b := startNode(t, newHome(t, "alice")), startNode(t, newHome(t, "bob")) // strangers
	defer a.stop(t)
	defer b.stop(t)
	rogue := rogueDevice(t, a.n.account)
	aCard, bCard := cardOf(t, a), cardOf(t, b)
	in := prekeyMessageFrom(t, rogue, bCard, "hello from nowhere", aCard.Marshal())
	if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackRejected {
		t.Fatalf("request from a device its card does not list: status %d, want rejected", st[0])
	}
	if cs, err := b.n.Contacts(); err != nil || len(cs) != 0 {
		t.Fatalf("a refused request left contacts %v (%v)", cs, err)
	}
	// The listed device with the same card makes a message request.
	in = prekeyMessageFrom(t, a.n.local, bCard, "hello, it's alice", aCard.Marshal())
	if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
		t.Fatalf("request from the listed device: status %d, want ok", st[0])
	}
	if rs, err := b.n.Requests(); err != nil || len(rs) != 1 {
		t.Fatalf("requests after the request: %+v (%v)", rs, err)
	}
}

// A card whose device list adds a device lets that device in; a newer
// card whose list drops it ends its sessions (memory and store), and it
// is refused from then on, with or without the older card.
func TestDroppedDeviceSessionsEnd(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	acc := a.n.account
	rogue := rogueDevice(t, acc)
	aCard, bCard := cardOf(t, a), cardOf(t, b)
	now := time.Now()
	v2, err := acc.NewDeviceList(aCard.List, []*identity.DeviceCert{a.n.cert, rogue.Cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	rogueBundle, err := rogue.Prekeys.Bundle(now)
	if err != nil {
		t.Fatal(err)
	}
	rogueBundle.OneTime, rogueBundle.PQOneTime = nil, nil
	card2, err := card.New(acc, aCard.Name, v2, append(slices.Clone(aCard.Devices), card.Device{ID: rogue.Cert.DeviceID(), Bundle: rogueBundle}), now)
	if err != nil {
		t.Fatal(err)
	}
	in := prekeyMessageFrom(t, rogue, bCard, "from my new laptop", card2.Marshal())
	if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
		t.Fatalf("message from a device the newer card lists: status %d, want ok", st[0])
	}
	if got := texts(t, b.n, "alice", "in"); len(got) != 1 {
		t.Fatalf("bob has %q, want the new device's message", got)
	}
	// Bob writes to alice: one copy waits for the laptop (it lists no
	// route, so it stays queued).
	if _, err := b.n.Send(context.Background(), SendRequest{To: "alice", Text: "to both devices"}); err != nil {
		t.Fatal(err)
	}
	queued := func() (mem, stored int) {
		id := rogue.Cert.DeviceID()
		b.n.mu.Lock()
		if q := b.n.queues[id]; q != nil {
			mem = len(q.pending)
		}
		b.n.mu.Unlock()
		b.n.tabs.outbox.Scan(func(k, _ []byte) error {
			if bytes.HasPrefix(k, id[:]) {
				stored++
			}
			return nil
		})
		return mem, stored
	}
	if mem, stored := queued(); mem != 1 || stored != 1 {
		t.Fatalf("before the drop: %d queued, %d stored for the laptop, want 1 and 1", mem, stored)
	}
	v3, err := acc.NewDeviceList(v2, []*identity.DeviceCert{a.n.cert}, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	card3, err := card.New(acc, aCard.Name, v3, aCard.Devices, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	in = prekeyMessageFrom(t, a.n.local, bCard, "I removed the laptop", card3.Marshal())
	if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
		t.Fatalf("message carrying the list without the laptop: status %d", st[0])
	}
	id := rogue.Cert.DeviceID()
	b.n.mu.Lock()
	_, inMemory := b.n.sets[id]
	b.n.mu.Unlock()
	if _, err := b.n.tabs.sessions.Get(id[:]); err == nil || inMemory {
		t.Fatalf("the dropped device's session survives (memory %v, store %v)", inMemory, err == nil)
	}
	if mem, stored := queued(); mem != 0 || stored != 0 {
		t.Fatalf("after the drop: %d queued, %d stored for the laptop, want none", mem, stored)
	}
	for _, withCard := range [][]byte{nil, card2.Marshal()} {
		in = prekeyMessageFrom(t, rogue, bCard, "still me", withCard)
		if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackRejected {
			t.Fatalf("dropped device (old card %v): status %d, want rejected", withCard != nil, st[0])
		}
	}
	if got := texts(t, b.n, "alice", "in"); len(got) != 2 {
		t.Fatalf("bob has %q, want 2 messages", got)
	}
}
