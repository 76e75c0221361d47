package node

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/ratchet"
	"github.com/hushnet/hush/crypto/session"
	"github.com/hushnet/hush/internal/wire"
	"github.com/hushnet/hush/node/shortlink"
)

// ProtocolMsg is direct delivery between devices (docs/protocol/messaging.md).
const ProtocolMsg = "/hush/msg/1"

// Direct-delivery framing.
const (
	directVersion  byte = 1
	maxDirectFrame      = 2 + identity.AccountIDSize + identity.DeviceIDSize + 1 + 4 + envelope.MaxBody
	streamIdle          = 2 * time.Minute // a delivery stream idle this long is closed
)

// Per-frame acknowledgement status bytes.
const (
	ackOK       byte = 0 // stored (or already had it)
	ackRejected byte = 1 // can never be accepted (undecryptable, unknown sender)
	ackRetry    byte = 2 // not now (store failure); send again later
)

// encodeDirect frames an outbox entry: the same inner fields a sealed
// envelope carries, sent over the Noise-secured stream without the HPKE
// layer (the peer already knows who is connected).
func encodeDirect(self *identity.DeviceCert, e *outEntry) []byte {
	w := codec.NewWriter(64 + len(e.Body))
	w.U8(directVersion)
	acc, dev := self.Account(), self.DeviceID()
	w.Fixed(acc[:])
	w.Fixed(dev[:])
	w.U8(e.Kind)
	w.Bytes32(e.Body)
	return w.Bytes()
}

var errFrame = errors.New("malformed delivery frame")

func decodeDirect(b []byte) (*envelope.Inner, error) {
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != directVersion {
		return nil, fmt.Errorf("%w: version %d", errFrame, v)
	}
	in := &envelope.Inner{}
	copy(in.SenderAccount[:], r.Fixed(identity.AccountIDSize))
	copy(in.SenderDevice[:], r.Fixed(identity.DeviceIDSize))
	in.Kind = envelope.Kind(r.U8())
	in.Body = r.Bytes32(envelope.MaxBody)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: %w", errFrame, err)
	}
	return in, nil
}

// handleMsgStream serves /hush/msg/1: it reads delivery frames, writes
// what they carry in groups (shown once written) and hands each group to
// the stream's acker, which makes it durable and answers one status byte
// per frame, in order (messaging.md "Pipelined rounds"). The next frames
// are read and written while the acker's sync runs.
func (n *Node) handleMsgStream(s network.Stream) {
	rounds := make(chan *receivedRound, ackerQueue)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		n.ackRounds(s, rounds)
	}()
	defer func() {
		close(rounds)
		<-acked // every round written is made durable (or failed) and answered
		s.Close()
	}()
	br := bufio.NewReaderSize(s, 64<<10)
	for {
		s.SetReadDeadline(time.Now().Add(streamIdle))
		first, err := wire.ReadFrame(br, maxDirectFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				n.log.Debug("delivery stream closed", "err", err)
				s.Reset()
			}
			return
		}
		frames := [][]byte{first}
		for len(frames) < deliverWindow && frameBuffered(br) {
			f, err := wire.ReadFrame(br, maxDirectFrame)
			if err != nil {
				s.Reset()
				return
			}
			frames = append(frames, f)
		}
		items := make([]*envelope.Inner, len(frames))
		for i, f := range frames {
			in, err := decodeDirect(f)
			if err != nil {
				n.log.Debug("rejected delivery frame", "err", err)
				continue
			}
			items[i] = in
		}
		n.waitCaughtUp()
		r := n.receiveWritten(items, false)
		rounds <- r
		if r.t == nil {
			// Not written: its statuses say "try again". Frames after it
			// are left unread, so that none is stored before it comes
			// again; the sender resends them all.
			return
		}
	}
}

// ackerQueue is how many written rounds a delivery stream's reader may
// hand its acker before it waits: a sender keeps at most deliverWindow
// frames in flight, so a well-behaved one never fills it.
const ackerQueue = 8

// ackRounds makes the rounds a delivery stream's reader wrote durable and
// answers them, in order. It takes every round already waiting, makes
// them durable with one sync, and writes their statuses in one frame. It
// finishes every round it is given, even once the stream failed: a
// round's entries and reservations wait on it.
func (n *Node) ackRounds(s network.Stream, rounds <-chan *receivedRound) {
	failed := false
	for r := range rounds {
		group := []*receivedRound{r}
	more:
		for {
			select {
			case r, ok := <-rounds:
				if !ok {
					break more
				}
				group = append(group, r)
			default:
				break more
			}
		}
		n.finishReceived(group)
		if failed {
			continue
		}
		var statuses []byte
		for _, r := range group {
			statuses = append(statuses, r.statuses...)
		}
		s.SetWriteDeadline(time.Now().Add(streamDeadline))
		if err := wire.WriteFrame(s, statuses); err != nil {
			s.Reset() // the reader sees it and stops
			failed = true
		}
	}
}

// frameBuffered reports whether a whole frame is already buffered.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < wire.HeaderSize {
		return false
	}
	hdr, err := br.Peek(wire.HeaderSize)
	if err != nil {
		return false
	}
	size := binary.BigEndian.Uint32(hdr)
	return uint64(br.Buffered()) >= uint64(wire.HeaderSize)+uint64(size)
}

// taps, when a test sets them, see every envelope a node is given
// (direct or from a mailbox) before anything is decrypted, every group
// topic message (what reaches the device, whether or not it can read
// it), every outbox entry a node makes (what it encrypted, for whom),
// every relay upload of a file before it starts, and every pass of the
// links loop.
var taps atomic.Pointer[tapFuncs]

type tapFuncs struct {
	receive func(n *Node, from identity.AccountID)
	topic   func(n *Node)
	queue   func(n *Node, to identity.DeviceID) // an outbox entry made for a device
	links   func(n *Node, at time.Time)         // the links loop finished a pass that began at at (the node's clock)
	upload  func(n *Node)                       // a file's relay upload is about to start
	fed     func(n *Node, verified int64)       // a download took bytes; verified: blob bytes verified so far
	hold    func(n *Node, t *txn) bool          // commitReleasingLock never writes t and blocks (a test's crash)
	acked   func(n *Node, batch []*outEntry)    // a direct round's acks came back, before its outcome is recorded
	// commitWait runs in commitReleasingLock after the lock is released,
	// before the commit is waited for (a commit the caller leads is
	// written only after it returns); fileWait when a peer asks for a
	// sent file whose record's commit has not landed.
	commitWait func(n *Node, t *txn)
	fileWait   func(n *Node)
	// syncWait runs when received messages are written and shown, before
	// the synced write that lets their acknowledgements go (receive).
	syncWait func(n *Node)
	// failCommit, when it returns true, fails t in commitReleasingLock
	// without writing it, as a disk error would.
	failCommit func(n *Node, t *txn) bool
}

// receive decrypts and applies messages in one transaction and returns a
// status per message, once what they carried is durable; a nil item is
// rejected. Messages that came through a relay mailbox (viaMailbox) are
// answered with delivery receipts, since their sender saw only the
// relay's receipt.
func (n *Node) receive(items []*envelope.Inner, viaMailbox bool) []byte {
	r := n.receiveWritten(items, viaMailbox)
	n.finishReceived([]*receivedRound{r})
	return r.statuses
}

// receivedRound is a group of received messages written and shown but
// not yet durable (receiveWritten); finishReceived ends it.
type receivedRound struct {
	t        *txn // nil: nothing was written (closed node, failed write)
	statuses []byte
}

// receiveWritten is receive's first half: it decrypts and applies the
// messages in one transaction written without an fsync, and publishes its
// events (messaging.md "Shown once written, acknowledged once durable").
// The statuses are final only after finishReceived.
func (n *Node) receiveWritten(items []*envelope.Inner, viaMailbox bool) *receivedRound {
	now := n.now()
	r := &receivedRound{statuses: make([]byte, len(items))}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		r.retry()
		return r
	}
	t := n.newTxnLocked()
	t.viaMailbox = viaMailbox
	receipts := make(map[*contact][][msgIDSize]byte)
	for i, in := range items {
		if in == nil {
			r.statuses[i] = ackRejected
			continue
		}
		if tap := taps.Load(); tap != nil && tap.receive != nil {
			tap.receive(n, identity.AccountID(in.SenderAccount))
		}
		var c *contact
		var newText *[msgIDSize]byte
		r.statuses[i], c, newText = n.receiveOneLocked(t, in, now)
		if viaMailbox && newText != nil && len(receipts[c]) < maxReceiptIDs {
			receipts[c] = append(receipts[c], *newText)
		}
	}
	for c, ids := range receipts {
		p := &payload{Type: ptDelivery, ID: newMessageID(), TimeMS: uint64(now.UnixMilli()), IDs: ids}
		if err := n.encryptToLocked(t, c, p, false, now); err != nil {
			n.log.Debug("delivery receipt not queued", "err", err)
		}
	}
	n.saveTracksLocked(t) // once per batch, not once per text
	n.saveSeqLocked(t)
	t.syncLater = true
	t.b.Lazy()
	if err := n.commitReleasingLock(t); err != nil {
		n.logStoreError("received messages not stored; their senders will retry", err)
		r.retry()
		return r
	}
	r.t = t
	return r
}

// retry answers every message of r "try again".
func (r *receivedRound) retry() {
	for i := range r.statuses {
		r.statuses[i] = ackRetry
	}
}

// finishReceived is receive's second half for rounds written in this
// order: one sync of the store makes them all durable, then each
// confirms what it reserved and lets the entries it queued leave; if the
// sync fails, their statuses become "try again".
func (n *Node) finishReceived(rounds []*receivedRound) {
	if !slices.ContainsFunc(rounds, func(r *receivedRound) bool { return r.t != nil }) {
		return
	}
	// The events' subscribers were just woken: let them run before this
	// goroutine blocks in the fsync (txn.wakeEarly says why; in the
	// latency benchmark the event reached its subscriber 32 µs after it
	// was published without this, 3–4 µs with it).
	runtime.Gosched()
	if tap := taps.Load(); tap != nil && tap.syncWait != nil {
		tap.syncWait(n)
	}
	err := n.db.Sync()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range rounds {
		switch {
		case r.t == nil:
		case err == nil:
			n.afterDurableLocked(r.t)
		default:
			n.failSyncLocked(r.t)
			r.retry()
		}
	}
	if err != nil {
		n.logStoreError("received messages written but not synced; their senders will retry", err)
	}
}

// receiveOneLocked decrypts and applies one message. It returns the
// status, the sending contact and, for a newly stored text, its ID.
func (n *Node) receiveOneLocked(t *txn, in *envelope.Inner, now time.Time) (byte, *contact, *[msgIDSize]byte) {
	var err error
	acc := identity.AccountID(in.SenderAccount)
	c := n.contacts[acc]
	// Only a device in the newest device list we hold for the account
	// speaks for it (docs/SECURITY.md, "Devices"); a device we hold no
	// list naming may open a session only with a card that lists it.
	held, _ := n.cardOfAccountLocked(acc)
	own := acc == n.cert.Account()
	if own {
		if in.SenderDevice == n.cert.DeviceID() || n.own.revoked {
			return ackRejected, nil, nil
		}
		held = n.siblingsLocked() // the account's other devices
	}
	var cert *identity.DeviceCert
	if held != nil {
		cert = held.List.Device(in.SenderDevice)
	}
	listed := cert != nil
	if cert == nil {
		if in.Kind != envelope.KindPrekeyMessage {
			return ackRejected, nil, nil
		}
		if cert, err = session.PrekeySender(in.Body); err != nil || cert.Account() != acc || cert.DeviceID() != in.SenderDevice {
			return ackRejected, nil, nil
		}
	}
	_, known := n.sets[cert.DeviceID()]
	set, err := n.setForLocked(cert)
	if err != nil {
		return ackRetry, nil, nil
	}
	forget := func() {
		if !known && !set.HasSession() {
			delete(n.sets, cert.DeviceID())
		}
	}
	// Nothing a refused message would change is changed: the session and
	// the prekey store take the message only once it is accepted.
	pt, commit, err := set.DecryptUncommitted(n.local, in, now)
	digest := messageDigest(in)
	if redo, ok := n.unwritten.take(digest); ok && errors.Is(err, ratchet.ErrDuplicate) {
		pt, err = redo, nil // read before, its write failed (unwritten.go)
	}
	if err != nil {
		forget()
		if errors.Is(err, ratchet.ErrDuplicate) {
			if !listed || own || !n.reusedLocked(cert.DeviceID(), in) {
				return ackOK, nil, nil // already stored when it first arrived
			}
			err = errKeyReused // recovery.go: the sender's state went back
		}
		n.log.Debug("undecryptable message", "err", err)
		if listed && !own {
			n.recoverLocked(t, c, cert, in, err, now) // recovery.go
		}
		return ackRejected, nil, nil
	}
	n.sawLocked(cert.DeviceID(), in, digest)
	t.read = append(t.read, readMsg{digest: digest, pt: pt})
	p, perr := parsePayload(pt)
	if !listed && (perr != nil || !cardListsDevice(p.Card, acc, in.SenderDevice, held, now)) {
		forget()
		return ackRejected, nil, nil
	}
	if commit != nil && perr == nil && p.Type == ptReset && !n.resetAcceptableLocked(c, set, p, !own) {
		forget() // recovery.go: a reset not about this device's messages changes nothing
		return ackOK, nil, nil
	}
	if commit != nil { // the message opens a new session
		stranger := held == nil && !n.inAnyGroupLocked(acc) // a group's members have budgets of their own
		if !n.newSessions.allow(acc, stranger, now) {
			forget()
			n.log.Info("new session refused: over the hourly limit", "stranger", stranger)
			return ackRejected, nil, nil
		}
		if err := commit(); err != nil {
			forget()
			n.log.Debug("session not opened", "err", err)
			return ackRejected, nil, nil
		}
	}
	if own {
		// One of this account's other devices: sync messages and group
		// traffic. A new device's first message carries the account's
		// card with the newer list that names it.
		if perr == nil && p.Card != nil && !listed {
			if cc, err := card.Parse(p.Card, now); err == nil {
				n.applyDeviceListLocked(t, cc.List, now)
			}
		}
		n.saveSessionLocked(t, set, in.Kind)
		switch {
		case perr != nil:
		case p.Type == ptSync:
			n.receiveSyncLocked(t, in.SenderDevice, p.Data, now)
		case p.Type == ptProfile:
			n.applyOwnProfileLocked(t, p)
		case p.Type == ptTimer: // the account's devices sync it as a setting
		case p.Type == ptPresence: // between contacts only
		case p.Type >= ptGroup:
			n.applyGroupPairwiseLocked(t, acc, in.SenderDevice, p, now) // the account's groups
		}
		return ackOK, nil, nil
	}
	if perr == nil && recoveryType(p.Type) {
		n.saveSessionLocked(t, set, in.Kind)
		if c != nil && (p.Type == ptResetAck || commit != nil) {
			n.applyRecoveryLocked(t, c, in.SenderDevice, p, now)
		}
		return ackOK, nil, nil
	}
	if perr == nil && p.Type >= ptGroup && p.Type != ptProfile && p.Type != ptTimer && p.Type != ptPresence {
		// Group traffic: it may come from members who are not contacts;
		// their card (sent with prekey messages) goes to the directory.
		if p.Card != nil {
			n.learnCardLocked(t, p.Card, now)
		}
		n.saveSessionLocked(t, set, in.Kind)
		n.applyGroupPairwiseLocked(t, acc, in.SenderDevice, p, now)
		return ackOK, nil, nil
	}
	if n.blockedLocked(acc) || (c == nil && perr == nil && (p.Type == ptProfile || p.Type == ptTimer || p.Type == ptPresence)) {
		// Blocked: nothing is kept (blocks.go); a profile alone makes
		// no message request.
		return n.sessionOnlyLocked(t, c, set, in.Kind, p, perr, now), nil, nil
	}
	if c == nil {
		if perr != nil {
			delete(n.sets, cert.DeviceID())
			return ackRejected, nil, nil // no card to make a request of (p is nil)
		}
		// A first message from someone who has our link: a message request
		// (its card lists the device: checked above).
		cc, err := card.Parse(p.Card, now)
		if err != nil || cc.Account() != acc {
			delete(n.sets, cert.DeviceID())
			return ackRejected, nil, nil
		}
		// One of this account's one-time invitations, unused, makes a
		// contact at once (addresses.md §20.4); one used or deleted
		// refuses the message (status 1, nothing kept: its sender,
		// which read the record before it went, shows "this invitation
		// was used or deleted"); anything else makes a request.
		var inviteID []byte
		var invite *linkRec
		if perr == nil && p.Invite != ([shortlink.TokenSize]byte{}) {
			if inviteID, invite = n.inviteOfTokenLocked(p.Invite); invite != nil && invite.Gone {
				delete(n.sets, cert.DeviceID())
				n.log.Info("a first message with a used or deleted invitation refused")
				return ackRejected, nil, nil
			}
		}
		if invite == nil && n.requestCountLocked() >= MaxRequests {
			// The request cap (addresses.md §20.5): dropped, acknowledged
			// like any message, so a flood learns nothing and fills nothing.
			delete(n.sets, cert.DeviceID())
			n.reqDrops.first.Add(1)
			return ackOK, nil, nil
		}
		name := cleanDisplayName(cc.Name)
		if invite != nil && invite.Label != "" {
			name = invite.Label
		}
		c = &contact{rec: contactRec{Name: n.freeNameLocked(name), LocalName: invite != nil && invite.Label != "", Card: cc.Marshal(),
			Request: invite == nil, Added: now.UTC()}, card: cc}
		n.contacts[acc] = c
		n.saveContact(t.b, c)
		if invite != nil {
			n.useInviteLocked(t, inviteID, invite)
			n.syncContactAddLocked(t, c, now)
		}
		if err := n.releasePendingLocked(t, acc); err != nil {
			return ackRetry, nil, nil
		}
		n.routeChangedLocked(cc)
		n.releaseHeldLocked(t, acc, now)
		t.events = append(t.events, Event{Type: EventContact, Contact: ptr(c.view())})
	} else if perr == nil && p.Card != nil && string(p.Card) != string(c.rec.Card) {
		if cc, err := card.Parse(p.Card, now); err == nil && cc.Account() == acc {
			n.updateContactCardLocked(t, c, cc, now)
		}
	}
	n.saveSessionLocked(t, set, in.Kind)
	if perr != nil {
		n.log.Debug("malformed payload", "err", perr)
		return ackOK, c, nil // the session advanced; nothing to show
	}
	if c.rec.Request {
		if p.Type == ptText && !n.requestRoomLocked(t, c, len(p.Text)) {
			n.reqDrops.messages.Add(1)
			return ackOK, c, nil // a request's own cap: dropped
		}
		err := n.applyLocked(t, c, in.SenderDevice, p, now)
		n.requestEventsLocked(t, c)
		return ackOK, c, err
	}
	return ackOK, c, n.applyLocked(t, c, in.SenderDevice, p, now)
}

// updateContactCardLocked takes a newer card of contact c (same
// account, checked by the caller): sessions with devices it drops end,
// and what waited for its devices goes.
func (n *Node) updateContactCardLocked(t *txn, c *contact, cc *card.Card, now time.Time) {
	if !cardNewer(cc, c.card) {
		return
	}
	n.endDroppedDevicesLocked(t, c.card, cc)
	c.card, c.rec.Card = cc, cc.Marshal()
	n.saveContact(t.b, c)
	n.routeChangedLocked(cc)
	n.releaseHeldLocked(t, cc.Account(), now)
}

// saveSessionLocked notes in t what a decrypted message changed in the
// session layer: the session set and, for a prekey message, the prekey
// store (one-time keys consumed, replay cache). They are written once
// per txn, as they are when t is committed (writeSessionsLocked): a
// round of messages from one device rewrites its set once, not once a
// message.
//
// If t's commit fails, the message was not stored and its sender is
// told to send it again, but the set in memory has already used the
// message's key: the copy would be taken for one already stored, and
// lost. So a failed commit puts back what the store holds (messaging.md
// "A failed write loses nothing"): the set is dropped from memory, to be
// read again, and the prekey store is read again, each unless it changed
// after t wrote it: another change then used it (a message sealed under
// the set may have left, and reading it again could reuse a key).
func (n *Node) saveSessionLocked(t *txn, set *session.Set, kind envelope.Kind) {
	i := slices.IndexFunc(t.sessions, func(s savedSession) bool { return s.set == set })
	if i < 0 {
		t.sessions = append(t.sessions, savedSession{set: set})
		i = len(t.sessions) - 1
	}
	t.sessions[i].prekeyMessage = t.sessions[i].prekeyMessage || kind == envelope.KindPrekeyMessage
}

// writeSessionsLocked puts into t's batch the session sets and prekey
// store saveSessionLocked noted, as they are now. The commit functions
// call it before they queue the batch.
//
// A set ended or replaced later in t (a contact removed, a device
// dropped from its list) is not written: whatever ended or replaced it
// wrote the store, and writing the set after that would bring it back.
func (n *Node) writeSessionsLocked(t *txn) error {
	var pk []byte
	for i := range t.sessions {
		s := &t.sessions[i]
		if s.prekeyMessage {
			if pk == nil {
				var err error
				if pk, err = n.local.Prekeys.MarshalBinary(); err != nil {
					return err
				}
				if err := t.b.Put(n.tabs.identity, idPrekeys, pk); err != nil {
					return err
				}
			}
			s.prekeys = pk
		}
		if n.sets[s.set.Remote().DeviceID()] != s.set {
			continue
		}
		enc, err := n.putSetLocked(t, s.set)
		if err != nil {
			return err
		}
		s.enc = enc
	}
	return nil
}

// savedSession is a session set a txn writes: its encoding and, when a
// prekey message used it, the prekey store's.
type savedSession struct {
	set           *session.Set
	prekeyMessage bool
	enc, prekeys  []byte
}

// unsaveSessionsLocked puts back, after t's commit failed, the session
// sets and prekey store t wrote (saveSessionLocked says when).
func (n *Node) unsaveSessionsLocked(t *txn) {
	for _, s := range t.sessions {
		id := s.set.Remote().DeviceID()
		if n.sets[id] != s.set || !marshalsTo(s.set, s.enc) {
			continue
		}
		delete(n.sets, id)
		if s.prekeys != nil && marshalsTo(n.local.Prekeys, s.prekeys) {
			if err := n.reloadPrekeysLocked(); err != nil {
				n.log.Warn("prekeys not read again after a failed commit", "err", err)
			}
		}
	}
}

// marshalsTo reports whether v's encoding is b.
func marshalsTo(v encoding.BinaryMarshaler, b []byte) bool {
	now, err := v.MarshalBinary()
	return err == nil && bytes.Equal(now, b)
}

// reloadPrekeysLocked reads this device's prekey store again from the
// store.
func (n *Node) reloadPrekeysLocked() error {
	b, err := n.tabs.identity.Get(idPrekeys)
	if err != nil {
		return err
	}
	pk, err := unmarshalPrekeys(b, n.device)
	if err != nil {
		return err
	}
	n.local.Prekeys = pk
	return nil
}

// freeNameLocked returns name, or name with a number, that neither is
// nor looks like a contact's name.
func (n *Node) freeNameLocked(name string) string {
	cand := name
	for i := 2; ; i++ {
		if n.lookalikeLocked(cand, nil) == nil {
			return cand
		}
		cand = fmt.Sprintf("%s (%d)", name, i)
	}
}

// applyLocked applies an incoming payload from contact c's device dev and
// returns the ID of a newly stored text message, if it stored one.
func (n *Node) applyLocked(t *txn, c *contact, dev identity.DeviceID, p *payload, now time.Time) *[msgIDSize]byte {
	acc := c.account()
	name := c.rec.Name
	switch p.Type {
	case ptText, ptEdit, ptDelete, ptReaction:
		id := n.applyContentLocked(t, conversation{key: acc[:], contact: c}, acc, dev, name, p)
		if id != nil && p.Counter != 0 {
			// Counted once per text: a copy from a second mailbox is
			// not stored again, and does not count again.
			n.countReceivedLocked(t, c, dev, p, now)
		}
		return id
	case ptDelivery, ptRead:
		state := StateDelivered
		if p.Type == ptRead {
			state = StateRead
		}
		for _, id := range p.IDs {
			if _, ix, err := n.loadMsgLocked(id); err == nil && string(ix.Account) == string(acc[:]) {
				n.setStateByIDLocked(t, id, state, "")
			}
		}
	case ptTyping:
		on := p.Flags&flagOn != 0
		t.events = append(t.events, Event{Type: EventTyping, Typing: &on, From: name})
	case ptProfile:
		n.applyProfileLocked(t, c, p)
	case ptTimer:
		n.applyTimerPayloadLocked(t, c, p)
	case ptPresence:
		n.applyPresenceLocked(t, c, dev, p, now)
	}
	return nil
}

// cardListsDevice reports whether b is a card of account acc whose device
// list names device, and, when a card is held for the account, one that
// replaces it (the list follows the held one): a device dropped from the
// account's list cannot come back with an old card.
func cardListsDevice(b []byte, acc identity.AccountID, device identity.DeviceID, held *card.Card, now time.Time) bool {
	if b == nil {
		return false
	}
	cc, err := card.Parse(b, now)
	if err != nil || cc.Account() != acc || cc.List.Device(device) == nil {
		return false
	}
	return held == nil || cardNewer(cc, held)
}

// endDroppedDevicesLocked ends what this device had with the devices a
// newer card of the same account no longer lists: their sessions (in
// memory and in the store) and their queued messages. A removed device
// can then neither read what is sent next nor speak for the account.
func (n *Node) endDroppedDevicesLocked(t *txn, old, newer *card.Card) {
	for _, d := range old.List.Devices() {
		id := d.DeviceID()
		if newer.List.Device(id) != nil {
			continue
		}
		n.endDeviceLocked(t, id)
	}
}

// endDeviceLocked ends the sessions with a remote device (in memory and
// in the store) and drops what was queued for it.
func (n *Node) endDeviceLocked(t *txn, id identity.DeviceID) {
	delete(n.sets, id)
	t.b.Delete(n.tabs.sessions, id[:])
	if q := n.queues[id]; q != nil {
		for _, e := range q.pending {
			n.deleteOut(t.b, e)
		}
		for _, e := range q.redundant {
			n.deleteOut(t.b, e)
		}
		q.pending, q.redundant = nil, nil
	}
}
