package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/testutil"
)

// newTopic returns a fresh group topic name, as a group derives it.
func newTopic() string {
	b := make([]byte, 16)
	rand.Read(b)
	return gossip.TopicPrefix + hex.EncodeToString(b)
}

// groupData returns distinct topic message data (GossipSub drops
// duplicates by content hash).
// groupData is n bytes framed like a sealed topic message (the relay
// checks only the framing; the rest is random, as a ciphertext looks).
func groupData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[0], b[1] = gossip.TagVersion, gossip.TagKind
	return b
}

// publisher is a group member's host: GossipSub with the group options,
// connected to the relay, publishing on group topics.
type publisher struct {
	t      testing.TB
	h      host.Host
	ps     *pubsub.PubSub
	relay  peer.AddrInfo
	topics map[string]*pubsub.Topic
}

func newPublisher(t testing.TB, r *testRelay) *publisher {
	t.Helper()
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, gossip.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{t: t, h: h, ps: ps, relay: r.info, topics: make(map[string]*pubsub.Topic)}
	p.connect()
	return p
}

func (p *publisher) connect() {
	p.t.Helper()
	if err := p.h.Connect(context.Background(), p.relay); err != nil {
		p.t.Fatal(err)
	}
}

func (p *publisher) topic(name string) *pubsub.Topic {
	p.t.Helper()
	if t := p.topics[name]; t != nil {
		return t
	}
	t, err := p.ps.Join(name)
	if err != nil {
		p.t.Fatal(err)
	}
	// Subscribed, as a member is: the relay tells a peer of a topic only
	// once the peer announced it (docs/protocol/groups.md §16.11).
	if _, err := t.Subscribe(); err != nil {
		p.t.Fatal(err)
	}
	p.topics[name] = t
	return t
}

// relaySubscribed reports whether the publisher sees the relay on topic.
func (p *publisher) relaySubscribed(name string) bool {
	return slices.Contains(p.topic(name).ListPeers(), p.relay.ID)
}

// waitRelay waits until the relay's subscription to topic is visible.
func (p *publisher) waitRelay(name string, subscribed bool) {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for p.relaySubscribed(name) != subscribed {
		if time.Now().After(deadline) {
			p.t.Fatalf("relay subscribed = %v, want %v", !subscribed, subscribed)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *publisher) publish(name string, data []byte) {
	p.t.Helper()
	if err := p.topic(name).Publish(context.Background(), data); err != nil {
		p.t.Fatal(err)
	}
}

// liveSub opens a live owner subscription and waits for Drained.
func liveSub(t testing.TB, c *Client, h host.Host, r *testRelay, o *owner) *Subscription {
	t.Helper()
	sub, err := c.Subscribe(context.Background(), h, r.info, o.created.Mailbox, o.key, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	waitDrained(t, sub)
	return sub
}

func expectTopicMessage(t testing.TB, sub *Subscription, data []byte) *Deliver {
	t.Helper()
	d := recvN(t, sub, 1)[0]
	if d.Source != SourceTopic || !bytes.Equal(d.Envelope, data) {
		t.Fatalf("got source %d, %d bytes; want a topic message of %d bytes", d.Source, len(d.Envelope), len(data))
	}
	return d
}

// expectNothing checks that sub receives nothing for a while.
func expectNothing(t testing.TB, sub *Subscription, wait time.Duration) {
	t.Helper()
	select {
	case d := <-sub.Messages():
		t.Fatalf("unexpected delivery (source %d)", d.Source)
	case <-time.After(wait):
	}
}

func (o *owner) watch(t testing.TB, c *Client, h host.Host, r *testRelay, topics ...string) {
	t.Helper()
	if err := c.Watch(context.Background(), h, r.info, o.created.Mailbox, o.key, topics); err != nil {
		t.Fatal(err)
	}
}

// topicMetrics counts the group store's metrics.
// mbox returns the relay's in-memory mailbox of o.
func (o *owner) mbox(r *testRelay) *mailbox {
	r.srv.mu.RLock()
	defer r.srv.mu.RUnlock()
	return r.srv.byMailbox[o.created.Mailbox]
}

type topicMetrics struct {
	NopMetrics
	filed   atomic.Int64
	pushed  atomic.Int64
	watched atomic.Int64
	mu      sync.Mutex
	dropped map[ErrorCode]int
}

func (m *topicMetrics) TopicFiled(int)        { m.filed.Add(1) }
func (m *topicMetrics) TopicPushed(int)       { m.pushed.Add(1) }
func (m *topicMetrics) WatchedTopics(n int64) { m.watched.Store(n) }
func (m *topicMetrics) TopicDropped(c ErrorCode) {
	m.mu.Lock()
	m.dropped[c]++
	m.mu.Unlock()
}

func (m *topicMetrics) droppedN(c ErrorCode) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped[c]
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchFilesTopicMessages(t *testing.T) {
	met := &topicMetrics{dropped: map[ErrorCode]int{}}
	r := startRelay(t, Config{Metrics: met})
	h := newHost(t)
	c := &Client{}
	a, b := createMailbox(t, c, h, r), createMailbox(t, c, h, r)
	shared, onlyB := newTopic(), newTopic()
	a.watch(t, c, h, r, shared)
	b.watch(t, c, h, r, onlyB, shared)
	if met.watched.Load() != 2 {
		t.Fatalf("watched topics gauge %d, want 2", met.watched.Load())
	}
	subA, subB := liveSub(t, c, h, r, a), liveSub(t, c, h, r, b)
	pub := newPublisher(t, r)
	pub.waitRelay(shared, true)
	pub.waitRelay(onlyB, true)

	// Both watchers of a topic get its message, with SourceTopic and the
	// exact data.
	m1 := groupData(300)
	pub.publish(shared, m1)
	expectTopicMessage(t, subA, m1)
	b1 := expectTopicMessage(t, subB, m1)
	if b1.Topic != shared {
		t.Fatalf("pushed with topic %q, want %q", b1.Topic, shared)
	}

	// A topic the mailbox does not watch is not filed into it.
	m2 := groupData(200)
	pub.publish(onlyB, m2)
	b2 := expectTopicMessage(t, subB, m2)
	m3 := groupData(100)
	pub.publish(shared, m3)
	expectTopicMessage(t, subA, m3) // the next one for A is m3, not m2
	b3 := expectTopicMessage(t, subB, m3)

	// Data not framed as a sealed topic message is neither filed nor
	// pushed.
	junk := groupData(200)
	junk[1] = 'G' // a bare group wire message, say
	pub.publish(shared, junk)
	expectNothing(t, subB, 300*time.Millisecond)

	// Deposits and topic messages share the mailbox.
	env := sealed1K(t)
	if _, err := c.Deposit(context.Background(), h, r.info, a.created.Deposit, env); err != nil {
		t.Fatal(err)
	}
	if d := recvN(t, subA, 1)[0]; d.Source != SourceDeposit || !bytes.Equal(d.Envelope, env) {
		t.Fatal("deposit not delivered as SourceDeposit")
	}
	// While the owners were online their topic messages were pushed, not
	// stored (A: m1, m3; B: m1, m2, m3); the deposit was stored.
	if pushed, filed := met.pushed.Load(), met.filed.Load(); pushed != 5 || filed != 0 {
		t.Fatalf("pushed %d and filed %d, want 5 and 0", pushed, filed)
	}
	// B acknowledges its pushes, A does not: when their subscriptions end,
	// A's unacknowledged pushes are stored, in order, after the deposit;
	// B's are gone.
	for _, d := range []*Deliver{b1, b2, b3} {
		if err := subB.Ack(d.Message); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the acks reach the relay
	subA.Close()
	subB.Close()
	waitGone := func(o *owner) {
		eventually(t, "the relay sees the subscription end", func() bool {
			mb := o.mbox(r)
			mb.mu.Lock()
			defer mb.mu.Unlock()
			return mb.sub == nil
		})
	}
	waitGone(a)
	waitGone(b)
	got := drain(t, c, h, r, a)
	if len(got) != 3 || got[0].Source != SourceDeposit || !bytes.Equal(got[1].Envelope, m1) || !bytes.Equal(got[2].Envelope, m3) {
		t.Fatalf("stored for A: %d messages, want the deposit, m1, m3", len(got))
	}
	if got[0].Topic != "" || got[1].Topic != shared || got[2].Topic != shared {
		t.Fatalf("stored with topics %q %q %q", got[0].Topic, got[1].Topic, got[2].Topic)
	}
	if got := drain(t, c, h, r, b); len(got) != 0 {
		t.Fatalf("stored for B: %d messages, want none (all acknowledged)", len(got))
	}
	// With A away, its copy is stored; B, online again, gets its copy
	// pushed.
	subB = liveSub(t, c, h, r, b)
	m6 := groupData(150)
	pub.publish(shared, m6)
	expectTopicMessage(t, subB, m6)
	eventually(t, "m6 filed for A", func() bool { return met.filed.Load() == 3 })
	got = drain(t, c, h, r, a)
	if len(got) != 4 || got[3].Source != SourceTopic || !bytes.Equal(got[3].Envelope, m6) {
		t.Fatalf("stored for A while away: %d messages", len(got))
	}
	if met.pushed.Load() != 6 {
		t.Fatalf("pushed %d, want 6", met.pushed.Load())
	}

	// A stops watching: B still gets the topic's messages, A nothing.
	subA = liveSub(t, c, h, r, a)
	recvN(t, subA, 4) // the backlog
	a.watch(t, c, h, r)
	m4 := groupData(100)
	pub.publish(shared, m4)
	expectTopicMessage(t, subB, m4)
	expectNothing(t, subA, 300*time.Millisecond)

	// When B stops too, the relay leaves the topic; the other stays.
	b.watch(t, c, h, r, onlyB)
	pub.waitRelay(shared, false)
	if !pub.relaySubscribed(onlyB) || r.srv.group.topicCount() != 1 || met.watched.Load() != 1 {
		t.Fatal("relay left the wrong topic")
	}
	late := groupData(100)
	pub.publish(shared, late)
	expectNothing(t, subB, 300*time.Millisecond)
	// And joins again when watched again. GossipSub may hand the relay
	// the message published while it was away (it is still in the
	// publisher's gossip history), before the new one.
	a.watch(t, c, h, r, shared)
	pub.waitRelay(shared, true)
	m5 := groupData(100)
	pub.publish(shared, m5)
	if d := recvN(t, subA, 1)[0]; d.Source != SourceTopic || (!bytes.Equal(d.Envelope, m5) && !bytes.Equal(d.Envelope, late)) {
		t.Fatalf("got source %d, %d bytes; want a topic message", d.Source, len(d.Envelope))
	} else if bytes.Equal(d.Envelope, late) {
		expectTopicMessage(t, subA, m5)
	}
}

func TestWatchQuotaDropsTopicMessages(t *testing.T) {
	met := &topicMetrics{dropped: map[ErrorCode]int{}}
	r := startRelay(t, Config{MaxMessages: 3, Metrics: met})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	topic := newTopic()
	o.watch(t, c, h, r, topic)
	env := sealed1K(t)
	if _, err := c.Deposit(context.Background(), h, r.info, o.created.Deposit, env); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)
	var sent [][]byte
	for range 4 {
		d := groupData(500)
		sent = append(sent, d)
		pub.publish(topic, d)
	}
	eventually(t, "two filed and two dropped", func() bool {
		return met.filed.Load() == 2 && met.droppedN(CodeQuota) == 2
	})
	got := drain(t, c, h, r, o)
	if len(got) != 3 || !bytes.Equal(got[0].Envelope, env) {
		t.Fatalf("%d stored, want the deposit and 2 topic messages", len(got))
	}
	for _, d := range got[1:] {
		if d.Source != SourceTopic || (!bytes.Equal(d.Envelope, sent[0]) && !bytes.Equal(d.Envelope, sent[1]) &&
			!bytes.Equal(d.Envelope, sent[2]) && !bytes.Equal(d.Envelope, sent[3])) {
			t.Fatal("stored topic message differs")
		}
	}
	// The deposit path sees the same quota.
	_, err := c.Deposit(context.Background(), h, r.info, o.created.Deposit, env)
	expectCode(t, err, ErrQuota)
	if r.srv.storedMsgs.Load() != 3 {
		t.Fatalf("stored counter %d", r.srv.storedMsgs.Load())
	}
}

func TestWatchSurvivesRestart(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{Now: clk.Now})
	h := newHost(t)
	c := &Client{Now: clk.Now}
	o := createMailbox(t, c, h, r)
	topic := newTopic()
	o.watch(t, c, h, r, topic)
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)
	m1 := groupData(100)
	pub.publish(topic, m1)
	eventually(t, "m1 filed", func() bool { return r.srv.storedMsgs.Load() == 1 })

	r.stop()
	pub.h.Network().ClosePeer(r.h.ID())
	pub.waitRelay(topic, false)
	r.start(t)
	if r.srv.group.topicCount() != 1 {
		t.Fatal("watch set not loaded")
	}
	pub.connect()
	pub.waitRelay(topic, true)
	m2 := groupData(100)
	pub.publish(topic, m2)
	sub := liveSub(t, c, h, r, o)
	got := recvN(t, sub, 1)
	if got[0].Source != SourceTopic || !bytes.Equal(got[0].Envelope, m1) {
		t.Fatal("message filed before the restart not delivered with its source")
	}
	if d := recvN(t, sub, 1)[0]; d.Source != SourceTopic || !bytes.Equal(d.Envelope, m2) {
		t.Fatal("message after the restart not filed")
	}
	// The last accepted time survived too: a Watch of the same second
	// from a fresh client is refused.
	err := (&Client{Now: clk.Now}).Watch(context.Background(), h, r.info, o.created.Mailbox, o.key, nil)
	expectCode(t, err, ErrAuth)
	clk.Add(time.Second)
	if err := (&Client{Now: clk.Now}).Watch(context.Background(), h, r.info, o.created.Mailbox, o.key, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteRemovesWatch(t *testing.T) {
	r := startRelay(t, Config{})
	h := newHost(t)
	c := &Client{}
	o, other := createMailbox(t, c, h, r), createMailbox(t, c, h, r)
	topic, kept := newTopic(), newTopic()
	o.watch(t, c, h, r, topic, kept)
	other.watch(t, c, h, r, kept)
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)
	pub.waitRelay(kept, true)
	if err := c.Delete(context.Background(), h, r.info, o.created.Mailbox, o.key); err != nil {
		t.Fatal(err)
	}
	pub.waitRelay(topic, false)
	if r.srv.group.topicCount() != 1 || !pub.relaySubscribed(kept) {
		t.Fatal("delete changed the other mailbox's topic")
	}
	if _, err := r.srv.t.watches.Get(o.created.Mailbox[:]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("watch record after delete: %v", err)
	}
	r.restart(t)
	if r.srv.group.topicCount() != 1 {
		t.Fatalf("%d topics after restart, want 1", r.srv.group.topicCount())
	}
}

func TestWatchErrors(t *testing.T) {
	clk := newFakeClock()
	r := startRelay(t, Config{Now: clk.Now, MaxTopics: 2})
	h := newHost(t)
	c := &Client{Now: clk.Now}
	ctx := context.Background()
	o, o2 := createMailbox(t, c, h, r), createMailbox(t, c, h, r)
	mbox := o.created.Mailbox
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	t1, t2, t3 := newTopic(), newTopic(), newTopic()

	expectCode(t, c.Watch(ctx, h, r.info, mbox, other, []string{t1}), ErrAuth)
	late := &Client{Now: func() time.Time { return clk.Now().Add(-2 * time.Minute) }}
	expectCode(t, late.Watch(ctx, h, r.info, mbox, o.key, []string{t1}), ErrAuth)
	expectCode(t, c.Watch(ctx, h, r.info, ID{9}, o.key, []string{t1}), ErrNotFound)
	expectCode(t, c.Watch(ctx, h, r.info, mbox, o.key, []string{t1, t1}), ErrBadRequest)
	// The client refuses what the relay would refuse.
	expectCode(t, c.Watch(ctx, h, r.info, mbox, o.key, []string{"hush/x/1"}), ErrBadRequest)
	many := make([]string, MaxWatchTopics+1)
	for i := range many {
		many[i] = newTopic()
	}
	expectCode(t, c.Watch(ctx, h, r.info, mbox, o.key, many), ErrBadRequest)
	// ... and so does the relay, sent by hand.
	for _, topics := range [][]string{many, {"not/a/topic"}} {
		rc := openRaw(t, h, r)
		w := &Watch{Mailbox: mbox, Time: uint64(clk.Now().Unix()), Topics: topics}
		SignWatch(w, o.key)
		rc.send(w)
		rc.expectErr(CodeBadRequest)
	}
	if r.srv.group.topicCount() != 0 {
		t.Fatal("a refused watch was applied")
	}

	// Two Watches in the same second: the client moves the second one
	// on by a second.
	if err := c.Watch(ctx, h, r.info, mbox, o.key, []string{t1, t2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Watch(ctx, h, r.info, mbox, o.key, []string{t1, t2}); err != nil {
		t.Fatalf("second watch in one second: %v", err)
	}
	// A Watch not newer than the last accepted one (a replay, or an
	// older one) is refused, and rolls nothing back.
	last := o.lastWatchTime(r)
	for _, ts := range []uint64{last, last - 1} {
		rc := openRaw(t, h, r)
		w := &Watch{Mailbox: mbox, Time: ts}
		SignWatch(w, o.key)
		rc.send(w)
		rc.expectErr(CodeAuth)
	}
	if r.srv.group.topicCount() != 2 {
		t.Fatal("an old watch rolled the set back")
	}

	// The relay-wide cap: t1 and t2 are watched, MaxTopics is 2.
	expectCode(t, c.Watch(ctx, h, r.info, o2.created.Mailbox, o2.key, []string{t3}), ErrFull)
	if err := c.Watch(ctx, h, r.info, o2.created.Mailbox, o2.key, []string{t1}); err != nil {
		t.Fatalf("watching a topic already watched: %v", err)
	}
	// o replaces t1, t2 by t3: t2 is freed, t1 stays (o2), so 2 in all.
	if err := c.Watch(ctx, h, r.info, mbox, o.key, []string{t3}); err != nil {
		t.Fatalf("swap within the cap: %v", err)
	}
	expectCode(t, c.Watch(ctx, h, r.info, mbox, o.key, []string{t3, t2}), ErrFull)
	if r.srv.group.topicCount() != 2 {
		t.Fatalf("%d topics, want 2", r.srv.group.topicCount())
	}

	// A relay without a group store.
	off := startRelay(t, Config{NoGroupStore: true})
	oo := createMailbox(t, c, h, off)
	err := c.Watch(ctx, h, off.info, oo.created.Mailbox, oo.key, []string{t1})
	expectCode(t, err, ErrUnsupported)
	if !errors.Is(err, ErrUnsupported) || CodeOf(err) != CodeUnsupported {
		t.Fatal("unsupported does not match its sentinel")
	}
}

func (o *owner) lastWatchTime(r *testRelay) uint64 {
	mb := r.srv.lookupMailbox(o.created.Mailbox)
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.watchTime
}

func TestLogsNoTopicNames(t *testing.T) {
	var buf testutil.SyncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := startRelay(t, Config{Logger: log, MaxMessages: 1})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	t1, t2 := newTopic(), newTopic()
	// A join that fails: the router's error names the topic.
	if err := r.srv.group.ps.RegisterTopicValidator(t2, gossip.Anonymous); err != nil {
		t.Fatal(err)
	}
	o.watch(t, c, h, r, t1, t2)
	pub := newPublisher(t, r)
	pub.waitRelay(t1, true)
	for range 2 { // the second is over quota
		pub.publish(t1, groupData(100))
	}
	eventually(t, "a filed message", func() bool { return r.srv.storedMsgs.Load() == 1 })
	o.watch(t, c, h, r)
	r.restart(t)
	if err := c.Delete(context.Background(), h, r.info, o.created.Mailbox, o.key); err != nil {
		t.Fatal(err)
	}
	r.stop()
	out := buf.String()
	if !strings.Contains(out, "group topic join failed") {
		t.Fatalf("the failed join was not logged:\n%s", out)
	}
	for _, name := range []string{t1, t2} {
		if strings.Contains(out, name) || strings.Contains(out, strings.TrimPrefix(name, gossip.TopicPrefix)) {
			t.Fatalf("log holds a topic name:\n%s", out)
		}
	}
	if strings.Contains(out, gossip.TopicPrefix) {
		t.Fatalf("log holds a topic prefix:\n%s", out)
	}
}

func TestGroupStoreConfigJSON(t *testing.T) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(`{"no_group_store": true, "max_topics": 50}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.NoGroupStore || cfg.MaxTopics != 50 {
		t.Fatalf("parsed %+v", cfg)
	}
	d, err := Config{}.withDefaults()
	if err != nil || d.NoGroupStore || d.MaxTopics != DefaultMaxTopics {
		t.Fatalf("defaults %+v %v", d, err)
	}
}

func TestCheckTopics(t *testing.T) {
	ok := []string{newTopic(), newTopic()}
	if err := checkTopics(ok); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{ok[0], ok[0]}, {"x"}, make([]string, MaxWatchTopics+1)} {
		err := checkTopics(bad)
		if err == nil {
			t.Fatalf("%d topics accepted", len(bad))
		}
		if strings.Contains(err.Error(), ok[0]) {
			t.Fatal("error names a topic")
		}
	}
}

// TestTopicBurstFiled: a burst of 1,000 topic messages (within the
// GossipSub queues of gossip.QueueSize) is filed whole into each watcher.
func TestTopicBurstFiled(t *testing.T) {
	met := &topicMetrics{dropped: map[ErrorCode]int{}}
	// One publisher files 2,000 times here: no filing budget.
	r := startRelay(t, Config{Metrics: met, MaxMessages: 10000, TopicFileRate: -1, TopicFileIPRate: -1})
	h := newHost(t)
	c := &Client{}
	topic := newTopic()
	for range 2 {
		createMailbox(t, c, h, r).watch(t, c, h, r, topic)
	}
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)
	const n = 1000
	for range n {
		pub.publish(topic, groupData(1000))
	}
	eventually(t, "the burst filed", func() bool { return met.filed.Load() == 2*n })
	if r.srv.storedMsgs.Load() != 2*n {
		t.Fatalf("stored %d, want %d", r.srv.storedMsgs.Load(), 2*n)
	}
}

// ackMetrics counts Acked.
type ackMetrics struct {
	NopMetrics
	acked atomic.Int64
}

func (m *ackMetrics) Acked(n int) { m.acked.Add(int64(n)) }

// Acked counts every acknowledged delivery of a live session: the group
// messages pushed to an online owner without being stored (before, their
// acks were dropped uncounted, so hush_relay_acks_total stayed 0 while
// owners acknowledged pushes) as well as stored deposits. A repeated ack
// counts nothing.
func TestAckedCountsPushes(t *testing.T) {
	met := &ackMetrics{}
	r := startRelay(t, Config{Metrics: met})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	topic := newTopic()
	o.watch(t, c, h, r, topic)
	sub := liveSub(t, c, h, r, o)
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)

	m1, m2 := groupData(300), groupData(400)
	pub.publish(topic, m1)
	d1 := expectTopicMessage(t, sub, m1)
	pub.publish(topic, m2)
	d2 := expectTopicMessage(t, sub, m2)
	for _, d := range []*Deliver{d1, d2} {
		if err := sub.Ack(d.Message); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "two pushes counted as acked", func() bool { return met.acked.Load() == 2 })

	deposit := func() *Deliver {
		if _, err := c.Deposit(context.Background(), h, r.info, o.created.Deposit, sealed1K(t)); err != nil {
			t.Fatal(err)
		}
		d := recvN(t, sub, 1)[0]
		if d.Source != SourceDeposit {
			t.Fatalf("got source %d, want a deposit", d.Source)
		}
		return d
	}
	d3 := deposit()
	sub.Ack(d3.Message)
	eventually(t, "the deposit counted as acked", func() bool { return met.acked.Load() == 3 })

	// Repeated acks, then a fresh one: the relay reads a stream's acks in
	// order, so once the fresh one is counted the repeats were seen.
	sub.Ack(d1.Message)
	sub.Ack(d3.Message)
	d4 := deposit()
	sub.Ack(d4.Message)
	eventually(t, "the fresh ack counted", func() bool { return met.acked.Load() >= 4 })
	if n := met.acked.Load(); n != 4 {
		t.Fatalf("acked %d, want 4 (repeated acks counted)", n)
	}
}

// Anyone may publish on a watched topic, and the relay cannot tell a
// member's message from garbage: a flood there fills at most three
// quarters of an offline owner's mailbox (topicShare), and 1:1 deposits
// still get in. (Before, the flood took the whole quota and deposits
// failed with Quota until the owner came back.)
func TestTopicFloodLeavesRoomForDeposits(t *testing.T) {
	met := &topicMetrics{dropped: map[ErrorCode]int{}}
	r := startRelay(t, Config{Metrics: met, MaxMessages: 20})
	h := newHost(t)
	c := &Client{}
	o := createMailbox(t, c, h, r)
	topic := newTopic()
	o.watch(t, c, h, r, topic)
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)
	const flood = 40
	for range flood {
		pub.publish(topic, groupData(200))
	}
	eventually(t, "the flood filed or dropped", func() bool {
		return int(met.filed.Load())+met.droppedN(CodeQuota) == flood
	})
	if filed := met.filed.Load(); filed != 15 {
		t.Fatalf("the flood filed %d messages, want 15 (three quarters of 20)", filed)
	}
	for i := range 5 {
		if _, err := c.Deposit(context.Background(), newHost(t), r.info, o.created.Deposit, sealed1K(t)); err != nil {
			t.Fatalf("deposit %d after the flood: %v", i, err)
		}
	}
	_, err := c.Deposit(context.Background(), newHost(t), r.info, o.created.Deposit, sealed1K(t))
	expectCode(t, err, ErrQuota)
}

type watchRefusals struct {
	NopMetrics
	n atomic.Int64
}

func (m *watchRefusals) WatchRefused() { m.n.Add(1) }

// One network's free mailboxes cannot take the relay's topic capacity:
// past MaxTopicsPerIP their Watches get Quota (counted and logged), while
// an owner on another network still watches its group. (Before, 161
// throwaway mailboxes filled the relay's 10,000 topics in 1.4 s and
// offline members got nothing.) IPv4 and IPv6 loopback stand for two
// networks.
func TestWatchBudgetPerNetwork(t *testing.T) {
	met := &watchRefusals{}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	r := &testRelay{dir: t.TempDir(), cfg: Config{Metrics: met, MaxTopicsPerIP: 2 * MaxWatchTopics}, h: h}
	r.start(t)
	only := func(proto int) peer.AddrInfo {
		ai := peer.AddrInfo{ID: h.ID()}
		for _, a := range h.Addrs() {
			if _, err := a.ValueForProtocol(proto); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		return ai
	}
	v4, v6 := *r, *r
	v4.info, v6.info = only(ma.P_IP4), only(ma.P_IP6)
	topics := func() []string {
		out := make([]string, MaxWatchTopics)
		for i := range out {
			out[i] = newTopic()
		}
		return out
	}
	c := &Client{}
	flooder := newHost(t)
	for i := range 2 {
		o := createMailbox(t, c, flooder, &v4)
		if err := c.Watch(context.Background(), flooder, v4.info, o.created.Mailbox, o.key, topics()); err != nil {
			t.Fatalf("mailbox %d within the network's budget: %v", i, err)
		}
	}
	o := createMailbox(t, c, flooder, &v4)
	err = c.Watch(context.Background(), flooder, v4.info, o.created.Mailbox, o.key, topics())
	expectCode(t, err, ErrQuota)
	if met.n.Load() != 1 {
		t.Fatalf("%d refusals counted, want 1", met.n.Load())
	}
	// Shrinking a watch set is always allowed.
	if err := c.Watch(context.Background(), flooder, v4.info, o.created.Mailbox, o.key, nil); err != nil {
		t.Fatalf("an empty watch: %v", err)
	}
	member, err := libp2p.New(libp2p.ListenAddrStrings("/ip6/::1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Close() })
	m := createMailbox(t, c, member, &v6)
	if err := c.Watch(context.Background(), member, v6.info, m.created.Mailbox, m.key, []string{newTopic()}); err != nil {
		t.Fatalf("an owner on another network: %v", err)
	}
}

// An ephemeral topic message (a group typing indicator, kind 'E') is
// neither filed for an absent watcher nor pushed to a present one: only
// the ordinary message published after it reaches either.
func TestWatchSkipsEphemeral(t *testing.T) {
	met := &topicMetrics{dropped: map[ErrorCode]int{}}
	r := startRelay(t, Config{Metrics: met})
	h := newHost(t)
	c := &Client{}
	away, here := createMailbox(t, c, h, r), createMailbox(t, c, h, r)
	topic := newTopic()
	away.watch(t, c, h, r, topic)
	here.watch(t, c, h, r, topic)
	sub := liveSub(t, c, h, r, here)
	pub := newPublisher(t, r)
	pub.waitRelay(topic, true)

	typing := groupData(120)
	typing[1] = gossip.TagKindEphemeral
	pub.publish(topic, typing)
	text := groupData(300)
	pub.publish(topic, text)
	expectTopicMessage(t, sub, text) // the first thing pushed is the text
	eventually(t, "the text filed for the absent watcher", func() bool { return met.filed.Load() == 1 })
	if got := drain(t, c, h, r, away); len(got) != 1 || !bytes.Equal(got[0].Envelope, text) {
		t.Fatalf("stored for the absent watcher: %d messages, want the text only", len(got))
	}
	if met.pushed.Load() != 1 {
		t.Fatalf("pushed %d, want 1 (the text)", met.pushed.Load())
	}
}
