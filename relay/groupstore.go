package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/hushnet/hush/internal/gossip"
)

// groupStore is the relay's group store (docs/RELAY.md "Group store"): it
// subscribes to the GossipSub group topics its mailboxes watch (Watch)
// and files every message seen on a topic into each mailbox watching it,
// through the deposit's storage path, with SourceTopic.
//
// Lock order: mailbox.mu, then groupStore.mu, then groupStore.watchMu.
// A topic reader takes watchMu alone, releases it, then takes mailbox
// locks one at a time.
type groupStore struct {
	s *Server

	// mu serialises changes of the watch sets (Watch, Delete, start,
	// stop) and guards the fields below.
	mu     sync.Mutex
	ps     *pubsub.PubSub  // the router, from start; nil with NoGroupStore
	ctx    context.Context // Run's context, from start
	closed bool            // stop was called: join nothing more
	joined map[string]*joinedTopic

	// watchMu guards watchers; it is written with mu held too, so holders
	// of mu may read watchers without it.
	watchMu  sync.RWMutex
	watchers map[string]map[*mailbox]struct{} // topic → mailboxes watching it

	// byIP is, per network (ipKey), how many topics the mailboxes whose
	// current watch set came from there watch; guarded by mu. Watch sets
	// loaded at start are counted nowhere until renewed.
	byIP    map[string]int
	refused time.Time // last "per-network topic budget" log line

	readers   sync.WaitGroup
	filed     chan []*pendingStore // readers → filer: stores queued for commit
	filerDone chan struct{}
}

// joinedTopic is a topic the router is subscribed to, with its reader.
type joinedTopic struct {
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc // stops the reader
}

// relayPeerQueue is the relay router's per-peer outbound queue (the
// members' is gossip.QueueSize).
const relayPeerQueue = 64

// filedQueue bounds the batches waiting for the filer; past it readers
// wait, and GossipSub drops what overflows the subscription's buffer.
const filedQueue = 1024

func newGroupStore(s *Server) *groupStore {
	return &groupStore{s: s, joined: make(map[string]*joinedTopic),
		watchers: make(map[string]map[*mailbox]struct{}), byIP: make(map[string]int)}
}

// load installs a stored watch set (New).
func (g *groupStore) load(mb *mailbox, rec *watchRecord) {
	mb.watchTime, mb.watching = rec.time, rec.topics
	g.mu.Lock()
	g.watchMu.Lock()
	for _, t := range rec.topics {
		g.addWatcherLocked(t, mb)
	}
	g.watchMu.Unlock()
	g.mu.Unlock()
}

func (g *groupStore) addWatcherLocked(topic string, mb *mailbox) {
	ws := g.watchers[topic]
	if ws == nil {
		ws = make(map[*mailbox]struct{})
		g.watchers[topic] = ws
	}
	ws[mb] = struct{}{}
}

// removeWatcherLocked reports whether nobody watches topic any more.
func (g *groupStore) removeWatcherLocked(topic string, mb *mailbox) bool {
	ws := g.watchers[topic]
	delete(ws, mb)
	if len(ws) == 0 {
		delete(g.watchers, topic)
		return true
	}
	return false
}

// start creates the GossipSub router on the relay's host and joins every
// watched topic. It does nothing with NoGroupStore.
func (g *groupStore) start(ctx context.Context) error {
	if g.s.cfg.NoGroupStore {
		return nil
	}
	// The router's own logs name topics and peers: discarded. A relay
	// mostly listens; it forwards what it hears, but members do not depend
	// on it for that, so its per-peer send queues are small: every node
	// holding a mailbox here is a GossipSub peer, and a burst must not fill
	// a large queue for each.
	//
	// The router runs on an Echo guard: a peer hears of a topic from the
	// relay only after it announced the topic itself, so a stranger that
	// connects learns none (docs/protocol/groups.md §16.11).
	quiet := slog.New(slog.DiscardHandler)
	guard := gossip.NewGuard(g.s.h, gossip.Echo)
	opts := append(gossip.Options(), pubsub.WithLogger(quiet), pubsub.WithRPCLogger(quiet),
		pubsub.WithPeerOutboundQueueSize(relayPeerQueue))
	ps, err := pubsub.NewGossipSub(ctx, guard, append(opts, guard.Options()...)...)
	if err != nil {
		return fmt.Errorf("relay: group store: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ps, g.ctx = ps, ctx
	g.filed = make(chan []*pendingStore, filedQueue)
	g.filerDone = make(chan struct{})
	go g.filer()
	for t := range g.watchers {
		g.joinLocked(t)
	}
	g.s.m.WatchedTopics(int64(len(g.watchers)))
	return nil
}

// stop stops every topic reader, lets the filer commit what they queued
// and removes the router's protocol handlers from the host. Run's context
// (the router's) is already cancelled.
func (g *groupStore) stop() {
	g.mu.Lock()
	g.closed = true
	for t, j := range g.joined {
		j.cancel()
		delete(g.joined, t)
	}
	running := g.ps != nil
	g.mu.Unlock()
	if !running {
		return
	}
	g.readers.Wait()
	close(g.filed)
	<-g.filerDone
	for _, id := range pubsub.GossipSubDefaultProtocols {
		g.s.h.RemoveStreamHandler(id)
	}
}

// GossipProtocols lists the GossipSub protocol IDs the group store's
// router speaks, for resource limits set outside this package.
func GossipProtocols() []protocol.ID { return slices.Clone(pubsub.GossipSubDefaultProtocols) }

// joinLocked subscribes the router to topic and starts its reader, unless
// it is already joined or the group store does not run.
func (g *groupStore) joinLocked(topic string) {
	if g.ps == nil || g.closed || g.ctx.Err() != nil {
		return
	}
	if _, ok := g.joined[topic]; ok {
		return
	}
	if err := g.ps.RegisterTopicValidator(topic, gossip.Anonymous, pubsub.WithValidatorInline(true)); err != nil {
		g.logErr("group topic join failed", topic, err)
		return
	}
	t, err := g.ps.Join(topic)
	if err != nil {
		g.ps.UnregisterTopicValidator(topic)
		g.logErr("group topic join failed", topic, err)
		return
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(gossip.QueueSize))
	if err != nil {
		t.Close()
		g.ps.UnregisterTopicValidator(topic)
		g.logErr("group topic subscribe failed", topic, err)
		return
	}
	ctx, cancel := context.WithCancel(g.ctx)
	g.joined[topic] = &joinedTopic{topic: t, sub: sub, cancel: cancel}
	g.readers.Add(1)
	go g.read(ctx, topic, sub)
}

// leaveLocked stops the reader of topic (without waiting for it: it may
// be filing into a mailbox whose lock the caller holds), cancels the
// subscription, closes the topic and unregisters its validator.
func (g *groupStore) leaveLocked(topic string) {
	j := g.joined[topic]
	if j == nil {
		return
	}
	delete(g.joined, topic)
	j.cancel()
	j.sub.Cancel()
	if err := j.topic.Close(); err != nil && g.ctx.Err() == nil {
		g.logErr("group topic close failed", topic, err)
	}
	if err := g.ps.UnregisterTopicValidator(topic); err != nil && g.ctx.Err() == nil {
		g.logErr("group topic validator removal failed", topic, err)
	}
}

// logErr logs a router error with the topic name cut out: the relay logs
// no topic names.
func (g *groupStore) logErr(msg, topic string, err error) {
	g.s.log.Error(msg, "err", strings.ReplaceAll(err.Error(), topic, "<topic>"))
}

// read files the messages of one topic until its context ends.
func (g *groupStore) read(ctx context.Context, topic string, sub *pubsub.Subscription) {
	defer g.readers.Done()
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		g.file(topic, m.Data, m.ReceivedFrom)
	}
}

// file stores data into every mailbox watching topic now and hands the
// queued stores to the filer, which waits for their grouped commit; so a
// reader queues the next message while the last one is being committed.
// A mailbox over its quota (or a relay over its cap) drops the message
// for that mailbox only; so does one whose publishing peer (from) or its
// network has used up its filing budget (filebudget.go).
func (g *groupStore) file(topic string, data []byte, from peer.ID) {
	g.watchMu.RLock()
	boxes := make([]*mailbox, 0, len(g.watchers[topic]))
	for mb := range g.watchers[topic] {
		boxes = append(boxes, mb)
	}
	g.watchMu.RUnlock()
	if len(boxes) == 0 {
		return
	}
	if len(data) >= 2 && data[1] == gossip.TagKindEphemeral {
		return // a typing indicator: members online have it from the topic; nobody wants it later
	}
	s := g.s
	if len(data) == 0 || len(data) > gossip.MaxMessageSize || len(data) > s.cfg.MaxEnvelope {
		for range boxes {
			s.m.TopicDropped(CodeTooLarge)
		}
		return
	}
	var batch []*pendingStore
	payer := s.filing.payer(from)
	for _, mb := range boxes {
		if s.pushLive(mb, topic, data) {
			continue
		}
		if !payer.take() {
			s.m.TopicDropped(CodeRateLimited)
			continue
		}
		p, rerr := s.storeQueue(mb, data, SourceTopic, topic)
		if rerr != nil {
			payer.refund()
			if rerr.code != CodeNotFound { // deleted meanwhile
				s.m.TopicDropped(rerr.code)
			}
			continue
		}
		batch = append(batch, p)
	}
	if len(batch) > 0 {
		g.filed <- batch
	}
}

// pushLive hands a topic message straight to the owner's live
// subscription, without storing it: an owner that is online gets the
// group's messages from the topic itself, so this copy only covers an
// owner the mesh does not reach, and storing every message for every
// online member would cost the relay two commits per member per message.
// What the owner has not acknowledged when its subscription ends is
// stored then (session.storeUnacked); only a relay crash loses such
// pushes, and anti-entropy among the members repairs that. It reports
// false when there is no live subscription (or its queue is full): the
// caller stores the message.
func (s *Server) pushLive(mb *mailbox, topic string, data []byte) bool {
	mb.mu.Lock()
	ss := mb.sub
	mb.mu.Unlock()
	if ss == nil {
		return false
	}
	msg := &message{storedAt: uint64(s.cfg.Now().Unix()), source: SourceTopic, topic: topic, envelope: data, seq: s.pushSeq.Add(1)}
	rand.Read(msg.id[:])
	if !ss.pushTransient(msg) {
		return false
	}
	s.m.TopicPushed(len(data))
	return true
}

// filer finishes the stores the readers queued, in order.
func (g *groupStore) filer() {
	defer close(g.filerDone)
	for batch := range g.filed {
		for _, p := range batch {
			if rerr := g.s.storeFinish(p); rerr != nil {
				g.s.m.TopicDropped(rerr.code)
				continue
			}
			g.s.m.TopicFiled(int(p.ref.size))
			g.s.wake.notify(p.mb)
		}
	}
}

// setLocked replaces mb's watch set with topics (distinct, valid names)
// at time t: it checks the relay-wide cap, stores the record, then joins
// the topics nobody watched and leaves those nobody watches any more.
// mb.mu is held.
func (g *groupStore) setLocked(mb *mailbox, t uint64, topics []string, ip string) *reqErr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ip != "" {
		used := g.byIP[ip] + len(topics)
		if mb.watchIP == ip {
			used -= len(mb.watching)
		}
		if len(topics) > len(mb.watching) && used > g.s.cfg.MaxTopicsPerIP {
			if now := time.Now(); now.Sub(g.refused) > time.Minute {
				g.refused = now
				g.s.log.Warn("watch refused: a network's mailboxes watch as many group topics as one network may", "max_topics_per_ip", g.s.cfg.MaxTopicsPerIP)
			}
			g.s.m.WatchRefused()
			return fail(CodeQuota, "mailboxes from your network watch as many group topics as this relay allows one network")
		}
	}
	var added, removed []string
	newTopics := 0
	for _, name := range topics {
		if !slices.Contains(mb.watching, name) {
			added = append(added, name)
			if _, ok := g.watchers[name]; !ok {
				newTopics++
			}
		}
	}
	freed := 0
	for _, name := range mb.watching {
		if !slices.Contains(topics, name) {
			removed = append(removed, name)
			if len(g.watchers[name]) == 1 {
				freed++
			}
		}
	}
	total := len(g.watchers) + newTopics - freed
	if newTopics > 0 && total > g.s.cfg.MaxTopics {
		return fail(CodeFull, "this relay watches as many group topics as it can")
	}
	topics = slices.Clone(topics)
	rec := &watchRecord{time: t, topics: topics}
	b := g.s.db.Batch()
	b.Put(g.s.t.watches, mb.id[:], rec.encode())
	if err := g.s.db.CommitGrouped(b); err != nil {
		g.s.log.Error("watch store failed", "err", err)
		return fail(CodeInternal, "store failed")
	}
	var left []string
	g.watchMu.Lock()
	for _, name := range removed {
		if g.removeWatcherLocked(name, mb) {
			left = append(left, name)
		}
	}
	for _, name := range added {
		g.addWatcherLocked(name, mb)
	}
	n := len(g.watchers)
	g.watchMu.Unlock()
	if mb.watchIP != "" {
		if g.byIP[mb.watchIP] -= len(mb.watching); g.byIP[mb.watchIP] <= 0 {
			delete(g.byIP, mb.watchIP)
		}
	}
	if ip != "" && len(topics) > 0 {
		g.byIP[ip] += len(topics)
	}
	mb.watchTime, mb.watching, mb.watchIP = t, topics, ip
	for _, name := range left {
		g.leaveLocked(name)
	}
	for _, name := range topics { // added ones, and any whose join failed before
		g.joinLocked(name)
	}
	g.s.m.WatchedTopics(int64(n))
	return nil
}

// dropLocked forgets mb's watch set after its mailbox was deleted (the
// record went in the same batch). mb.mu is held.
func (g *groupStore) dropLocked(mb *mailbox) {
	if len(mb.watching) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var left []string
	g.watchMu.Lock()
	for _, name := range mb.watching {
		if g.removeWatcherLocked(name, mb) {
			left = append(left, name)
		}
	}
	n := len(g.watchers)
	g.watchMu.Unlock()
	if mb.watchIP != "" {
		if g.byIP[mb.watchIP] -= len(mb.watching); g.byIP[mb.watchIP] <= 0 {
			delete(g.byIP, mb.watchIP)
		}
	}
	mb.watching, mb.watchIP = nil, ""
	for _, name := range left {
		g.leaveLocked(name)
	}
	g.s.m.WatchedTopics(int64(n))
}

// topicCount returns the number of distinct watched topics.
func (g *groupStore) topicCount() int {
	g.watchMu.RLock()
	defer g.watchMu.RUnlock()
	return len(g.watchers)
}

// watch serves a Watch: it replaces the mailbox's watched topics.
func (s *Server) watch(c *conn, m *Watch) (any, *reqErr) {
	if s.cfg.NoGroupStore {
		return nil, fail(CodeUnsupported, "this relay keeps no group store")
	}
	if !s.allow(c) {
		return nil, fail(CodeRateLimited, "too many requests; retry later")
	}
	mb, rerr := s.ownerRequest(m.Mailbox, m.Time, func(o ed25519.PublicKey) bool { return VerifyWatch(m, o) })
	if rerr != nil {
		return nil, rerr
	}
	if err := checkTopics(m.Topics); err != nil {
		return nil, fail(CodeBadRequest, err.Error())
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted {
		return nil, fail(CodeNotFound, "no such mailbox")
	}
	if m.Time <= mb.watchTime {
		return nil, fail(CodeAuth, "time not after the last watch")
	}
	if rerr := s.group.setLocked(mb, m.Time, m.Topics, c.ipKey); rerr != nil {
		return nil, rerr
	}
	return OK, nil
}

// checkTopics checks a watch list: at most MaxWatchTopics valid group
// topic names, no duplicates. Its errors name no topic.
func checkTopics(topics []string) error {
	if len(topics) > MaxWatchTopics {
		return fmt.Errorf("at most %d topics", MaxWatchTopics)
	}
	for i, t := range topics {
		if !gossip.ValidTopic(t) {
			return errors.New("not a group topic name")
		}
		if slices.Contains(topics[:i], t) {
			return errors.New("duplicate topic")
		}
	}
	return nil
}
