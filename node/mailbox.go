package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/gate"
	"github.com/hushnet/hush/relay"
)

// Mailbox parameters.
const (
	oneTimeBundles  = 20               // one-time prekey bundles uploaded per relay
	relayTimeout    = 10 * time.Second // one request to a relay
	mailboxBackoff  = 30 * time.Second // the longest wait before resubscribing
	directRetryWait = 30 * time.Second // after a failed direct dial, use relays this long
)

// mailboxRec is a mailboxes-table record, keyed by the relay's peer ID.
type mailboxRec struct {
	Relay   string    `json:"relay"` // multiaddr ending in /p2p/<id>
	Owner   []byte    `json:"owner"` // Ed25519 private key, fresh for this mailbox
	Mailbox []byte    `json:"mailbox"`
	Deposit []byte    `json:"deposit"`
	Created time.Time `json:"created"`
}

// ownMailboxesLocked lists this device's mailboxes for its card.
func (n *Node) ownMailboxesLocked() []card.Mailbox {
	var out []card.Mailbox
	for _, r := range n.mailboxes {
		if len(out) == card.MaxMailboxes {
			break
		}
		m, err := ma.NewMultiaddr(r.Relay)
		if err != nil {
			continue
		}
		out = append(out, card.Mailbox{Relay: m.Bytes(), DepositID: r.Deposit})
	}
	return out
}

// loadMailboxesLocked reads the mailbox records.
func (n *Node) loadMailboxesLocked() error {
	return n.tabs.mailboxes.Scan(func(id, v []byte) error {
		var r mailboxRec
		if err := jsonUnmarshal(v, &r); err != nil {
			return err
		}
		n.mailboxes[peer.ID(id)] = &r
		return nil
	})
}

// catchUpMax bounds how long direct delivery waits, after a start, for
// the relay mailboxes to be drained (the catch-up gate).
const catchUpMax = 5 * time.Second

// catchUp is this run's catch-up gate: it opens once every relay mailbox
// was drained after the start (or after catchUpMax, or when the run
// ends). Until then direct delivery (handleMsgStream) waits, so that what
// contacts left in the mailboxes while this device was away is stored,
// and shown, before what they send next directly.
func (n *Node) catchUp() *gate.Gate[peer.ID] {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.caughtUp
}

// waitCaughtUp blocks until the catch-up gate opens.
func (n *Node) waitCaughtUp() {
	if g := n.catchUp(); g != nil {
		<-g.Opened()
	}
}

// mailboxLoop keeps a mailbox on one relay: it creates it once, uploads
// prekeys, and holds a live subscription, draining what arrives and
// acknowledging each envelope after it is stored. It reconnects with
// back-off until ctx ends.
func (n *Node) mailboxLoop(ctx context.Context, ri peer.AddrInfo, addr string) {
	backoff := backoffMin
	drained := false
	for ctx.Err() == nil {
		subscribed := false
		err := n.serveMailbox(ctx, ri, addr, &drained, &subscribed)
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			backoff = backoffMin // a session ended (relay restart): failures start counting again
		}
		n.log.Debug("relay mailbox unavailable, retrying", "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, mailboxBackoff)
	}
}

func (n *Node) serveMailbox(ctx context.Context, ri peer.AddrInfo, addr string, drained, subscribed *bool) error {
	rec, err := n.ensureMailbox(ctx, ri, addr)
	n.link.Done(ri.ID) // the first attempt has ended (WaitLink)
	if err != nil {
		return err
	}
	owner := ed25519.PrivateKey(rec.Owner)
	var mbox relay.ID
	copy(mbox[:], rec.Mailbox)
	// Each session tops the relay's one-time bundles up (one round trip
	// when nothing was fetched).
	if err := n.uploadPrekeys(ctx, ri, mbox, owner); err != nil {
		n.log.Debug("prekey upload failed", "err", err)
	}
	sub, err := n.relays.Subscribe(ctx, n.hostOf(), ri, mbox, owner, true)
	if err != nil {
		return err
	}
	*subscribed = true
	defer sub.Close()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	n.loops.Go(func(context.Context) { n.watchLoop(wctx, ri, mbox, owner) })
	n.loops.Go(func(context.Context) { n.wakeLoop(wctx, ri, mbox, owner) })
	backlog := sub.Drained()
	for {
		var batch []*relay.Deliver
		caughtUp := false
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-sub.Messages():
			if !ok {
				return sub.Err()
			}
			batch = append(batch, d)
		case <-backlog:
			// Every backlog delivery is already in Messages: take them
			// all (below), then count this mailbox as drained.
			backlog, caughtUp = nil, true
		}
		// Take whatever else is already waiting: one commit for all.
	more:
		for len(batch) < deliverWindow {
			select {
			case d, ok := <-sub.Messages():
				if !ok {
					break more
				}
				batch = append(batch, d)
			default:
				break more
			}
		}
		items := make([]*envelope.Inner, len(batch))
		var topicMsgs []topicMsg
		for i, d := range batch {
			if d.Source == relay.SourceTopic {
				// Filed by the relay's group store from a watched topic:
				// a group message, which authenticates itself.
				topicMsgs = append(topicMsgs, topicMsg{topic: d.Topic, data: d.Envelope})
				continue
			}
			in, err := n.opener.Open(d.Envelope)
			if err != nil {
				n.log.Debug("undecryptable envelope from relay", "err", err)
				continue
			}
			items[i] = in
		}
		// Pairwise messages first: they may carry the sender keys the
		// group messages need (a group message without its key is
		// dropped, then repaired by anti-entropy; a pairwise message
		// waiting for an op is held by the engine).
		statuses := n.receive(items, true)
		groupStatus := ackOK
		if len(topicMsgs) > 0 && n.onGroupWires(topicMsgs, true) != nil {
			groupStatus = ackRetry // not stored: the relay keeps them
		}
		for i, in := range items {
			switch {
			case batch[i].Source == relay.SourceTopic:
				statuses[i] = groupStatus
			case in == nil && statuses[i] == ackRejected:
				statuses[i] = ackOK // unreadable: never acceptable, done
			}
		}
		for i, d := range batch {
			if statuses[i] == ackRetry {
				continue // stays on the relay; delivered again next time
			}
			if err := sub.Ack(d.Message); err != nil {
				return err
			}
		}
		if caughtUp && !*drained {
			*drained = true
			n.catchUp().Done(ri.ID)
			n.drainGate().Done(ri.ID)
		}
	}
}

// ensureMailbox returns the mailbox on a relay, creating it on first use.
func (n *Node) ensureMailbox(ctx context.Context, ri peer.AddrInfo, addr string) (*mailboxRec, error) {
	n.mu.Lock()
	rec := n.mailboxes[ri.ID]
	n.mu.Unlock()
	if rec != nil {
		return rec, nil
	}
	_, owner, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, relayTimeout)
	defer cancel()
	created, err := n.relays.Create(rctx, n.hostOf(), ri, owner, nil)
	if err != nil {
		return nil, fmt.Errorf("create mailbox: %w", err)
	}
	rec = &mailboxRec{Relay: addr, Owner: owner, Mailbox: created.Mailbox[:], Deposit: created.Deposit[:], Created: n.now().UTC()}
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.db.Batch()
	putJSON(b, n.tabs.mailboxes, []byte(ri.ID), rec)
	if err := n.commit(b); err != nil {
		return nil, err
	}
	n.mailboxes[ri.ID] = rec
	n.ownCard = nil // the card now lists this mailbox
	n.log.Info("mailbox created on relay")
	return rec, nil
}

// uploadPrekeys keeps oneTimeBundles one-time prekey bundles on a relay
// and its last-resort bundle current. It asks the relay how many it still
// holds (an AddPrekeys with none, which also replaces the last-resort
// bundle) and hands out only the difference: a bundle the relay still
// holds went to nobody, so starts and reconnects do not grow the store's
// pool of handed-out keys. A relay that does not know AddPrekeys gets the
// full set replaced (PutPrekeys), as before.
func (n *Node) uploadPrekeys(ctx context.Context, ri peer.AddrInfo, mbox relay.ID, owner ed25519.PrivateKey) error {
	n.mu.Lock()
	lastResort, err := n.lastResortBundleLocked(n.now())
	n.mu.Unlock()
	if err != nil {
		return err
	}
	h := n.hostOf()
	rctx, cancel := context.WithTimeout(ctx, relayTimeout)
	defer cancel()
	held, err := n.relays.AddPrekeys(rctx, h, ri, mbox, owner, lastResort, nil)
	if errors.Is(err, relay.ErrBadRequest) { // a relay from before AddPrekeys
		oneTime, err := n.handOut(oneTimeBundles)
		if err != nil {
			return err
		}
		return n.relays.PutPrekeys(rctx, h, ri, mbox, owner, lastResort, oneTime)
	}
	if err != nil || held >= oneTimeBundles {
		return err
	}
	oneTime, err := n.handOut(oneTimeBundles - held)
	if err != nil || len(oneTime) == 0 {
		return err
	}
	_, err = n.relays.AddPrekeys(rctx, h, ri, mbox, owner, lastResort, oneTime)
	return err
}

// lastResortBundleLocked returns the bundle senders use when no one-time
// bundle is left: the current signed and last-resort prekeys (rotated if
// due, which is saved).
func (n *Node) lastResortBundleLocked(now time.Time) ([]byte, error) {
	b, err := n.local.Prekeys.Bundle(now)
	if err != nil {
		return nil, err
	}
	b.OneTime, b.PQOneTime = nil, nil
	return b.Marshal(), n.savePrekeysLocked()
}

// handOut marks up to k one-time bundles handed out (making keys when
// the pool has too few) and saves the store before they leave, so a
// crash cannot hand the same key out twice.
func (n *Node) handOut(k int) ([][]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	pk := n.local.Prekeys
	if ec, _ := pk.OneTimeAvailable(); ec < k {
		if err := pk.GenerateOneTime(k-ec, now); err != nil {
			n.log.Warn("one-time prekey pool full; new sessions use the last-resort key", "err", err)
		}
	}
	var out [][]byte
	for range k {
		b, err := pk.Bundle(now)
		if err != nil {
			return nil, err
		}
		if b.OneTime == nil {
			break
		}
		out = append(out, b.Marshal())
	}
	return out, n.savePrekeysLocked()
}

func (n *Node) hostOf() host.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// depositRound deposits, from h (the queue's own identity, never this
// device's), the queue's redundant entries into the mailboxes that have
// not confirmed them, then batch into every mailbox the device lists
// (docs/protocol/messaging.md, "Redundant mailboxes"). Each mailbox is a
// lane of its own, run side by side: it takes its entries in seq order
// and stops at its first failure, so no mailbox gets an entry before the
// ones queued ahead of it. A batch entry counts as sent once one relay
// gave a receipt, and the round settles the batch up to the first entry
// no relay took, so order is kept; the mailboxes that did not confirm a
// sent entry are kept with it for the next rounds. With nothing but
// redundant entries, a lane that failed makes the round fail, so the
// loop backs off.
func (n *Node) depositRound(ctx context.Context, h host.Host, q *peerQueue, batch []*outEntry) error {
	batch = n.dropDirectOnly(q, batch) // presence never reaches a relay
	n.mu.Lock()
	boxes := n.mailboxesOfLocked(q.cert.DeviceID())
	n.pruneRedundantLocked(q, boxes, time.Now())
	older := slices.Clone(q.redundant) // their Left changes only on this loop
	n.mu.Unlock()
	if len(boxes) == 0 {
		return errNoMailbox
	}
	if len(batch) == 0 && len(older) == 0 {
		return nil
	}
	keys := make([]string, len(boxes))
	lanes := make([][]*outEntry, len(boxes))
	sealed := make(map[*outEntry][]byte)
	acc, dev := n.cert.Account(), n.cert.DeviceID()
	seal := func(e *outEntry) {
		if _, done := sealed[e]; done {
			return
		}
		env, err := envelope.Seal(q.cert.MailboxKey(), &envelope.Inner{
			SenderAccount: acc, SenderDevice: dev, Kind: envelope.Kind(e.Kind), Body: e.Body})
		if err != nil {
			env = nil // never acceptable anywhere
		}
		sealed[e] = env
	}
	for i, mb := range boxes {
		keys[i] = hex.EncodeToString(mb.DepositID)
		full := false
		for _, e := range older {
			if !slices.Contains(e.Left, keys[i]) {
				continue
			}
			if len(lanes[i]) == deliverWindow {
				full = true // more next round; the batch waits behind them here
				break
			}
			lanes[i] = append(lanes[i], e)
		}
		if !full {
			lanes[i] = append(lanes[i], batch...)
		}
		for _, e := range lanes[i] {
			seal(e)
		}
	}
	// A lane's outcome: the entries the mailbox confirmed, those it
	// will never take (dead for it), and why it stopped.
	type outcome struct {
		took, dead map[*outEntry]bool
		err        error
	}
	res := make([]outcome, len(boxes))
	var wg sync.WaitGroup
	for i, mb := range boxes {
		res[i] = outcome{took: make(map[*outEntry]bool), dead: make(map[*outEntry]bool)}
		wg.Go(func() {
			r := &res[i]
			for j, e := range lanes[i] {
				env := sealed[e]
				if env == nil {
					continue
				}
				err := n.depositTo(ctx, h, mb, env)
				switch {
				case err == nil:
					r.took[e] = true
				case errors.Is(err, relay.ErrTooLarge):
					r.dead[e] = true // this relay never takes it; the rest may follow
				case errors.Is(err, relay.ErrNotFound):
					for _, rest := range lanes[i][j:] {
						r.dead[rest] = true // the relay has no such mailbox
					}
					r.err = err
					return
				default:
					r.err = err
					return
				}
			}
		})
	}
	wg.Wait()

	// stillLeft returns those of left (mailbox keys) that neither
	// confirmed e in this round nor are dead for it.
	stillLeft := func(e *outEntry, left []string) []string {
		var out []string
		for _, k := range left {
			i := slices.Index(keys, k)
			if i < 0 || (!res[i].took[e] && !res[i].dead[e]) {
				out = append(out, k)
			}
		}
		return out
	}
	// anyErr is why a lane stopped; waitErr leaves out mailboxes that
	// do not exist (dead, not worth waiting for).
	var anyErr, waitErr error
	for _, r := range res {
		if r.err != nil {
			anyErr = r.err
			if !errors.Is(r.err, relay.ErrNotFound) {
				waitErr = r.err
			}
		}
	}
	statuses := make([]byte, 0, len(batch))
	left := make([][]string, 0, len(batch))
	for _, e := range batch {
		env, tried := sealed[e]
		if tried && env == nil {
			statuses = append(statuses, ackRejected)
			left = append(left, nil)
			continue
		}
		took := false
		for i := range res {
			took = took || res[i].took[e]
		}
		if !took {
			break
		}
		statuses = append(statuses, ackOK)
		if e.Ephemeral {
			left = append(left, nil) // a typing indicator is not worth copies
		} else {
			left = append(left, stillLeft(e, keys))
		}
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.newTxnLocked()
	wrote := len(statuses) > 0
	for _, e := range older {
		newLeft := stillLeft(e, e.Left)
		if len(newLeft) == len(e.Left) {
			continue
		}
		i := slices.Index(q.redundant, e)
		if i < 0 {
			continue // dropped meanwhile (its device left the card)
		}
		wrote = true
		if len(newLeft) == 0 {
			n.deleteOut(t.b, e)
			q.redundant = slices.Delete(q.redundant, i, i+1)
			continue
		}
		e.Left = newLeft
		n.putOut(t.b, e)
	}
	n.settleLocked(t, batch[:len(statuses)], statuses, StateSent, left, time.Now())
	if wrote {
		n.finishInBackgroundLocked(t)
	}
	switch {
	case len(batch) > 0 && len(statuses) == 0 && anyErr != nil:
		return fmt.Errorf("no relay took the message: %w", anyErr)
	case len(batch) > 0 && len(statuses) == 0 && !wrote:
		return errors.New("no relay took the message")
	case len(batch) == 0 && waitErr != nil:
		return fmt.Errorf("redundant deposits wait: %w", waitErr)
	}
	return nil // progress: the loop goes on at once
}

var errNoMailbox = errors.New("recipient lists no mailbox")

// relayInfo returns the relay to dial and the deposit ID of a mailbox
// listed in a card.
func relayInfo(mb card.Mailbox) (peer.AddrInfo, relay.ID, error) {
	var dep relay.ID
	m, err := ma.NewMultiaddrBytes(mb.Relay)
	if err != nil {
		return peer.AddrInfo{}, dep, err
	}
	pi, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return peer.AddrInfo{}, dep, err
	}
	copy(dep[:], mb.DepositID)
	return *pi, dep, nil
}

// depositTo leaves a sealed envelope in one mailbox. The dial skips
// libp2p's dial back-off (up to 5 minutes after repeated failures): the
// delivery loop backs off by itself, and a relay that comes back gets
// the deposits waiting for it at the loop's next try.
func (n *Node) depositTo(ctx context.Context, h host.Host, mb card.Mailbox, sealed []byte) error {
	ri, dep, err := relayInfo(mb)
	if err != nil {
		return err
	}
	ctx = network.WithForceDirectDial(ctx, "deposit")
	rctx, cancel := context.WithTimeout(ctx, relayTimeout)
	defer cancel()
	_, err = n.relays.Deposit(rctx, h, ri, dep, sealed)
	return err
}

// prefetchPrekeys asks a contact's relays for a one-time prekey bundle for
// each device this node has no session with yet, so the first message
// can use one-time keys. Best effort: on any failure the card's bundle is
// used.
func (n *Node) prefetchPrekeys(ctx context.Context, c *card.Card) {
	var h host.Host // from an identity of its own, made on first need
	defer func() {
		if h != nil {
			h.Close()
		}
	}()
	for _, d := range c.Devices {
		n.mu.Lock()
		_, have := n.prefetched[d.ID]
		set := n.sets[d.ID]
		hasSession := set != nil && set.HasSession()
		n.mu.Unlock()
		if have || hasSession || len(d.Mailboxes) == 0 {
			continue
		}
		if h == nil {
			var err error
			if h, err = newAnonHost(); err != nil {
				h = nil
				return
			}
		}
		for _, mb := range d.Mailboxes {
			ri, dep, err := relayInfo(mb)
			if err != nil {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, relayTimeout)
			bundle, oneTime, err := n.relays.GetPrekeys(rctx, h, ri, dep)
			cancel()
			if err != nil || !oneTime {
				continue
			}
			n.mu.Lock()
			n.keepPrefetchedLocked(d.ID, bundle)
			n.mu.Unlock()
			break
		}
	}
}

// keepPrefetchedLocked keeps a fetched one-time bundle for device id,
// unless the device has a session or a bundle by now: the fetch ran
// without the lock, a session may have started meanwhile (using a bundle
// another fetch left), and a bundle kept then would wait for a session
// that never comes. It reports whether it kept it.
func (n *Node) keepPrefetchedLocked(id identity.DeviceID, bundle []byte) bool {
	set := n.sets[id]
	if _, have := n.prefetched[id]; have || (set != nil && set.HasSession()) {
		return false
	}
	n.prefetched[id] = bundle
	return true
}

// topicsChangedLocked wakes the watch loops: the set of group topics
// changed.
func (n *Node) topicsChangedLocked() {
	close(n.topicsCh)
	n.topicsCh = make(chan struct{})
}

// watchTopicsLocked lists the group topics this device listens on,
// sorted, at most relay.MaxWatchTopics (current epochs first).
func (n *Node) watchTopicsLocked() []string {
	var cur, grace []string
	for _, gs := range n.groups {
		if !gs.eng.IsMember() {
			continue
		}
		now := gs.eng.Topic()
		for _, name := range gs.eng.Topics() {
			if name == now {
				cur = append(cur, name)
			} else {
				grace = append(grace, name)
			}
		}
	}
	out := append(cur, grace...)
	if len(out) > relay.MaxWatchTopics {
		out = out[:relay.MaxWatchTopics]
	}
	slices.Sort(out)
	return out
}

// waitRetry waits *backoff before a retry and doubles it up to
// backoffMax; it reports false if ctx ended first.
func waitRetry(ctx context.Context, backoff *time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*backoff):
	}
	*backoff = min(*backoff*2, backoffMax)
	return true
}

// watchLoop keeps the relay's group store for this mailbox in step with
// the group topics this device listens on (docs/RELAY.md "Group store"):
// the relay files what is published there while the device is away. It
// runs while the mailbox subscription is up.
func (n *Node) watchLoop(ctx context.Context, ri peer.AddrInfo, mbox relay.ID, owner ed25519.PrivateKey) {
	keepInStep(ctx, n, inStep[[]string]{
		what: "relay watch",
		current: func() ([]string, <-chan struct{}) {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.watchTopicsLocked(), n.topicsCh
		},
		equal: slices.Equal[[]string],
		send: func(ctx context.Context, h host.Host, topics []string) error {
			return n.relays.Watch(ctx, h, ri, mbox, owner, topics)
		},
		accepted: func(topics []string) {
			n.mu.Lock()
			n.relayWatch[ri.ID] = topics
			n.mu.Unlock()
		},
		unsupported: func([]string) { n.log.Debug("relay keeps no group store") },
	})
}

// inStep is one owner setting a relay keeps for a mailbox (the watched
// topics, the wake handle), to be kept equal to this device's state.
type inStep[T any] struct {
	what        string                      // for the log
	current     func() (T, <-chan struct{}) // the value now, and a channel closed when it changes
	equal       func(a, b T) bool           // whether the relay already holds the value
	held        *T                          // what the relay holds before the first send; nil: unknown, send once
	send        func(context.Context, host.Host, T) error
	accepted    func(T) // the relay took the value
	unsupported func(T) // the relay does not offer the setting; the loop ends
}

// keepInStep sends s's value to the relay at the start (unless it is
// known to hold it) and whenever it changes, retrying with back-off,
// until ctx ends. It runs while the mailbox subscription is up.
func keepInStep[T any](ctx context.Context, n *Node, s inStep[T]) {
	held, known := s.held, s.held != nil
	var have T
	if known {
		have = *held
	}
	backoff := backoffMin
	for {
		want, changed := s.current()
		if !known || !s.equal(want, have) {
			rctx, cancel := context.WithTimeout(ctx, relayTimeout)
			err := s.send(rctx, n.hostOf(), want)
			cancel()
			switch {
			case err == nil:
				have, known, backoff = want, true, backoffMin
				s.accepted(want)
			case errors.Is(err, relay.ErrUnsupported):
				s.unsupported(want)
				return
			case ctx.Err() != nil:
				return
			default:
				n.log.Debug(s.what+" failed, retrying", "backoff", backoff, "err", err)
				if !waitRetry(ctx, &backoff) {
					return
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
