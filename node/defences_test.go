package node

import (
	"testing"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/session"
)

// A text is stored once per message ID, whatever the number of paths:
// the same payload arriving again in another ratchet message (a resend
// on a new session after a restart, or the relay and the direct path
// both delivering) is acknowledged and not shown twice. The ratchet's
// own replay check cannot catch this: the two ciphertexts differ.
func TestSameMessageIDStoredOnce(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	bCard := cardOf(t, b)
	p := &payload{Type: ptText, ID: newMessageID(), Text: "only once", TimeMS: 1}
	for i := range 2 {
		set := session.NewSet(bCard.List.Device(bCard.Devices[0].ID))
		if err := set.Start(a.n.local, bCard.Devices[0].Bundle); err != nil {
			t.Fatal(err)
		}
		kind, body, err := set.Encrypt(a.n.local, p.marshal())
		if err != nil {
			t.Fatal(err)
		}
		in := &envelope.Inner{SenderAccount: a.n.cert.Account(), SenderDevice: a.n.cert.DeviceID(), Kind: kind, Body: body}
		if st := b.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
			t.Fatalf("path %d: status %d, want ok", i, st[0])
		}
	}
	if got := texts(t, b.n, "alice", "in"); len(got) != 1 {
		t.Fatalf("bob shows %q, want the message once", got)
	}
}
