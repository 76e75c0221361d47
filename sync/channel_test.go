package sync

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

// linkWorld is an account with one existing device (R) holding an offer,
// and a new device (I) that read the offer's code.
type linkWorld struct {
	acct   *identity.Account
	rDev   *identity.Device
	list   *identity.DeviceList
	offer  *Offer
	iDev   *identity.Device
	now    time.Time
	rRand  *detRand
	iRand  *detRand
	frames [][]byte // handshake frames, in order
}

func newLinkWorld(t testing.TB, label string) *linkWorld {
	t.Helper()
	w := &linkWorld{
		acct:  fixedAccount(t, label),
		rDev:  fixedDevice(t, label+" laptop"),
		iDev:  fixedDevice(t, label+" phone"),
		now:   t0.Add(time.Minute),
		rRand: newDetRand(label + " responder ephemeral"),
		iRand: newDetRand(label + " initiator ephemeral"),
	}
	w.list = firstList(t, w.acct, w.rDev)
	var err error
	w.offer, err = NewOffer(OfferConfig{
		PeerID: bytes.Repeat([]byte{0x12}, 38),
		Addrs:  [][]byte{{0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1}},
		Now:    t0,
		Rand:   newDetRand(label + " secret"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *linkWorld) responder(t testing.TB) *Channel {
	t.Helper()
	c, err := NewResponder(w.offer, ResponderConfig{Device: w.rDev, List: w.list, Now: fixedClock(w.now), Rand: w.rRand})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (w *linkWorld) initiator(t testing.TB, code *LinkCode) *Channel {
	t.Helper()
	c, err := NewInitiator(code, InitiatorConfig{Device: w.iDev, Name: "phone", HistoryDays: 30, Rand: w.iRand})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs the three messages between i and r, recording the frames.
func (w *linkWorld) handshake(t testing.TB, i, r *Channel) {
	t.Helper()
	m1, done, err := i.Step(nil)
	if err != nil || done {
		t.Fatalf("initiator message 1: %v", err)
	}
	m2, done, err := r.Step(m1)
	if err != nil || done {
		t.Fatalf("responder message 2: %v", err)
	}
	m3, done, err := i.Step(m2)
	if err != nil || !done {
		t.Fatalf("initiator message 3: done=%v %v", done, err)
	}
	out, done, err := r.Step(m3)
	if err != nil || !done || out != nil {
		t.Fatalf("responder after message 3: done=%v out=%d %v", done, len(out), err)
	}
	w.frames = append(w.frames, m1, m2, m3)
}

// pass seals record on from and opens it on to.
func pass(t testing.TB, from, to *Channel, record []byte) []byte {
	t.Helper()
	frames, err := from.Seal(record)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for k, f := range frames {
		rec, err := to.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if (rec != nil) != (k == len(frames)-1) {
			t.Fatalf("record completed at fragment %d of %d", k+1, len(frames))
		}
		got = rec
	}
	return got
}

// enroll runs grant, enroll and welcome; it returns the records passed
// and the new list.
func (w *linkWorld) enroll(t testing.TB, i, r *Channel) ([][]byte, *identity.DeviceList) {
	t.Helper()
	var records [][]byte
	grant, err := MarshalGrant(w.acct)
	if err != nil {
		t.Fatal(err)
	}
	offered, _ := i.Offered()
	acct, err := ParseGrant(pass(t, r, i, grant), offered.Account())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := acct.Certify(w.iDev, w.now)
	if err != nil {
		t.Fatal(err)
	}
	enroll := MarshalEnroll(cert)
	got, err := ParseEnroll(pass(t, i, r, enroll))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckEnroll(got, w.list); err != nil {
		t.Fatal(err)
	}
	next, err := NextList(w.acct, w.list, got, w.now)
	if err != nil {
		t.Fatal(err)
	}
	welcome := MarshalWelcome(next)
	list, err := ParseWelcome(pass(t, r, i, welcome))
	if err != nil {
		t.Fatal(err)
	}
	if err := i.CheckWelcome(list, cert); err != nil {
		t.Fatal(err)
	}
	records = append(records, grant, enroll, welcome)
	return records, list
}

func TestLinkFullFlow(t *testing.T) {
	w := newLinkWorld(t, "full")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)

	if !w.offer.Used() {
		t.Fatal("a completed handshake did not consume the offer")
	}
	list, dev := i.Offered()
	if list.Hash() != w.list.Hash() || dev != w.rDev.ID() {
		t.Fatal("the initiator did not see the responder's list and device")
	}
	p := r.Proposal()
	if p == nil || p.Name != "phone" || p.HistoryDays != 30 || p.Device() != w.iDev.ID() {
		t.Fatalf("responder got proposal %+v", p)
	}
	if !bytes.Equal(i.Binding(), r.Binding()) || len(i.Binding()) != 32 {
		t.Fatal("the two sides disagree on the handshake hash")
	}

	_, next := w.enroll(t, i, r)
	if next.Version() != 2 || !next.Contains(w.iDev.ID()) || !next.Contains(w.rDev.ID()) {
		t.Fatal("the new list does not add the new device")
	}

	ti, err := i.Ticket()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.Ticket()
	if err != nil {
		t.Fatal(err)
	}
	if ti.ID != tr.ID || ti.Key != tr.Key || ti.Peer != w.rDev.ID() || tr.Peer != w.iDev.ID() {
		t.Fatal("tickets disagree")
	}
	if !tr.Expires.Equal(w.now.Add(TicketTTL)) || !ti.Expires.IsZero() {
		t.Fatalf("ticket expiry %v / %v", tr.Expires, ti.Expires)
	}
	back, err := ParseTicket(tr.Marshal())
	if err != nil || *back != tr {
		t.Fatalf("ticket round trip: %v", err)
	}

	// Records of any size up to the cap, in both directions.
	for _, n := range []int{0, 1, maxFragment, maxFragment + 1, 200 << 10, MaxRecordSize} {
		rec := bytes.Repeat([]byte{byte(n)}, n)
		if got := pass(t, r, i, rec); !bytes.Equal(got, rec) {
			t.Fatalf("record of %d bytes changed", n)
		}
		if got := pass(t, i, r, rec); !bytes.Equal(got, rec) {
			t.Fatalf("record of %d bytes changed", n)
		}
	}
	if _, err := r.Seal(make([]byte, MaxRecordSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}

	// A tampered transport frame ends the channel.
	frames, _ := r.Seal([]byte("hello"))
	frames[0][len(frames[0])-1] ^= 1
	if _, err := i.Open(frames[0]); !errors.Is(err, ErrAuth) {
		t.Fatalf("tampered transport frame: %v", err)
	}
	if _, err := i.Open(frames[0]); !errors.Is(err, ErrAuth) {
		t.Fatal("the channel kept working after a failure")
	}
}

func TestLinkWrongCode(t *testing.T) {
	w := newLinkWorld(t, "wrong")
	code := w.offer.Code()
	code.Secret[0] ^= 1
	i, r := w.initiator(t, code), w.responder(t)
	m1, _, err := i.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	refusal, _, err := r.Step(m1)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("responder with the wrong code: %v", err)
	}
	if _, _, err := i.Step(refusal); !errors.Is(err, ErrRefused) {
		t.Fatalf("initiator refused: %v", err)
	}
	if w.offer.Used() {
		t.Fatal("a failed attempt consumed the offer")
	}

	// The responder's message 2 fails on an initiator with the wrong code.
	good := w.initiator(t, w.offer.Code())
	m1, _, _ = good.Step(nil)
	m2, _, err := w.responder(t).Step(m1)
	if err != nil {
		t.Fatal(err)
	}
	wrong := w.initiator(t, code)
	wrong.Step(nil)
	if _, _, err := wrong.Step(m2); !errors.Is(err, ErrAuth) {
		t.Fatalf("initiator with the wrong code: %v", err)
	}
}

func TestLinkTampered(t *testing.T) {
	for msg := range 3 {
		for _, where := range []string{"first byte", "last byte"} {
			w := newLinkWorld(t, "tamper")
			i, r := w.initiator(t, w.offer.Code()), w.responder(t)
			flip := func(b []byte, k int) []byte {
				if k != msg {
					return b
				}
				b = bytes.Clone(b)
				pos := len(b) - 1
				if where == "first byte" {
					pos = 1 // after the frame type
				}
				b[pos] ^= 0x40
				return b
			}
			m1, _, _ := i.Step(nil)
			m2, _, err := r.Step(flip(m1, 0))
			if msg == 0 {
				if !errors.Is(err, ErrAuth) {
					t.Errorf("tampered message 1 (%s): %v", where, err)
				}
				continue
			}
			m3, _, err := i.Step(flip(m2, 1))
			if msg == 1 {
				if !errors.Is(err, ErrAuth) {
					t.Errorf("tampered message 2 (%s): %v", where, err)
				}
				continue
			}
			if _, _, err := r.Step(flip(m3, 2)); !errors.Is(err, ErrAuth) {
				t.Errorf("tampered message 3 (%s): %v", where, err)
			}
		}
	}
}

func TestLinkOneUse(t *testing.T) {
	w := newLinkWorld(t, "once")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)

	// The recorded message 1 replayed to the same device.
	out, _, err := w.responder(t).Step(w.frames[0])
	if !errors.Is(err, ErrCodeUsed) || !bytes.Equal(out, []byte{frameRefusal, RefuseCode}) {
		t.Fatalf("replayed message 1: out %x, %v", out, err)
	}
	// A second device with the same code.
	w.iDev = fixedDevice(t, "thief")
	second := w.initiator(t, w.offer.Code())
	m1, _, _ := second.Step(nil)
	refusal, _, err := w.responder(t).Step(m1)
	if !errors.Is(err, ErrCodeUsed) {
		t.Fatalf("second use: %v", err)
	}
	if _, _, err := second.Step(refusal); !errors.Is(err, ErrRefused) {
		t.Fatalf("second initiator: %v", err)
	}
}

func TestLinkExpired(t *testing.T) {
	w := newLinkWorld(t, "late")
	w.now = t0.Add(CodeTTL)
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	m1, _, _ := i.Step(nil)
	if _, _, err := r.Step(m1); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("expired offer: %v", err)
	}
}

func TestLinkListFull(t *testing.T) {
	w := newLinkWorld(t, "full list")
	devs := []*identity.Device{w.rDev}
	for k := range identity.MaxDevices - 1 {
		devs = append(devs, fixedDevice(t, "extra "+string(rune('a'+k))))
	}
	w.list = firstList(t, w.acct, devs...)
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	m1, _, _ := i.Step(nil)
	refusal, _, err := r.Step(m1)
	if !errors.Is(err, ErrDeviceListFull) {
		t.Fatalf("responder with 16 devices: %v", err)
	}
	if _, _, err := i.Step(refusal); !errors.Is(err, ErrDeviceListFull) || !errors.Is(err, ErrRefused) {
		t.Fatalf("initiator told the list is full: %v", err)
	}
	if w.offer.Used() {
		t.Fatal("a refused link consumed the offer")
	}
}

func TestCheckEnrollRejects(t *testing.T) {
	w := newLinkWorld(t, "enroll")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)
	// A certificate for other keys than the ones proposed.
	if err := r.CheckEnroll(certify(t, w.acct, fixedDevice(t, "other")), w.list); !errors.Is(err, ErrMalformed) {
		t.Errorf("certificate of another device: %v", err)
	}
	// Signed by another account.
	if err := r.CheckEnroll(certify(t, fixedAccount(t, "mallory"), w.iDev), w.list); !errors.Is(err, ErrWrongAccount) {
		t.Errorf("certificate of another account: %v", err)
	}
	// The device already listed (the list changed since the handshake).
	good := certify(t, w.acct, w.iDev)
	withIt := firstList(t, w.acct, w.rDev, w.iDev)
	if err := r.CheckEnroll(good, withIt); !errors.Is(err, ErrDeviceExists) {
		t.Errorf("device already listed: %v", err)
	}
	if err := r.CheckEnroll(good, w.list); err != nil {
		t.Errorf("the right certificate: %v", err)
	}
}

func TestCheckWelcomeRejects(t *testing.T) {
	w := newLinkWorld(t, "welcome")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)
	cert := certify(t, w.acct, w.iDev)
	next, err := NextList(w.acct, w.list, cert, w.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.CheckWelcome(w.list, cert); !errors.Is(err, identity.ErrRollback) {
		t.Errorf("the offered list again (a rollback): %v", err)
	}
	without, _ := w.acct.NewDeviceList(w.list, w.list.Devices(), w.now)
	if err := i.CheckWelcome(without, cert); !errors.Is(err, ErrMalformed) {
		t.Errorf("a list without the new device: %v", err)
	}
	mallory := fixedAccount(t, "mallory")
	other, _ := mallory.NewDeviceList(nil, []*identity.DeviceCert{certify(t, mallory, w.iDev)}, w.now)
	if err := i.CheckWelcome(other, cert); !errors.Is(err, ErrWrongAccount) {
		t.Errorf("another account's list: %v", err)
	}
	if err := i.CheckWelcome(next, cert); err != nil {
		t.Errorf("the right list: %v", err)
	}
	// The grant must be the offered account's key.
	g, _ := MarshalGrant(mallory)
	if _, err := ParseGrant(g, w.acct.Public()); !errors.Is(err, ErrWrongAccount) {
		t.Errorf("grant of another account: %v", err)
	}
}

func TestLinkResume(t *testing.T) {
	w := newLinkWorld(t, "resume")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)
	_, next := w.enroll(t, i, r)
	ti, _ := i.Ticket()
	tr, _ := r.Ticket()
	lookup := func(id [TicketIDSize]byte) (Ticket, bool) { return tr, id == tr.ID }
	cfg := ResponderConfig{Device: w.rDev, List: next, Now: fixedClock(w.now.Add(time.Hour))}

	run := func(t *Ticket, dev *identity.Device, cfg ResponderConfig) (ic, rc *Channel, err error) {
		ic, err = NewResumeInitiator(*t, InitiatorConfig{Device: dev})
		if err != nil {
			return nil, nil, err
		}
		rc, err = NewResumeResponder(lookup, cfg)
		if err != nil {
			return nil, nil, err
		}
		m1, _, err := ic.Step(nil)
		if err != nil {
			return nil, nil, err
		}
		m2, _, err := rc.Step(m1)
		if err != nil {
			if m2 != nil {
				_, _, ierr := ic.Step(m2)
				return nil, nil, errors.Join(err, ierr)
			}
			return nil, nil, err
		}
		m3, _, err := ic.Step(m2)
		if err != nil {
			return nil, nil, err
		}
		if _, _, err := rc.Step(m3); err != nil {
			return nil, nil, err
		}
		return ic, rc, nil
	}

	ic, rc, err := run(&ti, w.iDev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{byte(RecordWant), 7, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	if got := pass(t, ic, rc, want); !bytes.Equal(got, want) {
		t.Fatal("resumed channel garbles records")
	}
	if _, err := ic.Ticket(); !errors.Is(err, ErrState) {
		t.Fatal("a resume handed out a new ticket")
	}

	bad := ti
	bad.Key[0] ^= 1
	if _, _, err := run(&bad, w.iDev, cfg); !errors.Is(err, ErrAuth) || !errors.Is(err, ErrRefused) {
		t.Errorf("wrong ticket key: %v", err)
	}
	bad = ti
	bad.ID[0] ^= 1
	if _, _, err := run(&bad, w.iDev, cfg); !errors.Is(err, ErrTicket) {
		t.Errorf("unknown ticket: %v", err)
	}
	if _, _, err := run(&ti, fixedDevice(t, "thief"), cfg); !errors.Is(err, ErrAuth) {
		t.Errorf("ticket presented by another device: %v", err)
	}
	late := cfg
	late.Now = fixedClock(tr.Expires)
	if _, _, err := run(&ti, w.iDev, late); !errors.Is(err, ErrTicket) {
		t.Errorf("expired ticket: %v", err)
	}
	// The responder must be the device the ticket names.
	other := cfg
	other.Device = fixedDevice(t, "resume phone")
	if _, _, err := run(&ti, w.iDev, other); !errors.Is(err, ErrAuth) {
		t.Errorf("ticket answered by another device: %v", err)
	}
}

func TestChannelOutOfOrder(t *testing.T) {
	w := newLinkWorld(t, "order")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	if _, err := i.Seal([]byte("x")); !errors.Is(err, ErrState) {
		t.Errorf("seal before the handshake: %v", err)
	}
	if _, _, err := r.Step([]byte{frameHandshake, 1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Errorf("responder given message 3 first: %v", err)
	}
	if _, _, err := i.Step([]byte{frameHello}); !errors.Is(err, ErrState) {
		t.Errorf("initiator given a frame before speaking: %v", err)
	}
	if _, _, err := w.responder(t).Step(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
}

func FuzzChannelStep(f *testing.F) {
	w := newLinkWorld(f, "fuzz")
	i := w.initiator(f, w.offer.Code())
	m1, _, _ := i.Step(nil)
	m2, _, _ := w.responder(f).Step(m1)
	f.Add(m1)
	f.Add(m2)
	f.Add([]byte{frameRefusal, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Neither side may panic on any frame.
		w := newLinkWorld(t, "fuzz")
		w.responder(t).Step(b)
		i := w.initiator(t, w.offer.Code())
		i.Step(nil)
		i.Step(b)
	})
}
