package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
)

// writePicture writes a w×h picture (PNG or JPEG) with some detail, so
// that its encoding is not trivially small.
func writePicture(t *testing.T, w, h int, asPNG bool) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), uint8((x ^ y) * 3), 0xff})
		}
	}
	var buf bytes.Buffer
	path := filepath.Join(t.TempDir(), "pic")
	if asPNG {
		png.Encode(&buf, img)
	} else {
		jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func jpegOf(t *testing.T, w, h, quality int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 31), uint8(y * 17), uint8(x * y), 0xff})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCheckAvatar(t *testing.T) {
	if err := checkAvatar(jpegOf(t, 96, 64, 80)); err != nil {
		t.Fatalf("a 96×64 JPEG: %v", err)
	}
	big := jpegOf(t, 96, 96, 100)
	big = append(big, make([]byte, MaxAvatarSize)...) // trailing bytes past the limit
	for name, b := range map[string][]byte{
		"too many pixels": jpegOf(t, 97, 40, 80),
		"too many bytes":  big,
		"not a JPEG":      []byte("\x89PNG\r\n\x1a\n...."),
		"truncated":       jpegOf(t, 90, 90, 80)[:200],
		"empty":           nil,
	} {
		if checkAvatar(b) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMakeAvatar(t *testing.T) {
	for _, asPNG := range []bool{true, false} {
		b, err := makeAvatar(writePicture(t, 1200, 800, asPNG))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkAvatar(b); err != nil {
			t.Fatal(err)
		}
		cfg, _ := jpeg.DecodeConfig(bytes.NewReader(b))
		if cfg.Width != AvatarSide || cfg.Height != 64 {
			t.Fatalf("avatar of %d×%d", cfg.Width, cfg.Height)
		}
	}
	text := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(text, []byte("not a picture at all"), 0o600)
	if _, err := makeAvatar(text); err == nil {
		t.Fatal("a text file made an avatar")
	}
	if _, err := makeAvatar("relative.png"); err == nil {
		t.Fatal("a relative path was read")
	}
}

// A profile payload (type 19) parses; a type past the last one (group
// timer, 23: a later version's) does not.
func TestProfilePayloadType(t *testing.T) {
	p := &payload{Type: ptProfile, ID: newMessageID(), TimeMS: 5, Text: "Alice", Data: jpegOf(t, 10, 10, 50)}
	q, err := parsePayload(p.marshal())
	if err != nil || q.Type != ptProfile || q.Text != "Alice" || !bytes.Equal(q.Data, p.Data) {
		t.Fatalf("parse: %+v %v", q, err)
	}
	p.Type = ptGroupTimer + 1
	if _, err := parsePayload(p.marshal()); err == nil {
		t.Fatal("type 24 parsed")
	}
}

// pairByRequest starts alice and bob; alice adds bob (naming him), and
// bob accepts her message request: his contact for her bears the name
// her card gave, which her profile may change.
func pairByRequest(t *testing.T) (a, b *running) {
	t.Helper()
	a, b = startNode(t, newHome(t, "alice")), startNode(t, newHome(t, "bob"))
	sb, _ := b.n.Self()
	if _, err := a.n.AddContact("bob", sb.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	var rs []Request
	waitFor(t, "alice's request at bob", func() bool { rs, _ = b.n.Requests(); return len(rs) == 1 })
	if _, err := b.n.AcceptRequest(rs[0].Name); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// Alice sets her profile: Bob's contact (named by her card when he
// accepted her request) takes her name and avatar; a local rename at
// Bob's wins over her later names. Alice's contact bob, named by her at
// contact add, keeps that name when bob's profile changes.
func TestProfileTravelsAndLocalRenameWins(t *testing.T) {
	a, b := pairByRequest(t)
	defer a.stop(t)
	defer b.stop(t)
	if _, err := b.n.SetProfile(ProfileRequest{Name: "Robert"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's profile at alice", func() bool {
		cs, _ := a.n.Contacts()
		return len(cs) == 1 && cs[0].Profile == "Robert"
	})
	if cs, _ := a.n.Contacts(); cs[0].Name != "bob" {
		t.Fatalf("a name chosen at contact add became %q", cs[0].Name)
	}
	self, err := a.n.SetProfile(ProfileRequest{Name: "Alice Liddell", AvatarPath: writePicture(t, 400, 400, true)})
	if err != nil {
		t.Fatal(err)
	}
	if self.Name != "Alice Liddell" || checkAvatar(self.Avatar) != nil {
		t.Fatalf("Self: %q, avatar %d bytes", self.Name, len(self.Avatar))
	}
	waitFor(t, "alice's profile at bob", func() bool {
		cs, _ := b.n.Contacts()
		return len(cs) == 1 && cs[0].Name == "Alice Liddell"
	})
	c := contactNamed(t, b.n, "Alice Liddell")
	if c.Profile != "Alice Liddell" || !bytes.Equal(c.Avatar, self.Avatar) {
		t.Fatalf("bob's contact: profile %q, avatar %d bytes", c.Profile, len(c.Avatar))
	}
	// The conversation follows the name.
	if _, err := b.n.Messages("Alice Liddell", 0); err != nil {
		t.Fatal(err)
	}

	if _, err := b.n.RenameContact("Alice Liddell", "ally"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.SetProfile(ProfileRequest{Name: "Alicia", RemoveAvatar: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's second profile at bob", func() bool {
		cs, _ := b.n.Contacts()
		return len(cs) == 1 && cs[0].Profile == "Alicia"
	})
	c = contactNamed(t, b.n, "ally")
	if c.Avatar != nil {
		t.Fatal("the avatar removed at alice's is still shown")
	}
	// Bob's own profile name, and the card alice gives new contacts.
	s, _ := a.n.Self()
	if s.Name != "Alicia" || s.Avatar != nil {
		t.Fatalf("alice's Self: %q %d", s.Name, len(s.Avatar))
	}
}

// A profile name another contact has (or one like it) is made free.
func TestProfileNameLookalike(t *testing.T) {
	a, b := pairByRequest(t)
	defer a.stop(t)
	defer b.stop(t)
	carol := startNode(t, newHome(t, "carol"))
	defer carol.stop(t)
	sc, _ := carol.n.Self()
	if _, err := b.n.AddContact("Carol", sc.Link); err != nil {
		t.Fatal(err)
	}
	if _, err := a.n.SetProfile(ProfileRequest{Name: "carol"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's profile at bob", func() bool {
		cs, _ := b.n.Contacts()
		for _, c := range cs {
			if c.Profile == "carol" {
				return true
			}
		}
		return false
	})
	cs, _ := b.n.Contacts()
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "Carol,carol (2)" {
		t.Fatalf("names: %q", names)
	}
}

func TestRenameAndVerifyScanned(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	if _, err := a.n.RenameContact("bob", "alice"); err != nil { // a name no contact has
		t.Fatal(err)
	}
	if _, err := a.n.RenameContact("alice", "nobody\u200b"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("an invisible character: %v", err)
	}
	if _, err := a.n.RenameContact("bob", "x"); !errors.Is(err, ErrUnknownContact) {
		t.Fatalf("the old name: %v", err)
	}
	sn, err := a.n.SafetyNumber("alice")
	if err != nil {
		t.Fatal(err)
	}
	wrong := []byte(strings.ReplaceAll(sn, " ", ""))
	wrong[59] = '0' + (wrong[59]-'0'+1)%10
	if _, err := a.n.VerifyScanned("alice", string(wrong)); !errors.Is(err, ErrSafetyMismatch) {
		t.Fatalf("a wrong number: %v", err)
	}
	if _, err := a.n.VerifyScanned("alice", sn+"x"); !errors.Is(err, ErrSafetyMismatch) {
		t.Fatalf("a number with a letter: %v", err)
	}
	if contactNamed(t, a.n, "alice").Verified {
		t.Fatal("verified by a wrong number")
	}
	c, err := a.n.VerifyScanned("alice", " "+sn+"\n")
	if err != nil || !c.Verified {
		t.Fatalf("the right number: %+v %v", c, err)
	}
}

// queueEmpty reports whether n has nothing queued for any device.
func queueEmpty(n *Node) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, q := range n.queues {
		if len(q.pending) > 0 {
			return false
		}
	}
	return true
}

// A profile from an account that is no contact, even one whose card the
// node holds as a group member's, is taken off the wire and kept
// nowhere: no message request; nor does a payload of a later type from
// such an account stop the node (versions before type 17 dereferenced
// the payload that did not parse there).
func TestProfileFromNonContact(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	b := startNode(t, newHome(t, "bob"))
	defer b.stop(t)
	sa, _ := a.n.Self()
	sb, _ := b.n.Self()
	if _, err := a.n.AddContact("bob", sb.Link); err != nil {
		t.Fatal(err)
	}
	ca, err := card.ParseLink(sa.Link, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.n.mu.Lock()
	b.n.peers[ca.Account()] = ca // as if alice were in one of bob's groups
	b.n.mu.Unlock()
	if _, err := a.n.SetProfile(ProfileRequest{Name: "Alice"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's profile taken", func() bool { return queueEmpty(a.n) })
	if cs, _ := b.n.Contacts(); len(cs) != 0 {
		t.Fatalf("a profile made a contact: %+v", cs)
	}
	if rs, _ := b.n.Requests(); len(rs) != 0 {
		t.Fatalf("a profile made a request: %+v", rs)
	}
	// A later version's payload type, from the same account.
	a.n.mu.Lock()
	now := time.Now()
	tx := a.n.newTxnLocked()
	bob := a.n.contacts[identity.AccountID(mustHex(t, sb.Account))]
	err = a.n.encryptToCardLocked(tx, bob.card, "bob", nil, &payload{Type: 99, ID: newMessageID(), TimeMS: uint64(now.UnixMilli())}, false, now)
	if err == nil {
		a.n.saveSeqLocked(tx)
		err = a.n.commitReleasingLock(tx)
	}
	a.n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unknown payload taken", func() bool { return queueEmpty(a.n) })
	// Bob still runs: a text from alice is a message request.
	if _, err := a.n.Send(context.Background(), SendRequest{To: "bob", Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's request at bob", func() bool {
		rs, _ := b.n.Requests()
		return len(rs) == 1
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
