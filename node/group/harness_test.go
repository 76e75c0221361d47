package group

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type user struct {
	name    string
	acct    *identity.Account
	device  *identity.Device
	dev     identity.DeviceID
	list    *identity.DeviceList // signed by acct, naming device
	cfg     Config
	e       *Engine
	welcome [][]byte
	inbox   []string // plaintexts received, in order
	pw      []Pairwise
	offline bool
	// autoJoin: Join as soon as every Welcome part is in (a device its
	// account added to the group, which needs no Accept).
	autoJoin bool
}

func newUser(t testing.TB, name string, clk *clock) *user {
	t.Helper()
	a, err := identity.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	d, err := identity.NewDevice()
	if err != nil {
		t.Fatal(err)
	}
	u := &user{name: name, acct: a, device: d, dev: d.ID(), list: signList(t, a, d)}
	u.cfg = Config{Account: a, Device: u.dev, DeviceList: u.list, Now: clk.Now}
	return u
}

// signList has a certify devs and sign a list of them.
func signList(t testing.TB, a *identity.Account, devs ...*identity.Device) *identity.DeviceList {
	t.Helper()
	now := time.Unix(1_800_000_000, 0)
	var certs []*identity.DeviceCert
	for _, d := range devs {
		c, err := a.Certify(d, now)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	l, err := a.NewDeviceList(nil, certs, now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newList makes an account with n fresh devices and its signed list.
func newList(t testing.TB, n int) *identity.DeviceList {
	t.Helper()
	a, err := identity.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	devs := make([]*identity.Device, n)
	for i := range devs {
		if devs[i], err = identity.NewDevice(); err != nil {
			t.Fatal(err)
		}
	}
	return signList(t, a, devs...)
}

// world delivers Effects between users, in memory.
type world struct {
	t      testing.TB
	clk    *clock
	users  []*user
	byDev  map[identity.DeviceID]*user
	pubQ   []pub
	pwQ    []pw
	wires  [][]byte // every message published, in order
	pairs  []pw     // every pairwise message sent, in order
	strict bool
	// nodeWelcome drops a Welcome for a device that already has an
	// engine, as the node does (it hands a Welcome for a group it has to
	// no engine); otherwise it goes to HandlePairwise.
	nodeWelcome bool
}

type pub struct {
	from *user
	wire []byte
}

type pw struct {
	from *user
	to   Pairwise
}

func newWorld(t testing.TB, names ...string) *world {
	w := &world{t: t, clk: newClock(), byDev: map[identity.DeviceID]*user{}}
	for _, n := range names {
		u := newUser(t, n, w.clk)
		w.users = append(w.users, u)
		w.byDev[u.dev] = u
	}
	return w
}

func (w *world) send(from *user, fx *Effects) {
	if fx == nil {
		return
	}
	for _, m := range fx.Publish {
		w.pubQ = append(w.pubQ, pub{from, m})
		w.wires = append(w.wires, m)
	}
	for _, p := range fx.Pairwise {
		w.pwQ = append(w.pwQ, pw{from, p})
		w.pairs = append(w.pairs, pw{from, p})
	}
}

// run delivers until nothing is left. Published messages go to every
// online user with an engine (their own echo is rejected as a replay).
func (w *world) run() {
	w.t.Helper()
	for len(w.pubQ) > 0 || len(w.pwQ) > 0 {
		for len(w.pwQ) > 0 {
			m := w.pwQ[0]
			w.pwQ = w.pwQ[1:]
			u := w.byDev[m.to.Device]
			if u == nil {
				w.t.Fatalf("pairwise to unknown device")
			}
			u.pw = append(u.pw, m.to)
			if _, _, parts, ok := WelcomeInfo(m.to.Data); ok && u.e == nil {
				u.welcome = append(u.welcome, m.to.Data)
				if u.autoJoin && len(u.welcome) == parts {
					e, err := Join(u.cfg, u.welcome)
					if err != nil {
						w.t.Fatalf("%s: join: %v", u.name, err)
					}
					u.e, u.welcome = e, nil
				}
				continue
			}
			if _, _, _, ok := WelcomeInfo(m.to.Data); ok && w.nodeWelcome {
				continue
			}
			if u.e == nil || u.offline {
				continue
			}
			fx, err := u.e.HandlePairwise(m.from.acct.Public(), m.from.dev, m.to.Data)
			if err != nil && !errors.Is(err, ErrParked) && w.strict {
				w.t.Fatalf("%s: pairwise from %s: %v", u.name, m.from.name, err)
			}
			w.send(u, fx)
		}
		if len(w.pubQ) > 0 {
			m := w.pubQ[0]
			w.pubQ = w.pubQ[1:]
			for _, u := range w.users {
				if u.e == nil || u.offline || u == m.from {
					continue
				}
				w.deliver(u, m.wire)
			}
		}
	}
}

func (w *world) deliver(u *user, wire []byte) (*Received, error) {
	rec, err := u.e.Open(wire)
	if err != nil {
		return nil, err
	}
	if rec.Plaintext != nil {
		u.inbox = append(u.inbox, string(rec.Plaintext))
	}
	w.send(u, &rec.Effects)
	return rec, nil
}

func (w *world) must(u *user, fx *Effects, err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatalf("%s: %v", u.name, err)
	}
	w.send(u, fx)
	w.run()
}

// create makes users[0] the creator and brings every other user in.
func (w *world) create() {
	w.t.Helper()
	c := w.users[0]
	e, err := Create(c.cfg, "friends")
	if err != nil {
		w.t.Fatal(err)
	}
	c.e = e
	for _, u := range w.users[1:] {
		w.join(c, u)
	}
}

// join has inviter invite u, then u joins from the welcome and accepts.
func (w *world) join(inviter, u *user) {
	w.t.Helper()
	fx, err := inviter.e.Invite(u.list)
	w.must(inviter, fx, err)
	e, err := Join(u.cfg, u.welcome)
	if err != nil {
		w.t.Fatalf("%s: join: %v", u.name, err)
	}
	u.e, u.welcome = e, nil
	fx, err = u.e.Accept()
	w.must(u, fx, err)
}

func (w *world) say(u *user, text string) []byte {
	w.t.Helper()
	wire, _, err := u.e.Seal([]byte(text))
	if err != nil {
		w.t.Fatalf("%s: seal: %v", u.name, err)
	}
	w.send(u, u.e.Flush()) // a rotated sender key, if Seal made one
	w.send(u, &Effects{Publish: [][]byte{wire}})
	w.run()
	return wire
}

func (w *world) stateBytes(u *user) string {
	w.t.Helper()
	st := u.e.State()
	b, err := st.MarshalBinary()
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}
