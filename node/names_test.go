package node

import (
	"context"
	"errors"
	"testing"

	"github.com/hushnet/hush/crypto/envelope"
)

// Names the user types are kept in NFC and refused with invisible or
// text-direction characters; names that look alike share a key.
func TestNameRules(t *testing.T) {
	for _, bad := range []string{"", " bob", "bob\u200b", "\u202ebob", "bo\u2066b", "bob\x00", "bob\u00ad"} {
		if _, err := checkName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("checkName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if got, err := checkName("Jose\u0301"); err != nil || got != "Jos\u00e9" {
		t.Errorf("checkName keeps NFC: got %q, %v", got, err)
	}
	for _, alike := range []string{"Bob", "BOB", "ｂｏｂ", "b\u043eb", "\u0432ob", "b0b"} {
		if nameKey(alike) != nameKey("bob") {
			t.Errorf("%q does not count as looking like bob", alike)
		}
	}
	for _, other := range []string{"rob", "bobby", "b b"} {
		if nameKey(other) == nameKey("bob") {
			t.Errorf("%q counts as looking like bob", other)
		}
	}
	if got := cleanDisplayName("bob\u200b\u202e"); got != "bob" {
		t.Errorf("cleanDisplayName = %q, want bob", got)
	}
	if got := cleanDisplayName("\u200b"); got != "unnamed" {
		t.Errorf("cleanDisplayName of nothing visible = %q", got)
	}
}

// A name that only looks like a contact's is refused; a request whose
// card name looks like a contact's gets a name of its own; giving a
// contact's exact name to another account keeps the old conversation.
func TestLookalikeNamesAndKeyChangeKeepHistory(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	ctx := context.Background()
	if _, err := a.n.Send(ctx, SendRequest{To: "bob", Text: "our history"}); err != nil {
		t.Fatal(err)
	}
	other := newSelf(t)
	for _, alike := range []string{"Bob", "b\u043eb", "ｂｏｂ"} {
		if _, err := a.n.AddContact(alike, other.Link); !errors.Is(err, ErrContactExists) {
			t.Fatalf("AddContact(%q) beside bob: %v, want ErrContactExists", alike, err)
		}
	}
	c, err := a.n.AddContact("bob", other.Link)
	if err != nil || !c.KeyChanged {
		t.Fatalf("the name bob given to another account: %+v, %v", c, err)
	}
	old, err := a.n.Messages("bob (previous key)", 0)
	if err != nil || len(old) != 1 || old[0].Text != "our history" {
		t.Fatalf("the previous bob's conversation: %v, %v", old, err)
	}
	if ms, _ := a.n.Messages("bob", 0); len(ms) != 0 {
		t.Fatalf("the new bob shows the old conversation: %v", ms)
	}
	// A stranger whose card says "bob" with an invisible character.
	local, card := stranger(t, "bob\u200b")
	in := prekeyMessageFrom(t, local, cardOf(t, a), "it's me, bob", card.Marshal())
	if st := a.n.receive([]*envelope.Inner{in}, false); st[0] != ackOK {
		t.Fatalf("request: status %d", st[0])
	}
	rs, err := a.n.Requests()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d message requests, want 1", len(rs))
	}
	if c := rs[0]; c.Name == "bob" || nameKey(c.Name) == nameKey("bob") {
		t.Fatalf("a request is named %q, like the contact bob", c.Name)
	} else if c.Name != "bob (2)" {
		t.Fatalf("the request is named %q, want \"bob (2)\"", c.Name)
	}
}
