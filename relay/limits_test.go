package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/internal/gossip"
)

// newHostOn is newHost listening, and so dialling, on a loopback address
// of its own: on Linux all of 127.0.0.0/8 is loopback, so 127.0.0.2,
// 127.0.0.3, … stand for other networks.
func newHostOn(t testing.TB, ip string) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// limitMetrics counts the refusals of the abuse limits and the group
// store's outcomes.
type limitMetrics struct {
	topicMetrics
	createMu sync.Mutex
	creates  map[ErrorCode]int
	frames   atomic.Int64
}

func newLimitMetrics() *limitMetrics {
	return &limitMetrics{topicMetrics: topicMetrics{dropped: map[ErrorCode]int{}}, creates: map[ErrorCode]int{}}
}

func (m *limitMetrics) CreateRefused(c ErrorCode) {
	m.createMu.Lock()
	m.creates[c]++
	m.createMu.Unlock()
}

func (m *limitMetrics) createRefusals(c ErrorCode) int {
	m.createMu.Lock()
	defer m.createMu.Unlock()
	return m.creates[c]
}

func (m *limitMetrics) FrameRefused() { m.frames.Add(1) }

// In the open mode one peer and one network (an IPv4 address, an IPv6
// /64) hold a bounded number of mailboxes and create them at a bounded
// rate; refusals are counted. A deleted mailbox gives its count back,
// another network is not affected, and the counts are in memory only: a
// restart forgets them. Before, anyone could create any number of
// mailboxes as fast as the general rate limit let it (the 161
// throwaway mailboxes in 1.4 s).
func TestMailboxCreationLimits(t *testing.T) {
	clk := newFakeClock()
	met := newLimitMetrics()
	r := startRelay(t, Config{Now: clk.Now, Metrics: met,
		MaxMailboxesPerPeer: 2, MaxMailboxesPerIP: 3, CreateIPPerHour: 60, CreateIPBurst: 4})
	c := &Client{Now: clk.Now}
	create := func(h host.Host) (*owner, error) {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		cr, err := c.Create(context.Background(), h, r.info, key, nil)
		if err != nil {
			return nil, err
		}
		return &owner{key: key, created: cr}, nil
	}
	must := func(h host.Host, what string) *owner {
		t.Helper()
		o, err := create(h)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return o
	}
	del := func(h host.Host, o *owner) {
		t.Helper()
		if err := c.Delete(context.Background(), h, r.info, o.created.Mailbox, o.key); err != nil {
			t.Fatal(err)
		}
	}

	p1, p2 := newHostOn(t, "127.0.0.1"), newHostOn(t, "127.0.0.1")
	first := must(p1, "the peer's first mailbox")
	second := must(p1, "the peer's second mailbox")
	_, err := create(p1)
	expectCode(t, err, ErrQuota) // max_mailboxes_per_peer
	must(p2, "the network's third mailbox")
	_, err = create(p2)
	expectCode(t, err, ErrQuota) // max_mailboxes_per_ip
	del(p1, first)
	must(p2, "a mailbox after a delete") // the fourth creation: the burst is spent
	del(p1, second)
	p3 := newHostOn(t, "127.0.0.1")
	_, err = create(p3)
	expectCode(t, err, ErrRateLimited) // create_ip_per_hour
	must(newHostOn(t, "127.0.0.2"), "a mailbox from another network")
	clk.Add(time.Minute)
	must(p3, "a mailbox a minute later")
	if q, rl := met.createRefusals(CodeQuota), met.createRefusals(CodeRateLimited); q != 2 || rl != 1 {
		t.Fatalf("refusals counted: %d Quota, %d RateLimited; want 2 and 1", q, rl)
	}

	// In memory only: after a restart the network's mailboxes count
	// nowhere.
	r.restart(t)
	for i := range 3 {
		if _, err := create(newHostOn(t, "127.0.0.1")); err != nil {
			t.Fatalf("mailbox %d after a restart: %v", i, err)
		}
	}
}

// newPublisherOn is a group member's host on network ip (newHostOn),
// subscribed to topic (so it announces it, as a member does) and seeing
// the relay there.
func newPublisherOn(t testing.TB, r *testRelay, ip, topic string) *publisher {
	t.Helper()
	h := newHostOn(t, ip)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, gossip.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{t: t, h: h, ps: ps, relay: r.info, topics: make(map[string]*pubsub.Topic)}
	p.connect()
	sub, err := p.topic(topic).Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Cancel)
	p.waitRelay(topic, true)
	return p
}

// What one publishing peer, and one network, files into the group store
// is bounded by a token bucket each (one token: one message into one
// offline owner's mailbox); past it the message is dropped for the
// remaining mailboxes and counted as RateLimited. Other publishers are not
// affected, the buckets refill with time, and a push to an online owner
// costs nothing. Before, one stranger filed up to the topic share of every
// watching mailbox (the issue: 1,000 messages in 2 s).
func TestFilingBudgetPerPublisher(t *testing.T) {
	clk := newFakeClock()
	met := newLimitMetrics()
	r := startRelay(t, Config{Now: clk.Now, Metrics: met,
		TopicFileRate: 1, TopicFileBurst: 10, TopicFileIPRate: 1, TopicFileIPBurst: 15})
	c := &Client{Now: clk.Now}
	h := newHost(t)
	topic := newTopic()
	a, b := createMailbox(t, c, h, r), createMailbox(t, c, h, r)
	a.watch(t, c, h, r, topic)
	b.watch(t, c, h, r, topic)
	handled := func() int { return int(met.filed.Load()+met.pushed.Load()) + met.droppedN(CodeRateLimited) }
	publish := func(p *publisher, n int) {
		for range n {
			p.publish(topic, groupData(200))
		}
	}
	expect := func(what string, handledN, filed int) {
		t.Helper()
		eventually(t, what, func() bool { return handled() == handledN })
		if got := int(met.filed.Load()); got != filed {
			t.Fatalf("%s: %d filed, want %d", what, got, filed)
		}
	}

	stranger := newPublisherOn(t, r, "127.0.0.2", topic)
	publish(stranger, 20)
	expect("a stranger's 20 messages", 40, 10) // its 10 tokens: 5 messages into both mailboxes
	neighbour := newPublisherOn(t, r, "127.0.0.2", topic)
	publish(neighbour, 10)
	expect("10 from another peer of its network", 60, 15) // the network's 15 tokens
	member := newPublisherOn(t, r, "127.0.0.3", topic)
	publish(member, 1)
	expect("a member's message from another network", 62, 17)
	if _, err := c.Deposit(context.Background(), h, r.info, a.created.Deposit, sealed1K(t)); err != nil {
		t.Fatalf("a deposit: %v", err)
	}

	clk.Add(5 * time.Second) // 5 tokens back for the stranger and its network
	publish(stranger, 3)
	expect("3 more from the stranger 5 s later", 68, 22)

	sub := liveSub(t, c, h, r, a) // a's owner comes online
	data := groupData(200)
	stranger.publish(topic, data)
	timeout := time.After(10 * time.Second) // a failure bound, not a wait
	for pushed := false; !pushed; {         // the backlog, then the push
		select {
		case d, ok := <-sub.Messages():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			pushed = bytes.Equal(d.Envelope, data)
		case <-timeout:
			t.Fatal("the message was not pushed to the online owner")
		}
	}
	expect("a push to an online owner, with no tokens left", 70, 22)
	if n := met.droppedN(CodeRateLimited); n != 70-22-1 {
		t.Fatalf("%d filings refused, want %d", n, 70-22-1)
	}
}

// A member that connects to a relay watching thousands of topics still
// learns the relay's subscription to its own: GossipSub's hello to a new
// peer lists the router's topics in one RPC, and past about 1,600 topics
// that RPC is over the peers' 72 KiB limit (gossip.MaxMessageSize), so a
// member reset it and never saw the relay on any topic, and so never
// published to it: a mailbox flood from four networks (4 × 512 topics)
// switched off the group store for every member that connected after it.
// The relay's Echo guard (docs/protocol/groups.md §16.11) tells a peer
// only the topics it announced.
func TestNewPeerHearsRelayWatchingManyTopics(t *testing.T) {
	r := startRelay(t, Config{MaxMailboxesPerPeer: 1 << 10, MaxMailboxesPerIP: 1 << 10, CreateIPPerHour: -1,
		MaxTopicsPerIP: 1 << 20})
	c := &Client{}
	h := newHost(t)
	var mine string
	for range 40 { // 2,560 topics: a 115 KB hello
		topics := make([]string, MaxWatchTopics)
		for i := range topics {
			topics[i] = newTopic()
		}
		mine = topics[0]
		createMailbox(t, c, h, r).watch(t, c, h, r, topics...)
	}
	p := newPublisher(t, r)
	p.waitRelay(mine, true)
}
