package node

import "testing"

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
