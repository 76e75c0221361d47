package group

import (
	"slices"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

// bigGroup returns the op log of a group of n members (one device each)
// and their users; users[0] created it.
func bigGroup(b testing.TB, n int) ([]*user, []*Op) {
	clk := newClock()
	users := make([]*user, n)
	for i := range users {
		users[i] = newUser(b, "u", clk)
	}
	var id GroupID
	id[0] = 42
	lam := uint64(1)
	sign := func(u *user, o *Op) *Op {
		o.Group, o.Lamport, o.Device = id, lam, u.dev
		lam++
		if err := signOp(u.acct, o); err != nil {
			b.Fatal(err)
		}
		return o
	}
	ops := []*Op{sign(users[0], &Op{Kind: OpCreate, Devices: []identity.DeviceID{users[0].dev}, List: users[0].list, Name: "big"})}
	for _, u := range users[1:] {
		ops = append(ops, sign(users[0], &Op{Kind: OpInvite, Target: u.acct.Public(), Devices: []identity.DeviceID{u.dev}, List: u.list}))
	}
	for _, u := range users[1:] {
		ops = append(ops, sign(u, &Op{Kind: OpAccept, Devices: []identity.DeviceID{u.dev}, List: u.list}))
	}
	return users, ops
}

// BenchmarkEpochChange1000: in a 1,000-member group, the admin removes a
// member (new epoch, contribution and sender-key distributions for every
// remaining device); then one member processes the op and the admin's
// contribution and produces its own distributions.
func BenchmarkEpochChange1000(b *testing.B) {
	users, ops := bigGroup(b, MaxMembers)
	admin, member := users[0], users[1]
	var err error
	if admin.e, err = joinOps(admin.cfg, ops); err != nil {
		b.Fatal(err)
	}
	if member.e, err = joinOps(member.cfg, ops); err != nil {
		b.Fatal(err)
	}
	// The admin's epoch-0 key for the member.
	fx := new(Effects)
	admin.e.mu.Lock()
	admin.e.own = map[[32]byte]*ownKey{}
	admin.e.reconcileLocked(fx)
	admin.e.mu.Unlock()
	for _, p := range fx.Pairwise {
		if p.Device == member.dev {
			if _, err := member.e.HandlePairwise(admin.acct.Public(), admin.dev, p.Data); err != nil {
				b.Fatal(err)
			}
		}
	}
	var adminTime, memberTime time.Duration
	next := len(users) - 1
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if next < 2 {
			b.Fatal("out of members to remove; use -benchtime=Nx with N < 990")
		}
		victim := users[next]
		next--
		t0 := time.Now()
		fx, err := admin.e.Remove(victim.acct.Public())
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if rec, err := member.e.Open(fx.Publish[0]); err != nil {
			b.Fatal(err)
		} else if rec.OpErr != nil {
			b.Fatal(rec.OpErr)
		}
		var out *Effects
		for _, p := range fx.Pairwise {
			if p.Device == member.dev {
				o, err := member.e.HandlePairwise(admin.acct.Public(), admin.dev, p.Data)
				if err != nil {
					b.Fatal(err)
				}
				if len(o.Pairwise) > 0 {
					out = o
				}
			}
		}
		t2 := time.Now()
		if out == nil || len(out.Pairwise) < len(users)-i-3 {
			b.Fatalf("member produced %v distributions", out)
		}
		if i == 0 && len(fx.Pairwise) < 2*(len(users)-2) {
			b.Fatalf("admin produced %d pairwise messages", len(fx.Pairwise))
		}
		adminTime += t1.Sub(t0)
		memberTime += t2.Sub(t1)
	}
	b.ReportMetric(float64(adminTime.Microseconds())/float64(b.N), "admin-µs/op")
	b.ReportMetric(float64(memberTime.Microseconds())/float64(b.N), "member-µs/op")
}

func BenchmarkSealOpen256(b *testing.B) {
	w := newWorld(b, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	msg := slices.Repeat([]byte{'x'}, 256)
	b.SetBytes(256)
	b.ResetTimer()
	for range b.N {
		wire, _, err := alice.e.Seal(msg)
		if err != nil {
			b.Fatal(err)
		}
		w.send(alice, alice.e.Flush())
		w.pubQ = nil
		w.run()
		if _, err := bob.e.Open(wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenTopic256 is the topic layer a member removes from every
// topic message before Open: a 256-byte text sealed for the topic and
// padded (SealTopic), opened by another member.
func BenchmarkOpenTopic256(b *testing.B) {
	w := newWorld(b, "alice", "bob")
	w.create()
	alice, bob := w.users[0], w.users[1]
	_, data, err := alice.e.SealTopic(w.say(alice, string(slices.Repeat([]byte{'x'}, 256))))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bob.e.OpenTopic(data); err != nil {
			b.Fatal(err)
		}
	}
}
