package node

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	msync "github.com/hushnet/hush/sync"
)

// Outbox delivery parameters.
const (
	deliverWindow  = 256              // frames written before waiting for their acks
	streamDeadline = 15 * time.Second // per round of frames and acks
	dialTimeout    = 5 * time.Second
	backoffMin     = 500 * time.Millisecond
	backoffMax     = 30 * time.Second
	// anonIdle is how long a queue keeps its deposit identity without
	// traffic: long enough for a conversation, short enough that the
	// relay cannot tie one day's deposits to the next.
	anonIdle = time.Minute
)

// outRec is an outbox-table record: id = recipient device, seq = order.
type outRec struct {
	Seq     uint64    `json:"seq"`
	MsgID   string    `json:"msg"`
	Track   bool      `json:"track,omitempty"` // acks move the message's state
	Account string    `json:"acct"`
	Kind    uint8     `json:"kind"`
	Body    []byte    `json:"body"` // session output, sent as is (retries resend the same bytes)
	Created time.Time `json:"created"`
	// Ephemeral entries (typing indicators) are dropped instead of sent
	// once older than ephemeralTTL.
	Ephemeral bool `json:"eph,omitempty"`
	// DirectOnly entries (presence) go only on a live direct connection:
	// never deposited to a relay mailbox, never over a relayed circuit,
	// never retried later. They live in memory only (putOut skips them),
	// so a restart drops them too; a round that would go any other way
	// drops them (dropDirectOnlyLocked).
	DirectOnly bool `json:"-"`
	// Redundant deposit (docs/protocol/messaging.md, "Redundant
	// mailboxes"): SentMS is when a relay first took the entry (unix ms;
	// 0: not yet), Left the mailboxes the device listed then that have
	// not confirmed it (deposit IDs, hex). Such an entry has left the
	// queue; it is only deposited into Left until each confirms or is
	// declared dead.
	SentMS int64    `json:"sent,omitempty"`
	Left   []string `json:"left,omitempty"`
}

// ephemeralTTL is how long a typing indicator may wait for delivery;
// it may be dropped up to staleScanEvery later.
const (
	ephemeralTTL   = 5 * time.Second
	staleScanEvery = time.Second
)

// redundantFor is how long a mailbox may fail to confirm an entry after a
// relay first took it: past it the mailbox is declared dead for the entry.
const redundantFor = 24 * time.Hour

type outEntry struct {
	outRec
	device  identity.DeviceID
	durable bool // committed: may leave the node
	// early: its session state was stored before it was sealed (a
	// reservation), so it may go direct while its own commit runs, once
	// releaseEarlyLocked set commitDone (closed when that commit finished,
	// either way). Relays get only committed entries.
	early      bool
	commitDone <-chan struct{}
	// inflight: written on the queue's direct stream, its status not
	// back yet (directStream; only the queue's deliverLoop uses it).
	inflight bool
}

// releasable reports whether e may be sent: committed, or released early.
func (e *outEntry) releasable() bool { return e.durable || e.commitDone != nil }

// durablePrefix cuts batch before its first entry that is not committed
// yet (for a relay, which gets only committed entries); wait is that
// entry's commit, nil if none was cut.
func durablePrefix(batch []*outEntry, durable int) (cut []*outEntry, wait <-chan struct{}) {
	if durable == len(batch) {
		return batch, nil
	}
	return batch[:durable], batch[durable].commitDone
}

// peerQueue holds one remote device's pending entries, in seq order.
type peerQueue struct {
	cert    *identity.DeviceCert
	pending []*outEntry
	// redundant are entries a relay holds (their message is sent) that
	// other listed mailboxes have not confirmed, in seq order (guarded
	// by Node.mu like the rest; only the queue's deliverLoop changes an
	// entry's Left).
	redundant []*outEntry
	wake      chan struct{}
	running   bool

	directFailed time.Time // last failed direct attempt; relays are used for directRetryWait after it
	staleScan    time.Time // when dropStaleLocked last looked for stale entries
}

// queueLocked appends e to its device's queue (not yet durable).
func (n *Node) queueLocked(cert *identity.DeviceCert, e *outEntry) {
	q := n.queueOfLocked(cert)
	q.pending = append(q.pending, e)
}

// queueOfLocked returns a device's queue, making it on first use.
func (n *Node) queueOfLocked(cert *identity.DeviceCert) *peerQueue {
	q := n.queues[cert.DeviceID()]
	if q == nil {
		q = &peerQueue{cert: cert, wake: make(chan struct{}, 1)}
		n.queues[cert.DeviceID()] = q
	}
	return q
}

// releaseQueuedLocked marks entries durable and wakes their workers.
func (n *Node) releaseQueuedLocked(es []*outEntry) {
	for _, e := range es {
		e.durable = true
		if q := n.queues[e.device]; q != nil {
			n.kickLocked(q)
		}
	}
}

// dropQueuedLocked removes entries whose batch failed to commit. A
// dropped entry may have been the head that held durable entries back,
// so the queue is woken.
func (n *Node) dropQueuedLocked(es []*outEntry) {
	for _, e := range es {
		q := n.queues[e.device]
		if q == nil {
			continue
		}
		for i, p := range q.pending {
			if p == e {
				q.pending = append(q.pending[:i], q.pending[i+1:]...)
				n.kickLocked(q)
				break
			}
		}
	}
}

// routeChangedLocked wakes the queues of a card's devices: a newer card
// may give a device its first peer ID, new addresses or mailboxes, and a
// loop parked for want of a route must look again.
func (n *Node) routeChangedLocked(c *card.Card) {
	n.learnAddrsLocked(c)
	n.guardChangedLocked()
	for _, d := range c.List.Devices() {
		if q := n.queues[d.DeviceID()]; q != nil {
			n.kickLocked(q)
		}
	}
}

func (n *Node) kickLocked(q *peerQueue) {
	q.kick()
	n.startLoopLocked(q)
}

// kick wakes q's delivery loop; it needs no lock.
func (q *peerQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// startLoopLocked starts q's delivery loop if it is not running.
func (n *Node) startLoopLocked(q *peerQueue) {
	if !q.running && n.host != nil {
		q.running = n.loops.Go(func(ctx context.Context) { n.deliverLoop(ctx, q) })
	}
}

// loadOutboxLocked queues every entry left in the store (after a
// restart): pending ones, and those whose redundant deposits go on.
// Entries queued before Run started (a send on a node not yet running)
// are not queued twice, and each queue stays in seq order.
func (n *Node) loadOutboxLocked() error {
	queued := make(map[uint64]bool) // sequence numbers are unique across devices
	for _, q := range n.queues {
		for _, e := range q.pending {
			queued[e.Seq] = true
		}
		for _, e := range q.redundant {
			queued[e.Seq] = true
		}
	}
	if len(queued) > 0 {
		defer func() {
			for _, q := range n.queues {
				slices.SortStableFunc(q.pending, func(a, b *outEntry) int { return cmp.Compare(a.Seq, b.Seq) })
				slices.SortStableFunc(q.redundant, func(a, b *outEntry) int { return cmp.Compare(a.Seq, b.Seq) })
			}
		}()
	}
	var entries []*outEntry
	err := n.tabs.outbox.Scan(func(id, v []byte) error {
		if len(id) != len(identity.DeviceID{})+8 {
			return fmt.Errorf("node: outbox record with a %d-byte id", len(id))
		}
		e := &outEntry{device: identity.DeviceID(id[:len(id)-8]), durable: true}
		if err := decodeOutRec(v, &e.outRec); err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return err
	}
	// Entries an earlier version wrote as sequenced records become plain
	// ones, in one batch with their deletion.
	moved := n.db.Batch()
	err = n.tabs.outbox.ScanAllSeq(func(id []byte, seq uint64, v []byte) error {
		e := &outEntry{device: identity.DeviceID(id), durable: true}
		if err := decodeOutRec(v, &e.outRec); err != nil {
			return err
		}
		moved.DeleteSeq(n.tabs.outbox, id, seq)
		n.putOut(moved, e)
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return err
	}
	if moved.Len() > 0 {
		if err := n.commit(moved); err != nil {
			return err
		}
	}
	slices.SortFunc(entries, func(a, b *outEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	orphans := n.db.Batch()
	for _, e := range entries {
		if queued[e.Seq] {
			continue
		}
		cert := n.deviceCertLocked(e.device)
		if cert == nil {
			if e.SentMS != 0 {
				// Removing a contact deletes its pending entries, not
				// those a relay holds: they go here.
				n.deleteOut(orphans, e)
			}
			continue // contact gone; the entry is deleted with it
		}
		if q := n.queueOfLocked(cert); e.SentMS == 0 {
			q.pending = append(q.pending, e)
		} else {
			q.redundant = append(q.redundant, e) // a relay holds it; copies go on
		}
	}
	if orphans.Len() > 0 {
		if err := orphans.Commit(); err != nil {
			n.log.Warn("outbox entries of removed contacts not deleted", "err", err)
		}
	}
	return nil
}

// pruneRedundantLocked ends the redundant deposits that have become
// pointless (docs/protocol/messaging.md, "Redundant mailboxes"): those of
// an entry whose message was delivered or read (or is gone), of an entry
// a relay first took more than redundantFor ago, and into mailboxes that
// boxes, the device's newest list, no longer names. It runs on the
// queue's deliverLoop, before each deposit round.
func (n *Node) pruneRedundantLocked(q *peerQueue, boxes []card.Mailbox, now time.Time) {
	if len(q.redundant) == 0 {
		return
	}
	listed := make(map[string]bool, len(boxes))
	for _, mb := range boxes {
		listed[hex.EncodeToString(mb.DepositID)] = true
	}
	var t *txn
	kept := q.redundant[:0]
	for _, e := range q.redundant {
		left := e.Left
		if now.Sub(time.UnixMilli(e.SentMS)) > redundantFor || n.acknowledgedLocked(e) {
			left = nil
		} else {
			left = slices.DeleteFunc(slices.Clone(left), func(k string) bool { return !listed[k] })
		}
		if len(left) == len(e.Left) {
			kept = append(kept, e)
			continue
		}
		if t == nil {
			t = n.newTxnLocked()
		}
		if len(left) == 0 {
			n.deleteOut(t.b, e)
			continue
		}
		e.Left = left
		n.putOut(t.b, e)
		kept = append(kept, e)
	}
	clear(q.redundant[len(kept):])
	q.redundant = kept
	if t != nil {
		n.finishInBackgroundLocked(t)
	}
}

// acknowledgedLocked reports whether an entry's message needs no more
// copies: the recipient acknowledged it (delivered, read), it failed, or
// it is gone.
func (n *Node) acknowledgedLocked(e *outEntry) bool {
	if !e.Track {
		return false
	}
	id, err := parseMsgID(e.MsgID)
	if err != nil {
		return true
	}
	m, _, err := n.loadMsgLocked(id)
	return err != nil || m.State.Rank() >= StateDelivered.Rank()
}

// cardOfDeviceLocked finds the card that lists a device: a contact's, or
// a group member's from the directory.
func (n *Node) cardOfDeviceLocked(id identity.DeviceID) *card.Card {
	if id != n.cert.DeviceID() && n.list.Contains(id) {
		return n.siblingsLocked() // one of this account's other devices
	}
	if c := n.own.farewell[id]; c != nil {
		return c // a device revoked in this run, until it has the new list
	}
	for _, c := range n.contacts {
		if c.card.List.Contains(id) {
			return c.card
		}
	}
	for _, c := range n.peers {
		if c.List.Contains(id) {
			return c
		}
	}
	return nil
}

// deviceCertLocked finds a known device's certificate.
func (n *Node) deviceCertLocked(id identity.DeviceID) *identity.DeviceCert {
	if c := n.cardOfDeviceLocked(id); c != nil {
		return c.List.Device(id)
	}
	if s := n.sets[id]; s != nil {
		return s.Remote()
	}
	return nil
}

// mailboxesOfLocked lists the relay mailboxes a device's card gives.
func (n *Node) mailboxesOfLocked(id identity.DeviceID) []card.Mailbox {
	if c := n.cardOfDeviceLocked(id); c != nil {
		if d := c.Device(id); d != nil {
			return d.Mailboxes
		}
	}
	return nil
}

// hasMailboxesLocked reports whether a device lists relay mailboxes.
func (n *Node) hasMailboxesLocked(id identity.DeviceID) bool { return len(n.mailboxesOfLocked(id)) > 0 }

// peerOfLocked returns the libp2p peer of a known device.
func (n *Node) peerOfLocked(id identity.DeviceID) (peer.ID, bool) {
	if c := n.cardOfDeviceLocked(id); c != nil {
		if d := c.Device(id); d != nil {
			pid, err := peer.IDFromBytes(d.PeerID)
			return pid, err == nil
		}
	}
	return "", false
}

// deliverLoop delivers one device's queue in order, retrying with
// back-off, until ctx ends. It keeps one stream open between rounds.
//
// It parks (waits for q.wake with no timer) only when the queue has
// nothing it may send, which holds until one of these, each of which
// kicks the queue: the head entry becomes durable (releaseQueuedLocked)
// or is dropped (dropQueuedLocked); or the device has no route (no peer
// ID and no mailbox in its card) until a newer card arrives
// (routeChangedLocked). Entries a relay holds that other mailboxes have
// not confirmed (q.redundant) are something to send: with nothing
// queued, a round deposits only those. Every other failure retries on a
// timer.
func (n *Node) deliverLoop(ctx context.Context, q *peerQueue) {
	var d *directStream
	// Deposits for this device go from an identity of their own, made
	// when the queue first needs a relay and dropped once it has been
	// empty for anonIdle (newAnonHost).
	var anon host.Host
	dropAnon := func() {
		if anon != nil {
			anon.Close()
			anon = nil
		}
	}
	leaveStream := func() {
		if d != nil {
			d.leave()
			d = nil
		}
	}
	defer func() {
		leaveStream()
		dropAnon()
	}()
	backoff := backoffMin
	noRouteLogged := false
	for {
		n.mu.Lock()
		n.dropStaleLocked(q)
		n.dropToBlockedLocked(q)
		pid, ok := n.peerOfLocked(q.cert.DeviceID())
		relays := n.hasMailboxesLocked(q.cert.DeviceID())
		viaRelay := relays && (!ok || time.Since(q.directFailed) < directRetryWait)
		if viaRelay && d != nil {
			n.mu.Unlock()
			leaveStream() // what it had in flight goes to the relays
			continue
		}
		var batch []*outEntry
		durable := 0 // leading committed entries of batch
		for _, e := range q.pending {
			if e.inflight {
				continue // written on the stream, waiting for its status
			}
			if !e.releasable() || len(batch) == d.room() {
				break
			}
			if e.durable && durable == len(batch) {
				durable++
			}
			batch = append(batch, e)
		}
		if slices.ContainsFunc(batch, isDirectOnly) && (!ok || viaRelay || !n.directConnLocked(pid)) {
			// Presence goes on a live direct connection or not at all.
			batch = n.dropDirectOnlyLocked(q, batch)
		}
		if !relays {
			n.pruneRedundantLocked(q, nil, time.Now()) // no mailbox listed: none is left to confirm
		}
		// Entries a relay holds go on into the mailboxes that have not
		// confirmed them; they never hold back what is queued, and wait
		// while a direct round is in flight.
		inflight := d != nil && len(d.inflight) > 0
		redundant := relays && len(q.redundant) > 0 && !inflight
		n.mu.Unlock()
		if len(batch) > 0 && !ok && !relays && !noRouteLogged {
			// Cards made by this version always name the peer; one that
			// does not (an old link) leaves nothing to try until the
			// contact sends a newer card.
			n.log.Warn("messages wait for a device whose card gives no peer ID and no mailbox; they go when a newer card arrives", "queued", len(batch))
			noRouteLogged = true
		}
		var err error
		if (len(batch) == 0 && !redundant) || (!ok && !relays) {
			// Nothing to write: wait for a change, or for the statuses
			// of what is in flight. The deposit identity outlives a
			// short pause (a chat), so a conversation's messages do not
			// each cost a new connection, and goes after anonIdle
			// without traffic.
			var idle <-chan time.Time
			if anon != nil {
				idle = time.After(anonIdle)
			}
			var acks <-chan statusFrame
			if d != nil {
				acks = d.acks
			}
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			case <-idle:
				dropAnon()
				continue
			case f := <-acks:
				if err = f.err; err == nil {
					err = n.takeStatuses(d, f.statuses)
				} else if !inflight {
					leaveStream() // closed between rounds (idle): the next round opens another
					continue
				}
			case <-d.deadline():
				err = errRoundDeadline
			}
			if err == nil {
				backoff = backoffMin
				continue
			}
			leaveStream()
			if relays {
				n.directFailed(q, pid, err)
				continue // the next round goes to the relays
			}
		} else {
			if len(batch) == 0 {
				viaRelay = true // only redundant deposits are left
			}
			if !viaRelay {
				if d == nil {
					var s network.Stream
					if s, err = n.openMsgStream(ctx, pid); err == nil {
						d = newDirectStream(s)
					}
				}
				if err == nil && relayedConn(d.s.Conn()) {
					// The stream found only a relay's circuit: what must go
					// direct stays off it.
					batch = n.dropDirectOnly(q, batch)
				}
				if err == nil && len(batch) > 0 {
					err = n.writeRound(d, batch)
				}
				if err == nil {
					continue // its statuses come while the next round is written
				}
				leaveStream()
				if relays {
					// The device is not reachable now: use its mailboxes
					// for a while, then try directly again.
					n.directFailed(q, pid, err)
					viaRelay = true
				}
			}
			if viaRelay {
				var commit <-chan struct{}
				if batch, commit = durablePrefix(batch, durable); len(batch) == 0 && commit != nil && !redundant {
					select { // what is left is still being committed
					case <-ctx.Done():
						return
					case <-commit:
					}
					continue
				}
				if anon == nil {
					if anon, err = newAnonHost(); err != nil {
						anon = nil
					}
				}
				if anon != nil {
					err = n.depositRound(ctx, anon, q, batch)
				}
			}
			if err == nil {
				backoff = backoffMin
				continue
			}
		}
		n.log.Debug("delivery failed, retrying", "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, backoffMax)
	}
}

// directFailed notes that direct delivery to q's device failed: its
// mailboxes are used for directRetryWait, unless a new connection is
// already up (the device came back while the old stream failed).
func (n *Node) directFailed(q *peerQueue, pid peer.ID, err error) {
	n.log.Debug("direct delivery failed, using relays", "err", err)
	n.mu.Lock()
	defer n.mu.Unlock()
	q.directFailed = time.Now()
	if n.host.Network().Connectedness(pid) == network.Connected {
		q.directFailed = time.Time{}
	}
}

// dropStaleLocked removes expired ephemeral entries from q. Their
// records go in a lazy commit: it runs under the node's lock, on the
// delivery loop's way, and a delete lost to a power cut is made again
// after the restart (the entries are as stale then).
//
// It looks at most once every staleScanEvery: the loop passes here on
// every wake-up and every status frame, and a queue that a fast sender
// has filled is long.
func (n *Node) dropStaleLocked(q *peerQueue) {
	now := n.now()
	if d := now.Sub(q.staleScan); d >= 0 && d < staleScanEvery {
		return
	}
	q.staleScan = now
	cutoff := now.Add(-ephemeralTTL)
	kept := q.pending[:0]
	var stale []*outEntry
	for _, e := range q.pending {
		if e.Ephemeral && e.durable && e.Created.Before(cutoff) {
			stale = append(stale, e)
			continue
		}
		kept = append(kept, e)
	}
	q.pending = kept
	if len(stale) == 0 {
		return
	}
	b := n.db.Batch()
	b.Lazy()
	for _, e := range stale {
		n.deleteOut(b, e)
	}
	if err := b.Commit(); err != nil {
		n.log.Warn("dropping stale typing indicators", "err", err)
	}
}

func (n *Node) openMsgStream(ctx context.Context, pid peer.ID) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return n.host.NewStream(ctx, pid, ProtocolMsg)
}

// settle records the outcome of entries delivered directly. The entries
// leave the queue at once; the store catches up in the background
// (grouped with other commits), so the delivery loop never waits for it.
// The commit is lazy (no fsync of its own): losing it to a power cut, or
// a failed commit, leaves the entries in the store, and they go again
// after a restart; the receiver dedupes and acks them again. Nothing it
// writes can reuse a key: session state is committed before its output
// leaves (Send, and the receiver's commit before its ack).
//
// A device that took entries directly is online and has drained its
// mailboxes (its catch-up gate, handleMsgStream): the redundant deposits
// of entries with no message state to end them (receipts, group
// traffic) stop here.
func (n *Node) settle(batch []*outEntry, statuses []byte, okState MessageState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.newTxnLocked()
	t.b.Lazy()
	n.settleLocked(t, batch, statuses, okState, nil, time.Now())
	if q := n.queues[batch[0].device]; q != nil && len(q.redundant) > 0 && slices.Contains(statuses, ackOK) {
		q.redundant = slices.DeleteFunc(q.redundant, func(e *outEntry) bool {
			if e.Track {
				return false
			}
			n.deleteOut(t.b, e)
			return true
		})
	}
	n.finishInBackgroundLocked(t)
}

// settleLocked records in t the outcome of a round's entries, in order up
// to the first ackRetry. left, for a deposit round, lists per entry the
// mailboxes that have not confirmed it: an entry with some goes on to the
// queue's redundant deposits (its record rewritten), the rest are
// deleted.
func (n *Node) settleLocked(t *txn, batch []*outEntry, statuses []byte, okState MessageState, left [][]string, now time.Time) {
	for i, e := range batch {
		st := statuses[i]
		if st == ackRetry {
			break
		}
		q := n.queues[e.device]
		queued := q != nil && len(q.pending) > 0 && q.pending[0] == e // else it was removed meanwhile
		if queued {
			q.pending = q.pending[1:]
		}
		if queued && st == ackOK && left != nil && len(left[i]) > 0 {
			e.SentMS, e.Left = now.UnixMilli(), left[i]
			n.putOut(t.b, e)
			q.redundant = append(q.redundant, e)
		} else {
			n.deleteOut(t.b, e)
		}
		if !e.Track {
			continue
		}
		state, errText := okState, ""
		if st != ackOK {
			if n.refusedBeforeResetLocked(e) { // recovery.go
				continue
			}
			state, errText = StateFailed, n.refusalLocked(e)
		}
		n.setStateLocked(t, e.MsgID, state, errText)
	}
}

// refusalLocked is the reason an entry the recipient's device refused
// shows: the first messages of a session opened with a one-time
// invitation are refused when the invitation was used or deleted
// (inbox.go), anything else could not be decrypted.
func (n *Node) refusalLocked(e *outEntry) string {
	if envelope.Kind(e.Kind) == envelope.KindPrekeyMessage {
		if b, err := hex.DecodeString(e.Account); err == nil && len(b) == identity.AccountIDSize {
			if c := n.contacts[identity.AccountID(b)]; c != nil && len(c.rec.Invite) > 0 {
				return errInviteRefused
			}
		}
	}
	return errUndecryptable
}

// errInviteRefused is the reason a message sent on a used invitation
// shows.
const errInviteRefused = "refused: this invitation was used or deleted (a one-time invitation works once); ask for a new link"

// setStateLocked moves an outgoing message forward to state, never back.
func (n *Node) setStateLocked(t *txn, idHex string, state MessageState, errText string) {
	id, err := parseMsgID(idHex)
	if err != nil {
		return
	}
	n.setStateByIDLocked(t, id, state, errText)
}

func (n *Node) setStateByIDLocked(t *txn, id [msgIDSize]byte, state MessageState, errText string) {
	m, ix, err := n.loadMsgLocked(id)
	if err != nil || m.Dir != "out" || m.State.Rank() >= state.Rank() {
		return
	}
	m.State, m.Error = state, errText
	n.updateMsgLocked(t, id, ix, m)
	t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(m.view(n.nameOfLocked(ix.Account)))})
	if st := stateOfRec(state); st >= msync.StateDelivered && n.hasOtherDevicesLocked() {
		if acc, err := identity.ParseAccountID(ix.Account); err == nil && n.contacts[acc] != nil {
			// Only the sending device learns "sent"; the others learn
			// delivered and read (docs/protocol/sync.md §18.5).
			now := time.Now()
			n.syncLocalLocked(t, &msync.Status{Conv: contactConv(acc), Target: id, State: st}, now)
		}
	}
}
