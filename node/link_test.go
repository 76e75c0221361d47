package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	msync "github.com/hushnet/hush/sync"
)

// linkDevice links a new home to r's account through the real link
// protocol and returns the new home (not running).
func linkDevice(t testing.TB, r *running, name string) string {
	t.Helper()
	offer, err := r.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), name)
	var last HistoryProgress
	self, err := JoinDevice(context.Background(), home, JoinOptions{Code: offer.Code, Name: name, KDF: testKDF,
		Progress: func(p HistoryProgress) { last = p }})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if !last.Complete {
		t.Fatalf("join returned before the transfer completed: %+v", last)
	}
	if self.Account != r.n.cert.Account().Hex() {
		t.Fatal("joined another account")
	}
	return home
}

// waitEntry waits until a knows b's card entry (b published it once
// running), so that a can encrypt to b.
func waitEntry(t testing.TB, a, b *running) {
	t.Helper()
	waitFor(t, "the other device's entry", func() bool {
		a.n.mu.Lock()
		defer a.n.mu.Unlock()
		return a.n.siblingsLocked().Device(b.n.cert.DeviceID()) != nil
	})
}

// typo changes one letter in the middle of a code's text.
func typo(code string) string {
	i := len(code) / 2
	c := byte('A')
	if code[i] == 'A' {
		c = 'B'
	}
	return code[:i] + string(c) + code[i+1:]
}

// offerCode makes a link code on r and returns it parsed.
func offerCode(t testing.TB, r *running) *msync.LinkCode {
	t.Helper()
	offer, err := r.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	code, err := msync.ParseCode(offer.Code, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func deviceNames(t testing.TB, n *Node) map[string]bool {
	t.Helper()
	ds, err := n.Devices()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range ds {
		out[d.Name] = d.This
	}
	return out
}

// A new identity's device is named as the user says, else after the
// machine; a name that is no valid name is refused before anything is
// written.
func TestInitDeviceName(t *testing.T) {
	for _, tc := range []struct{ give, want string }{{"laptop", "laptop"}, {"", DefaultDeviceName()}} {
		home := filepath.Join(t.TempDir(), "home")
		if _, err := Init(home, InitOptions{Name: "alice", DeviceName: tc.give, KDF: testKDF}); err != nil {
			t.Fatal(err)
		}
		r := startNode(t, home)
		got := deviceNames(t, r.n)
		r.stop(t)
		if len(got) != 1 || !got[tc.want] {
			t.Errorf("device name %q: listed %v, want %q", tc.give, got, tc.want)
		}
	}
	home := filepath.Join(t.TempDir(), "home")
	if _, err := Init(home, InitOptions{Name: "alice", DeviceName: " bad\u202e", KDF: testKDF}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("a bad device name: %v", err)
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Fatalf("a refused init left %s behind: %v", home, err)
	}
}

// A device links with a code: both devices list both, the new one has
// the account's name and contacts, the code works once only, and the
// laptop learns the phone's route once the phone runs.
func TestLinkDevice(t *testing.T) {
	a, b := pair(t)
	defer a.stop(t)
	defer b.stop(t)
	befriend(t, a, b)
	offer, err := a.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	phoneHome := filepath.Join(t.TempDir(), "phone")
	if _, err := JoinDevice(context.Background(), phoneHome, JoinOptions{Code: offer.Code, Name: "phone", KDF: testKDF}); err != nil {
		t.Fatal(err)
	}
	// The code is spent.
	if _, err := JoinDevice(context.Background(), filepath.Join(t.TempDir(), "thief"), JoinOptions{Code: offer.Code, Name: "x", KDF: testKDF}); !errors.Is(err, msync.ErrRefused) {
		t.Fatalf("second use of a code: %v", err)
	}
	// A home with an identity is refused.
	if _, err := JoinDevice(context.Background(), newHome(t, "other"), JoinOptions{Code: offer.Code, KDF: testKDF}); !errors.Is(err, ErrIdentityExists) {
		t.Fatalf("join on a home with an account: %v", err)
	}
	phone := startNode(t, phoneHome)
	defer phone.stop(t)
	if got := deviceNames(t, a.n); len(got) != 2 || got["phone"] || !got[DefaultDeviceName()] {
		t.Fatalf("laptop lists %v", got)
	}
	if got := deviceNames(t, phone.n); len(got) != 2 || !got["phone"] {
		t.Fatalf("phone lists %v", got)
	}
	self, err := phone.n.Self()
	if err != nil {
		t.Fatal(err)
	}
	if self.Name != a.n.profile.Name || self.History != nil {
		t.Fatalf("phone self: name %q history %+v", self.Name, self.History)
	}
	waitEntry(t, a, phone)
}

// Bad codes get clear errors and change nothing.
func TestJoinBadCodes(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	code := offerCode(t, a)
	good, _ := code.Text()
	code.Secret[0] ^= 1 // a wrong code that parses
	wrong, _ := code.Text()
	for _, tc := range []struct {
		code string
		want error
	}{
		{"HUSH-LINK:AAAA", msync.ErrCodeMalformed},
		{typo(good), msync.ErrCodeChecksum},
		{wrong, msync.ErrRefused},
	} {
		home := filepath.Join(t.TempDir(), "new")
		_, err := JoinDevice(context.Background(), home, JoinOptions{Code: tc.code, Name: "x", KDF: testKDF})
		if !errors.Is(err, tc.want) {
			t.Errorf("code %.20s…: %v, want %v", tc.code, err, tc.want)
		}
	}
	// The wrong code did not spend the offer.
	linkDevice(t, a, "phone")
	if got := deviceNames(t, a.n); len(got) != 2 {
		t.Fatalf("devices %v", got)
	}
}

// convo is a conversation as text lines "dir text state-class", for
// comparing two devices' views.
func convo(t testing.TB, n *Node, contact string) []string {
	t.Helper()
	msgs, err := n.Messages(contact, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		read := ""
		if m.Direction == "in" && m.State == StateRead {
			read = " (read)"
		}
		out = append(out, m.ID+" "+m.Direction+" "+m.Text+read)
	}
	return out
}

func sameConvo(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Alice has a laptop and a phone. Bob's message shows on both; a reply
// from the phone shows on the laptop and reaches Bob as Alice; reading
// on the laptop marks read on the phone.
func TestTwoDevicesOneConversation(t *testing.T) {
	laptop, bob := pair(t)
	defer laptop.stop(t)
	defer bob.stop(t)
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	waitEntry(t, laptop, phone)

	ctx := context.Background()
	hi, err := bob.n.Send(ctx, SendRequest{To: "alice", Text: "hi alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*running{laptop, phone} {
		waitFor(t, "bob's message on both devices", func() bool {
			_, err := d.n.WaitState(ctx, hi.ID, StateReceived)
			return err == nil
		})
	}
	reply, err := phone.n.Send(ctx, SendRequest{To: "bob", Kind: KindReply, Target: hi.ID, Text: "hi from my phone"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the phone's reply on bob's side", func() bool { return len(texts(t, bob.n, "alice", "in")) == 1 })
	waitFor(t, "the phone's reply on the laptop", func() bool { return len(texts(t, laptop.n, "bob", "out")) == 1 })
	if got := texts(t, bob.n, "alice", "in"); got[0] != "hi from my phone" {
		t.Fatalf("bob got %q", got)
	}
	if cs, _ := bob.n.Contacts(); len(cs) != 1 || cs[0].Devices != 2 {
		t.Fatalf("bob's contacts: %+v", cs)
	}
	out := find(t, laptop.n, "bob", reply.ID)
	if out.ReplyTo != hi.ID || out.Direction != "out" {
		t.Fatalf("the laptop shows the reply as %+v", out)
	}
	if err := laptop.n.MarkRead("bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the read marker on the phone", func() bool {
		return find(t, phone.n, "bob", hi.ID).State == StateRead
	})
	waitFor(t, "both devices to show the same conversation", func() bool {
		return sameConvo(convo(t, laptop.n, "bob"), convo(t, phone.n, "bob"))
	})
}

// Revoking the phone: the laptop lists one device, bob learns the new
// list at once (without a message from alice that shows), ends his
// session with the phone, and what he sends next is encrypted to the
// laptop only.
func TestRevokeDevice(t *testing.T) {
	laptop, bob := pair(t)
	defer laptop.stop(t)
	defer bob.stop(t)
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	phoneID := phone.n.cert.DeviceID()
	ctx := context.Background()
	if _, err := phone.n.Send(ctx, SendRequest{To: "bob", Text: "from the phone"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob to hold a session with the phone", func() bool {
		bob.n.mu.Lock()
		defer bob.n.mu.Unlock()
		return bob.n.sets[phoneID] != nil && bob.n.sets[phoneID].HasSession()
	})
	if err := laptop.n.RevokeDevice(laptop.n.cert.DeviceID().Hex()); !errors.Is(err, ErrRevokeSelf) {
		t.Fatalf("revoking itself: %v", err)
	}
	if err := laptop.n.RevokeDevice("00000000"); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("revoking an unknown device: %v", err)
	}
	if err := laptop.n.RevokeDevice(phoneID.Hex()[:12]); err != nil {
		t.Fatal(err)
	}
	if got := deviceNames(t, laptop.n); len(got) != 1 {
		t.Fatalf("after revoking, the laptop lists %v", got)
	}
	waitFor(t, "the phone to learn it was revoked and delete the account key", func() bool {
		phone.n.mu.Lock()
		defer phone.n.mu.Unlock()
		_, err := phone.n.tabs.identity.Get(idAccount)
		return phone.n.own.revoked && phone.n.account == nil && errors.Is(err, store.ErrNotFound)
	})
	if _, err := phone.n.Send(ctx, SendRequest{To: "bob", Text: "still here?"}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("send from the revoked phone: %v", err)
	}
	waitFor(t, "bob to drop the phone", func() bool {
		bob.n.mu.Lock()
		defer bob.n.mu.Unlock()
		c := bob.n.contacts[laptop.n.cert.Account()]
		return c.card.List.Len() == 1 && bob.n.sets[phoneID] == nil
	})
	m, err := bob.n.Send(ctx, SendRequest{To: "alice", Text: "after the revocation"})
	if err != nil {
		t.Fatal(err)
	}
	bob.n.mu.Lock()
	for id, q := range bob.n.queues {
		if id == phoneID && len(q.pending) > 0 {
			t.Error("bob queued a message for the revoked phone")
		}
	}
	bob.n.mu.Unlock()
	waitFor(t, "bob's message on the laptop", func() bool {
		_, err := laptop.n.WaitState(ctx, m.ID, StateReceived)
		return err == nil
	})
	if _, err := phone.n.WaitState(ctx, m.ID, StateReceived); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("the revoked phone has bob's message: %v", err)
	}
}

// `device join --history-days N` transfers only the messages of the last
// N days: a message alice sent five days ago (by her clock) stays on the
// laptop, yesterday's and today's come to the phone, and the contact
// comes whatever its age.
func TestLinkHistoryDays(t *testing.T) {
	clock := &testClock{}
	laptop := startClocked(t, clock, newHome(t, "alice"))
	defer laptop.stop(t)
	bob := startNode(t, newHome(t, "bob"))
	defer bob.stop(t)
	befriend(t, laptop, bob)
	send := func(text string) {
		if _, err := laptop.n.Send(context.Background(), SendRequest{To: "bob", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	send("five days ago")
	clock.advance(4 * 24 * time.Hour)
	send("yesterday")
	clock.advance(24 * time.Hour)
	send("today")
	offer, err := laptop.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "phone")
	if _, err := JoinDevice(context.Background(), home, JoinOptions{Code: offer.Code, Name: "phone", HistoryDays: 2, Now: clock.now, KDF: testKDF}); err != nil {
		t.Fatal(err)
	}
	phone := startNode(t, home)
	defer phone.stop(t)
	var got []string
	for _, m := range convo(t, phone.n, "bob") {
		got = append(got, m[strings.IndexByte(m, ' ')+1:])
	}
	if want := []string{"out yesterday", "out today"}; !slices.Equal(got, want) {
		t.Fatalf("the phone shows %q, want %q", got, want)
	}
	if len(convo(t, laptop.n, "bob")) != 3 {
		t.Fatal("the laptop lost a message")
	}
}

// A history transfer interrupted on either side resumes where it
// stopped: the new device stopped (its context cancelled: as a killed
// process, its last chunk's commit is what it has), then the existing
// device stopped and restarted; the history is complete, nothing doubled.
func TestLinkInterruptedAndResumed(t *testing.T) {
	historyChunkItems = 4
	defer func() { historyChunkItems = 0 }()
	laptop, bob := pair(t)
	defer bob.stop(t)
	sendAndWait(t, bob.n, "alice", 30)
	offer, err := laptop.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "phone")
	ctx, cancel := context.WithCancel(context.Background())
	var first HistoryProgress
	_, err = JoinDevice(ctx, home, JoinOptions{Code: offer.Code, Name: "phone", KDF: testKDF, Progress: func(p HistoryProgress) {
		if first.Done == 0 {
			first = p
			cancel() // the new device dies after its first chunk
		}
	}})
	if !errors.Is(err, ErrHistoryIncomplete) {
		t.Fatalf("interrupted join: %v", err)
	}
	n, err := New(Config{Home: home, KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	p := n.historyProgress()
	n.Close()
	// The chunk that triggered the cancel is committed; one already
	// received when the cancel came may be too (a loaded machine): the
	// home holds at least the first chunk and not the whole history.
	if p == nil || p.Done < first.Done || p.Done >= p.Total {
		t.Fatalf("after the interruption the home says %+v (first chunk %+v)", p, first)
	}
	// Resumed, and the existing device stops half-way.
	stopped := false
	_, err = JoinDevice(context.Background(), home, JoinOptions{KDF: testKDF, Progress: func(p HistoryProgress) {
		if !stopped && p.Done > first.Done {
			stopped = true
			laptop.stop(t)
		}
	}})
	if !errors.Is(err, ErrHistoryIncomplete) || !stopped {
		t.Fatalf("join with the laptop stopping: %v (stopped %v)", err, stopped)
	}
	laptop = startNode(t, laptop.home)
	defer laptop.stop(t)
	if _, err := JoinDevice(context.Background(), home, JoinOptions{KDF: testKDF}); err != nil {
		t.Fatalf("resume after the laptop's restart: %v", err)
	}
	// Complete: a further join is refused, and the phone shows the history once.
	if _, err := JoinDevice(context.Background(), home, JoinOptions{KDF: testKDF}); !errors.Is(err, ErrIdentityExists) {
		t.Fatalf("join on a complete home: %v", err)
	}
	phone := startNode(t, home)
	defer phone.stop(t)
	// Texts sent in one millisecond show in ID order on a linked device
	// (docs/protocol/sync.md §18.10), so compare as sets.
	got, want := convo(t, phone.n, "bob"), convo(t, laptop.n, "bob")
	slices.Sort(got)
	slices.Sort(want)
	if !sameConvo(got, want) || len(got) != 30 {
		t.Fatalf("phone shows %d messages:\n%v\nlaptop:\n%v", len(got), got, want)
	}
}

// A linked home whose transfer was interrupted is resumed by its daemon;
// until then its Self and Health say how far it got.
func TestDaemonResumesHistory(t *testing.T) {
	historyChunkItems = 4
	defer func() { historyChunkItems = 0 }()
	laptop, bob := pair(t)
	defer laptop.stop(t)
	defer bob.stop(t)
	sendAndWait(t, bob.n, "alice", 12)
	offer, err := laptop.n.LinkDevice(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "phone")
	ctx, cancel := context.WithCancel(context.Background())
	_, err = JoinDevice(ctx, home, JoinOptions{Code: offer.Code, Name: "phone", KDF: testKDF, Progress: func(HistoryProgress) { cancel() }})
	if !errors.Is(err, ErrHistoryIncomplete) {
		t.Fatalf("interrupted join: %v", err)
	}
	phone := startNode(t, home)
	defer phone.stop(t)
	waitFor(t, "the daemon to resume the transfer", func() bool {
		self, err := phone.n.Self()
		return err == nil && self.History == nil && phone.n.Health().History == nil
	})
	if got := convo(t, phone.n, "bob"); len(got) != 12 {
		t.Fatalf("phone shows %d messages", len(got))
	}
}

// Bad input changes nothing: an expired code, a 17th device, a rolled
// back, foreign or tampered device list.
func TestLinkBadInput(t *testing.T) {
	a := startNode(t, newHome(t, "alice"))
	defer a.stop(t)
	code := offerCode(t, a)
	code.Expires = time.Now().Add(-time.Minute).Truncate(time.Second)
	expired, _ := code.Text()
	if _, err := JoinDevice(context.Background(), filepath.Join(t.TempDir(), "x"), JoinOptions{Code: expired, KDF: testKDF}); !errors.Is(err, msync.ErrCodeExpired) {
		t.Fatalf("expired code: %v", err)
	}

	// Rolled back, foreign and tampered lists.
	first := a.n.list
	linkDevice(t, a, "phone")
	a.n.mu.Lock()
	second := a.n.list
	t1 := a.n.newTxnLocked()
	if a.n.applyDeviceListLocked(t1, first, time.Now()) {
		t.Error("an older list was adopted")
	}
	other := startNode(t, newHome(t, "mallory"))
	defer other.stop(t)
	if a.n.applyDeviceListLocked(t1, other.n.list, time.Now()) {
		t.Error("another account's list was adopted")
	}
	enc, _ := msync.Marshal(&msync.DeviceList{List: second})
	enc[len(enc)-1] ^= 1
	a.n.receiveSyncLocked(t1, a.n.cert.DeviceID(), enc, time.Now())
	if a.n.list != second || t1.b.Len() != 0 {
		t.Error("a bad list changed something")
	}
	a.n.mu.Unlock()

	// Up to 16 devices, then a clear refusal.
	for i := 2; i < 16; i++ {
		linkDevice(t, a, fmt.Sprintf("device%d", i))
	}
	if got := deviceNames(t, a.n); len(got) != 16 {
		t.Fatalf("%d devices", len(got))
	}
	if _, err := a.n.LinkDevice(context.Background()); !errors.Is(err, ErrDeviceListFull) {
		t.Fatalf("a 17th device: %v", err)
	}
}

// The phone lists a mailbox on a relay. While it is off, the laptop's
// sync messages go into that mailbox; the laptop is off too when the
// phone comes back, and the phone still shows what the laptop sent.
func TestOwnDeviceCatchesUpThroughRelay(t *testing.T) {
	addr := startRelay(t, relayCfg())
	laptop, bob := pair(t)
	defer bob.stop(t)
	phoneHome := linkDevice(t, laptop, "phone")
	phone := startNodeCfg(t, Config{Home: phoneHome, Relays: []string{addr}})
	waitMailbox(t, phone)
	phoneID := phone.n.cert.DeviceID()
	waitFor(t, "the laptop to learn the phone's mailbox", func() bool {
		laptop.n.mu.Lock()
		defer laptop.n.mu.Unlock()
		return laptop.n.hasMailboxesLocked(phoneID)
	})
	phone.stop(t)
	m, err := laptop.n.Send(context.Background(), SendRequest{To: "bob", Text: "sent while the phone was off"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the transcript in the phone's mailbox", func() bool {
		laptop.n.mu.Lock()
		defer laptop.n.mu.Unlock()
		q := laptop.n.queues[phoneID]
		return q != nil && len(q.pending) == 0
	})
	laptop.stop(t)
	phone = startNodeCfg(t, Config{Home: phoneHome, Relays: []string{addr}})
	defer phone.stop(t)
	waitFor(t, "the transcript on the phone", func() bool {
		got, err := phone.n.WaitState(context.Background(), m.ID, StateQueued)
		return err == nil && got.Direction == "out" && got.Text == "sent while the phone was off"
	})
}

// Two devices that each link a device while apart sign two lists of one
// version: when they meet, both repair the fork to the same list, which
// keeps all four devices.
func TestForkedDeviceListRepaired(t *testing.T) {
	laptop := startNode(t, newHome(t, "alice"))
	phoneHome := linkDevice(t, laptop, "phone")
	phone := startNode(t, phoneHome)
	waitEntry(t, laptop, phone)
	phone.stop(t)
	linkDevice(t, laptop, "tablet")
	laptop.stop(t)
	phone = startNode(t, phoneHome)
	linkDevice(t, phone, "watch")
	if laptopList, phoneList := listOf(t, laptop.home), phone.n.list; laptopList.Version() != phoneList.Version() || laptopList.Hash() == phoneList.Hash() {
		t.Fatal("no fork to repair")
	}
	laptop = startNode(t, laptop.home)
	defer laptop.stop(t)
	defer phone.stop(t)
	waitFor(t, "both to repair the fork to one list of four devices", func() bool {
		laptop.n.mu.Lock()
		a := laptop.n.list
		laptop.n.mu.Unlock()
		phone.n.mu.Lock()
		b := phone.n.list
		phone.n.mu.Unlock()
		return a.Hash() == b.Hash() && a.Len() == 4
	})
}

// listOf reads the device list stored in a home that is not running.
func listOf(t *testing.T, home string) *identity.DeviceList {
	n, err := New(Config{Home: home, KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.list
}

// A new device reaches the existing one through its relay's circuit
// when the code names only that (a laptop behind NAT). On loopback
// libp2p does not advertise circuit addresses, so the test writes the
// one the laptop's reservation makes.
func TestLinkThroughRelayCircuit(t *testing.T) {
	addr := startRelay(t, relayCfg())
	laptop := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer laptop.stop(t)
	waitMailbox(t, laptop)
	code := offerCode(t, laptop)
	circuit, err := ma.NewMultiaddr(addr + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	code.Addrs = [][]byte{circuit.Bytes()}
	text, err := code.Text()
	if err != nil {
		t.Fatal(err)
	}
	var joinErr error
	waitFor(t, "a join through the relay's circuit", func() bool {
		_, joinErr = JoinDevice(context.Background(), filepath.Join(t.TempDir(), "phone"), JoinOptions{Code: text, Name: "phone", KDF: testKDF})
		return joinErr == nil || !strings.Contains(joinErr.Error(), "cannot reach")
	})
	if joinErr != nil {
		t.Fatalf("join through the relay: %v", joinErr)
	}
	if got := deviceNames(t, laptop.n); len(got) != 2 {
		t.Fatalf("devices %v", got)
	}
}

// A device linked to a member joins the member's groups: it reads the
// others and they read it; revoked, it is out of the next epoch.
func TestLinkedDeviceInGroups(t *testing.T) {
	nodes := makeGroup(t, 2, "club")
	laptop, bob := nodes[0], nodes[1]
	sendGroupEventually(t, bob, "club", "before the phone")
	waitFor(t, "bob's first message on the laptop", func() bool { return len(groupTexts(t, laptop, "club")) == 1 })
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	waitFor(t, "the phone in the group", func() bool {
		gs, err := phone.n.Groups()
		return err == nil && len(gs) == 1 && gs[0].Name == "club"
	})
	// The group's history came with the transfer, where the laptop has it.
	if got, want := groupTexts(t, phone, "club"), groupTexts(t, laptop, "club"); !slices.Equal(got, want) || len(got) != 1 {
		t.Fatalf("the phone's group history %q, the laptop's %q", got, want)
	}
	sendGroupEventually(t, bob, "club", "hello phone")
	waitFor(t, "bob's message on the phone", func() bool {
		for _, m := range groupTexts(t, phone, "club") {
			if strings.HasSuffix(m, ": hello phone") {
				return true
			}
		}
		return false
	})
	sendGroupEventually(t, phone, "club", "from the phone")
	for _, r := range []*running{bob, laptop} {
		waitFor(t, "the phone's group message", func() bool {
			for _, m := range groupTexts(t, r, "club") {
				if strings.HasSuffix(m, ": from the phone") {
					return true
				}
			}
			return false
		})
	}
	if err := laptop.n.RevokeDevice(phone.n.cert.DeviceID().Hex()); err != nil {
		t.Fatal(err)
	}
	// From the moment bob has the laptop's op, nothing new reaches the phone.
	g, _ := groupOf(laptop, "club")
	waitFor(t, "bob in the new epoch", func() bool { gb, _ := groupOf(bob, "club"); return gb.Epoch == g.Epoch })
	m := sendGroupEventually(t, bob, "club", "after the revocation")
	waitFor(t, "bob's message on the laptop", func() bool {
		_, err := laptop.n.WaitState(context.Background(), m.ID, StateReceived)
		return err == nil
	})
	for _, s := range groupTexts(t, phone, "club") {
		if strings.HasSuffix(s, ": after the revocation") {
			t.Fatal("the revoked phone read the group's next message")
		}
	}
}

// A group created on one device, or accepted on one, is on the
// account's other devices too.
func TestGroupsOnEveryDevice(t *testing.T) {
	laptop, bob := pair(t)
	defer laptop.stop(t)
	defer bob.stop(t)
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	bobPhone := startNode(t, linkDevice(t, bob, "bobphone"))
	defer bobPhone.stop(t)
	for _, pair := range [][2]*running{{laptop, phone}, {bob, bobPhone}} {
		waitFor(t, "the entries", func() bool {
			pair[0].n.mu.Lock()
			defer pair[0].n.mu.Unlock()
			return pair[0].n.siblingsLocked().Device(pair[1].n.cert.DeviceID()) != nil
		})
	}
	if _, err := laptop.n.CreateGroup("club"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the club on the phone", func() bool { _, ok := groupOf(phone, "club"); return ok })
	if _, err := laptop.n.InviteToGroup("club", "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's invitation", func() bool { g, ok := groupOf(bob, "club"); return ok && g.Pending })
	if _, err := bob.n.AcceptGroup("club"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the club on bob's phone", func() bool { g, ok := groupOf(bobPhone, "club"); return ok && !g.Pending })
	sendGroupEventually(t, bobPhone, "club", "from bob's phone")
	for _, r := range []*running{laptop, phone, bob} {
		waitFor(t, "bob's phone's message everywhere", func() bool {
			for _, m := range groupTexts(t, r, "club") {
				if strings.HasSuffix(m, ": from bob's phone") {
					return true
				}
			}
			return false
		})
	}
}

// A peer that fails the link handshake maxLinkFailures times in the
// window is refused until the oldest failure leaves it.
func TestLinkFailuresPerPeer(t *testing.T) {
	var f linkFailures
	now := time.Now()
	p, q := peer.ID("guesser"), peer.ID("user")
	for i := range maxLinkFailures {
		if !f.allow(p, now) {
			t.Fatalf("refused after %d failures", i)
		}
		f.failed(p, now.Add(time.Duration(i)*time.Second))
	}
	if f.allow(p, now.Add(time.Minute)) {
		t.Fatal("allowed after too many failures")
	}
	if !f.allow(q, now) {
		t.Fatal("another peer refused")
	}
	if !f.allow(p, now.Add(linkFailWindow+time.Minute)) {
		t.Fatal("still refused after the window")
	}
}

// Once bob has the list without the phone, nothing he sends reaches the
// phone's process: bob encrypts nothing more for the phone (no outbox
// entry is made for it: 1:1 messages, group keys, anti-entropy), and not
// one group topic message arrives at the phone's process (counted before
// anything is decrypted).
func TestRevokedDeviceGetsNoBytes(t *testing.T) {
	nodes := makeGroup(t, 2, "club")
	laptop, bob := nodes[0], nodes[1]
	if _, err := bob.n.AddContact("alice", cardOf(t, laptop).Link()); err != nil {
		t.Fatal(err)
	}
	phone := startNode(t, linkDevice(t, laptop, "phone"))
	defer phone.stop(t)
	waitFor(t, "the phone in the group", func() bool { _, ok := groupOf(phone, "club"); return ok })
	sendGroupEventually(t, phone, "club", "from the phone") // bob learns the phone's card
	if _, err := phone.n.Send(context.Background(), SendRequest{To: "m1", Text: "hi from the phone"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob to know the phone", func() bool {
		bob.n.mu.Lock()
		defer bob.n.mu.Unlock()
		c := bob.n.contacts[laptop.n.cert.Account()]
		return c != nil && c.card.List.Contains(phone.n.cert.DeviceID())
	})
	waitFor(t, "nothing in flight from bob to the phone", func() bool {
		bob.n.mu.Lock()
		defer bob.n.mu.Unlock()
		q := bob.n.queues[phone.n.cert.DeviceID()]
		return q == nil || len(q.pending)+len(q.redundant) == 0
	})
	if err := laptop.n.RevokeDevice(phone.n.cert.DeviceID().Hex()); err != nil {
		t.Fatal(err)
	}
	g, _ := groupOf(laptop, "club")
	waitFor(t, "bob to drop the phone", func() bool {
		gb, _ := groupOf(bob, "club")
		bob.n.mu.Lock()
		defer bob.n.mu.Unlock()
		c := bob.n.contacts[laptop.n.cert.Account()]
		return gb.Epoch == g.Epoch && !c.card.List.Contains(phone.n.cert.DeviceID())
	})
	var queued, topic atomic.Int64
	phoneID := phone.n.cert.DeviceID()
	taps.Store(&tapFuncs{
		queue: func(n *Node, to identity.DeviceID) {
			if n == bob.n && to == phoneID {
				queued.Add(1)
			}
		},
		topic: func(n *Node) {
			if n == phone.n {
				topic.Add(1)
			}
		},
	})
	defer taps.Store(nil)
	direct, err := bob.n.Send(context.Background(), SendRequest{To: "alice", Text: "after the revocation"})
	if err != nil {
		t.Fatal(err)
	}
	grouped := sendGroupEventually(t, bob, "club", "after the revocation")
	for _, id := range []string{direct.ID, grouped.ID} {
		waitFor(t, "bob's messages on the laptop", func() bool {
			_, err := laptop.n.WaitState(context.Background(), id, StateReceived)
			return err == nil
		})
	}
	// Nothing bob encrypted since (his messages, group keys, anti-entropy
	// answers) was for the phone.
	if queued.Load() != 0 || topic.Load() != 0 {
		t.Fatalf("after the revocation bob encrypted %d messages for the phone, and %d topic messages reached it", queued.Load(), topic.Load())
	}
	for _, s := range groupTexts(t, phone, "club") {
		if strings.HasSuffix(s, ": after the revocation") {
			t.Fatal("the revoked phone shows the group's next message")
		}
	}
}
