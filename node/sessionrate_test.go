package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/session"
)

// stranger makes an account with one device and its card, as anyone who
// holds a link can.
func stranger(t *testing.T, name string) (*session.Local, *card.Card) {
	t.Helper()
	now := time.Now()
	acc, err := identity.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	local := rogueDevice(t, acc)
	list, err := acc.NewDeviceList(nil, []*identity.DeviceCert{local.Cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	full, err := local.Prekeys.Bundle(now)
	if err != nil {
		t.Fatal(err)
	}
	full.OneTime, full.PQOneTime = nil, nil
	c, err := card.New(acc, name, list, []card.Device{{ID: local.Cert.DeviceID(), Bundle: full}}, now)
	if err != nil {
		t.Fatal(err)
	}
	return local, c
}

// Strangers together open at most strangerSessions new sessions an hour;
// past that their first messages are refused and change nothing stored,
// while a known contact, with its own budget, still gets through; one
// account opens at most accountSessions an hour.
func TestNewSessionsLimited(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	bCard := cardOf(t, b)
	first := func(local *session.Local, c *card.Card, text string) byte {
		t.Helper()
		return b.n.receive([]*envelope.Inner{prekeyMessageFrom(t, local, bCard, text, c.Marshal())}, false)[0]
	}
	for i := range strangerSessions {
		local, c := stranger(t, fmt.Sprintf("stranger %d", i))
		if st := first(local, c, "hello"); st != ackOK {
			t.Fatalf("stranger %d: status %d, want ok", i, st)
		}
	}
	prekeys, err := b.n.tabs.identity.Get(idPrekeys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		local, c := stranger(t, fmt.Sprintf("late stranger %d", i))
		if st := first(local, c, "hello"); st != ackRejected {
			t.Fatalf("stranger %d over the limit: status %d, want rejected", strangerSessions+i, st)
		}
	}
	if after, _ := b.n.tabs.identity.Get(idPrekeys); string(after) != string(prekeys) {
		t.Fatal("refused first messages changed the stored prekeys")
	}
	if cs, _ := b.n.Contacts(); len(cs) != 1 {
		t.Fatalf("%d contacts, want alice", len(cs))
	}
	if rs, _ := b.n.Requests(); len(rs) != strangerSessions {
		t.Fatalf("%d requests, want %d", len(rs), strangerSessions)
	}
	// Alice is known: her budget is her own.
	aCard := cardOf(t, a)
	for i := range accountSessions {
		if st := first(a.n.local, aCard, fmt.Sprintf("new session %d", i)); st != ackOK {
			t.Fatalf("alice's new session %d: status %d, want ok", i, st)
		}
	}
	if st := first(a.n.local, aCard, "one too many"); st != ackRejected {
		t.Fatalf("alice's new session over her limit: status %d, want rejected", st)
	}
}

// The budget refills at its size an hour.
func TestSessionRateRefills(t *testing.T) {
	r := newSessionRate()
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var acc identity.AccountID
	for range strangerSessions {
		if !r.allow(acc, true, now) {
			t.Fatal("burst refused")
		}
	}
	if r.allow(acc, true, now) {
		t.Fatal("past the burst allowed")
	}
	if !r.allow(acc, true, now.Add(time.Hour/strangerSessions)) {
		t.Fatal("not refilled after its share of an hour")
	}
	if r.allow(acc, true, now.Add(time.Hour/strangerSessions)) {
		t.Fatal("refilled more than one")
	}
	for range accountSessions {
		if !r.allow(acc, false, now) {
			t.Fatal("an account's burst refused while strangers are over theirs")
		}
	}
}
