package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/ratchet"
	"github.com/hushnet/hush/crypto/session"
	"github.com/hushnet/hush/crypto/suite"
)

// Session recovery (docs/protocol/recovery.md): a device that cannot
// decrypt a contact device's messages starts a new session with it (a
// PQXDH prekey message whose payload is a session reset naming the
// message that failed); the contact device accepts it only if the
// message was really its own, sends again what the other could not
// read, and acknowledges. Each side writes one notice.

// Recovery payload types (ratchet plaintext, messaging.md).
const (
	ptReset    payloadType = 17 // data: resetMsg; the first message of a new session
	ptResetAck payloadType = 18 // data: resetAck; the answer on that session
)

func recoveryType(t payloadType) bool { return t == ptReset || t == ptResetAck }

// Recovery limits.
const (
	// resetInterval is how often a reset may go to one remote device,
	// and how long one notice covers a contact.
	resetInterval = 10 * time.Minute
	// resendWindow is how old a text may be and still be sent again on
	// the new session.
	resendWindow = 24 * time.Hour
	// maxResendScan bounds how far back a conversation is read for
	// texts to send again or mark.
	maxResendScan = 2000
	resetVersion  = 1
)

// KindSession is the kind of a "secure session re-established" notice.
const KindSession = apitypes.KindSession

// errUndecryptable is the reason a refused outgoing message shows.
const errUndecryptable = "the recipient's device could not decrypt the message"

// recoveryRec is what this device knows of resets with one remote
// device (counters table, "x" + device ID). Times are unix ms.
type recoveryRec struct {
	Sent     int64 `json:"s,omitempty"` // the last reset sent to it
	Pending  bool  `json:"p,omitempty"` // that reset awaits its ack
	Accepted int64 `json:"a,omitempty"` // the last reset accepted from it
	Notice   int64 `json:"n,omitempty"` // the last notice written for it
}

// recoveries holds the records loaded so far and, per remote device,
// the digests of the last messages accepted from it (guarded by
// Node.mu).
type recoveries struct {
	recs map[identity.DeviceID]*recoveryRec
	seen map[identity.DeviceID]*seenRing
}

func newRecoveries() recoveries {
	return recoveries{recs: make(map[identity.DeviceID]*recoveryRec), seen: make(map[identity.DeviceID]*seenRing)}
}

// seenRingSize is how many accepted messages per remote device are
// remembered to tell a reused message number from a repeated copy.
const seenRingSize = 128

// headerID names a ratchet message: its ratchet key and number.
type headerID struct {
	key [suite.KeySize]byte
	n   uint32
}

// seenRing maps the last accepted messages' headers to their digests.
type seenRing struct {
	digest map[headerID][sha256.Size]byte
	order  []headerID
}

// errKeyReused is the error of a message whose number the sender's
// device used before for a different message: its ratchet went back
// (a home restored from a copy), recovery.md §21.3.
var errKeyReused = errors.New("session: the sender's device used this message number before for another message")

func messageDigest(in *envelope.Inner) [sha256.Size]byte { return sha256.Sum256(in.Body) }

// sawLocked remembers a message the session layer accepted; digest is
// messageDigest(in).
func (n *Node) sawLocked(dev identity.DeviceID, in *envelope.Inner, digest [sha256.Size]byte) {
	h, ok := session.MessageHeader(in)
	if !ok {
		return
	}
	r := n.recovery.seen[dev]
	if r == nil {
		r = &seenRing{digest: make(map[headerID][sha256.Size]byte)}
		n.recovery.seen[dev] = r
	}
	id := headerID{h.RatchetKey, h.N}
	if _, ok := r.digest[id]; !ok {
		r.order = append(r.order, id)
		if len(r.order) > seenRingSize {
			delete(r.digest, r.order[0])
			r.order = r.order[1:]
		}
	}
	r.digest[id] = digest
}

// reusedLocked reports whether a message the ratchet calls a duplicate
// is not a copy of the one accepted with its number but another one: the
// sender encrypted with a message key it had used before. Repeated
// copies (redundant mailboxes, retries) are byte for byte the same.
// Only the last seenRingSize messages since this run started are known.
func (n *Node) reusedLocked(dev identity.DeviceID, in *envelope.Inner) bool {
	h, ok := session.MessageHeader(in)
	r := n.recovery.seen[dev]
	if !ok || r == nil {
		return false
	}
	d, ok := r.digest[headerID{h.RatchetKey, h.N}]
	return ok && d != messageDigest(in)
}

func recoveryKey(dev identity.DeviceID) []byte { return append([]byte("x"), dev[:]...) }

// recoveryLocked returns a copy of a device's record.
func (n *Node) recoveryLocked(dev identity.DeviceID) recoveryRec {
	if r := n.recovery.recs[dev]; r != nil {
		return *r
	}
	r := &recoveryRec{}
	if err := n.getJSON(n.tabs.counters, recoveryKey(dev), r); err != nil {
		r = &recoveryRec{}
	}
	n.recovery.recs[dev] = r
	return *r
}

// setRecoveryLocked writes a device's record in t; a failed commit puts
// the previous one back.
func (n *Node) setRecoveryLocked(t *txn, dev identity.DeviceID, r recoveryRec) {
	prev := n.recoveryLocked(dev)
	cur := &r
	n.recovery.recs[dev] = cur
	putJSON(t.b, n.tabs.counters, recoveryKey(dev), cur)
	t.undo(func() {
		if n.recovery.recs[dev] == cur {
			n.recovery.recs[dev] = &prev
		}
	})
}

// resetMsg is a ptReset's data: the header of the message that failed.
type resetMsg struct {
	RatchetKey [suite.KeySize]byte
	N          uint32
	High       uint64 // the highest text counter held from the device
}

func (m *resetMsg) marshal() []byte {
	w := codec.NewWriter(1 + suite.KeySize + 4 + 8)
	w.U8(resetVersion)
	w.Fixed(m.RatchetKey[:])
	w.U32(m.N)
	w.U64(m.High)
	return w.Bytes()
}

func parseResetMsg(b []byte) (*resetMsg, error) {
	r := codec.NewReader(b)
	m := &resetMsg{}
	if v := r.U8(); r.Err() == nil && v != resetVersion {
		return nil, fmt.Errorf("%w: reset version %d", errPayload, v)
	}
	copy(m.RatchetKey[:], r.Fixed(suite.KeySize))
	m.N = r.U32()
	m.High = r.U64()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: reset: %w", errPayload, err)
	}
	return m, nil
}

// resetAck is a ptResetAck's data.
type resetAck struct{ Resent, Lost uint32 }

func (a *resetAck) marshal() []byte {
	w := codec.NewWriter(9)
	w.U8(resetVersion)
	w.U32(a.Resent)
	w.U32(a.Lost)
	return w.Bytes()
}

func parseResetAck(b []byte) (*resetAck, error) {
	r := codec.NewReader(b)
	a := &resetAck{}
	if v := r.U8(); r.Err() == nil && v != resetVersion {
		return nil, fmt.Errorf("%w: reset ack version %d", errPayload, v)
	}
	a.Resent, a.Lost = r.U32(), r.U32()
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: reset ack: %w", errPayload, err)
	}
	return a, nil
}

// startsRecovery reports whether a decryption error is one that a new
// session may cure (recovery.md §21.3).
func startsRecovery(err error) bool {
	return !errors.Is(err, ratchet.ErrDuplicate) && !errors.Is(err, ratchet.ErrExpired) &&
		!errors.Is(err, session.ErrWrongSender) && !errors.Is(err, session.ErrRemoteChanged)
}

// recoverLocked is called with a message from device cert of contact c
// (a device its held card lists) that the session layer refused with
// err. Unless a reset went to the device in the last resetInterval, it
// starts a new session with the device and queues a reset on it in t.
func (n *Node) recoverLocked(t *txn, c *contact, cert *identity.DeviceCert, in *envelope.Inner, err error, now time.Time) {
	if c == nil || n.sendableLocked(c) != nil || c.rec.Request || !startsRecovery(err) {
		return
	}
	dev := cert.DeviceID()
	if c.card.List.Device(dev) == nil {
		return
	}
	rec := n.recoveryLocked(dev)
	if now.Sub(time.UnixMilli(rec.Sent)) < resetInterval && rec.Sent <= now.UnixMilli() {
		return
	}
	h, _ := session.MessageHeader(in)
	m := &resetMsg{RatchetKey: h.RatchetKey, N: h.N, High: n.trackLocked(dev, c.account()).High}
	set, serr := n.setForLocked(cert)
	if serr != nil {
		return
	}
	started, serr := n.startSessionLocked(set, c.card, cert, c.rec.Name, now)
	if serr != nil || !started {
		n.log.Info("session reset not sent", "contact", c.rec.Name, "err", serr)
		return
	}
	p := &payload{Type: ptReset, ID: newMessageID(), TimeMS: uint64(now.UnixMilli()), Data: m.marshal()}
	if serr := n.encryptToCardLocked(t, c.card, c.rec.Name, &dev, p, false, now); serr != nil {
		n.log.Info("session reset not sent", "contact", c.rec.Name, "err", serr)
		return
	}
	rec.Sent, rec.Pending = now.UnixMilli(), true
	n.setRecoveryLocked(t, dev, rec)
	n.log.Info("messages from a contact's device cannot be decrypted: new session started", "contact", c.rec.Name, "err", err)
}

// resetAcceptableLocked decides, before a reset's new session is
// committed, whether to take it (recovery.md §21.5, rules 1 and 2): it
// opens a new session (the caller checks); it must come from a contact
// (not this account's own devices), and name a message sent
// with one of this device's current ratchet keys with the device.
func (n *Node) resetAcceptableLocked(c *contact, set *session.Set, p *payload, contact bool) bool {
	if !contact || c == nil || n.sendableLocked(c) != nil || c.rec.Request {
		return false
	}
	m, err := parseResetMsg(p.Data)
	return err == nil && set.HasRatchetKey(m.RatchetKey[:])
}

// applyRecoveryLocked applies a reset (already accepted and its session
// committed) or a reset ack from contact c's device dev.
func (n *Node) applyRecoveryLocked(t *txn, c *contact, dev identity.DeviceID, p *payload, now time.Time) {
	rec := n.recoveryLocked(dev)
	switch p.Type {
	case ptReset:
		rec.Accepted = now.UnixMilli()
		var high uint64
		if m, err := parseResetMsg(p.Data); err == nil {
			high = m.High
		}
		resent, lost := n.resendLocked(t, c, dev, high, now)
		ack := &resetAck{Resent: uint32(min(resent, math.MaxUint32)), Lost: uint32(min(lost, math.MaxUint32))}
		ap := &payload{Type: ptResetAck, ID: newMessageID(), TimeMS: uint64(now.UnixMilli()), Data: ack.marshal()}
		if err := n.encryptToCardLocked(t, c.card, c.rec.Name, &dev, ap, false, now); err != nil {
			n.log.Info("session reset ack not sent", "contact", c.rec.Name, "err", err)
		}
		n.setRecoveryLocked(t, dev, rec)
		n.sessionNoticeLocked(t, c, dev, resent, lost, now)
		n.log.Info("secure session re-established at a contact's request", "contact", c.rec.Name, "resent", resent, "lost", lost)
	case ptResetAck:
		if !rec.Pending {
			return
		}
		if _, err := parseResetAck(p.Data); err != nil {
			return
		}
		rec.Pending = false
		n.setRecoveryLocked(t, dev, rec)
		n.sessionNoticeLocked(t, c, dev, 0, 0, now)
		n.log.Info("secure session re-established", "contact", c.rec.Name)
	}
}

// sessionNoticeLocked writes the "secure session re-established" notice
// in c's conversation, unless one was written for any of c's devices in
// the last resetInterval.
func (n *Node) sessionNoticeLocked(t *txn, c *contact, dev identity.DeviceID, resent, lost int, now time.Time) {
	for _, d := range c.card.List.Devices() {
		r := n.recoveryLocked(d.DeviceID())
		if at := time.UnixMilli(r.Notice); r.Notice != 0 && now.Sub(at) < resetInterval && !at.After(now) {
			return
		}
	}
	rec := n.recoveryLocked(dev)
	rec.Notice = now.UnixMilli()
	n.setRecoveryLocked(t, dev, rec)
	acc := c.account()
	id := newMessageID()
	m := &msgRec{ID: hex.EncodeToString(id[:]), Dir: dirSystem, Kind: KindSession, Text: sessionText(c.rec.Name, resent, lost),
		State: StateReceived, Time: now.UTC()}
	n.putMsgLocked(t, id, indexRec{Account: acc[:], Seq: n.nextSeqLocked()}, m)
	v := m.view(c.rec.Name)
	t.events = append(t.events, Event{Type: EventMessage, Message: &v})
}

// sessionText is what a notice says.
func sessionText(name string, resent, lost int) string {
	s := fmt.Sprintf("Secure session with %s was re-established.", name)
	switch {
	case resent == 1:
		s += " 1 message was sent again."
	case resent > 1:
		s += fmt.Sprintf(" %d messages were sent again.", resent)
	}
	switch {
	case lost == 1:
		s += " 1 older message could not be delivered."
	case lost > 1:
		s += fmt.Sprintf(" %d older messages could not be delivered.", lost)
	}
	return s
}

// lostReason is the reason an outgoing text the contact's device could
// not read, and that is not sent again, shows.
func lostReason(name string) string {
	return fmt.Sprintf("could not be read by %s's device; a new secure session started after it", name)
}

// resendable reports whether an outgoing text goes again after a reset:
// recent, not an attachment, and not known to have arrived.
func resendable(m *msgRec, now time.Time) bool {
	if m.Dir != "out" || m.Kind != "" || m.Deleted || m.File != nil || now.Sub(m.Time) > resendWindow {
		return false
	}
	switch m.State {
	case StateQueued, StateSent:
		return true
	case StateFailed:
		return m.Error == errUndecryptable
	}
	return false
}

// resendLocked sends again to device dev of contact c, on the active
// (new) session, the recent texts of the conversation it may not have
// (recovery.md §21.5, rule 3), and marks the older refused ones. It
// returns how many went again and how many could not.
//
// Recent texts that did arrive but whose counter is above high (the
// highest the device says it holds: its store went back) go again too,
// untracked, so their state stays.
func (n *Node) resendLocked(t *txn, c *contact, dev identity.DeviceID, high uint64, now time.Time) (resent, lost int) {
	acc := c.account()
	var ids [][msgIDSize]byte
	n.tabs.messages.ScanSeqReverse(acc[:], 0, math.MaxUint64, maxResendScan, func(_ uint64, v []byte) error {
		var m msgRec
		if decodeMsgRec(v, &m) == nil && m.Dir == "out" {
			if id, err := parseMsgID(m.ID); err == nil {
				ids = append(ids, id)
			}
		}
		return nil
	})
	for i := len(ids) - 1; i >= 0; i-- { // oldest first: the contact sees them in order
		id := ids[i]
		m, ix, err := n.loadMsgLocked(id) // the newest version, perhaps not yet committed
		if err != nil {
			continue
		}
		if high != 0 && m.Counter > high && !resendable(m, now) && m.Dir == "out" && !m.Deleted && m.File == nil &&
			now.Sub(m.Time) <= resendWindow && (m.State == StateDelivered || m.State == StateRead) {
			if n.resendCopyLocked(t, c, dev, id, m, false, now) {
				resent++
			}
			continue
		}
		if !resendable(m, now) {
			if m.State == StateFailed && m.Error == errUndecryptable {
				cp := *m
				cp.Error = lostReason(c.rec.Name)
				n.updateMsgLocked(t, id, ix, &cp)
				t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(cp.view(c.rec.Name))})
				lost++
			}
			continue
		}
		if n.resendOneLocked(t, c, dev, id, ix, m, now) {
			resent++
		}
	}
	return resent, lost
}

// resendOneLocked encrypts text m again for device dev alone, same ID,
// time, counter and reply target, and puts it back to queued.
func (n *Node) resendOneLocked(t *txn, c *contact, dev identity.DeviceID, id [msgIDSize]byte, ix indexRec, m *msgRec, now time.Time) bool {
	if !n.resendCopyLocked(t, c, dev, id, m, true, now) {
		return false
	}
	cp := *m
	cp.State, cp.Error = StateQueued, ""
	n.updateMsgLocked(t, id, ix, &cp)
	t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(cp.view(c.rec.Name))})
	return true
}

// resendCopyLocked queues text m again for device dev alone.
func (n *Node) resendCopyLocked(t *txn, c *contact, dev identity.DeviceID, id [msgIDSize]byte, m *msgRec, track bool, now time.Time) bool {
	p := &payload{Type: ptText, ID: id, TimeMS: uint64(m.Time.UnixMilli()), Text: m.Text, Counter: m.Counter}
	if m.ReplyTo != "" {
		if target, err := parseMsgID(m.ReplyTo); err == nil {
			p.Target = target
		}
	}
	if err := n.encryptToCardLocked(t, c.card, c.rec.Name, &dev, p, track, now); err != nil {
		n.log.Info("text not sent again after a session reset", "contact", c.rec.Name, "err", err)
		return false
	}
	return true
}

// refusedBeforeResetLocked is called for an outgoing tracked entry its
// device refused. An entry made before a reset this device accepted from
// the device was on the session the reset replaced (recovery.md §21.5,
// rule 4): if its text was sent again with the reset, the new copy
// decides its state and the refusal is ignored (true). Otherwise the
// caller marks it failed.
func (n *Node) refusedBeforeResetLocked(e *outEntry) bool {
	rec := n.recoveryLocked(e.device)
	if rec.Accepted == 0 || !e.Created.Before(time.UnixMilli(rec.Accepted)) {
		return false
	}
	id, err := parseMsgID(e.MsgID)
	if err != nil {
		return false
	}
	m, _, err := n.loadMsgLocked(id)
	if err != nil {
		return true // gone: nothing to show
	}
	return m.State != StateFailed && resendable(m, time.UnixMilli(rec.Accepted))
}
