package node

// Disappearing messages (docs/protocol/messaging.md "Disappearing
// messages"): a per-conversation timer, set by either side of a 1:1
// conversation (payload type 20 to the contact, the synced setting
// "timer/<account>" to the account's other devices, the latest change
// wins) or by any member of a group (timers_group.go). Every new message records its own expiry in the timers table:
// its time to live, and when it ends, counted from sending for an
// outgoing message and from reading for an incoming one. When it ends,
// each device deletes the message, its index entry, its sync state and
// its attachment (record and blob), then compacts those tables' key
// ranges so the sealed records leave the disk as well. A device that
// was off when a message expired deletes it when it starts.

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/attach"
	msync "github.com/hushnet/hush/sync"
)

// Timer bounds: a timer is off (0) or between MinTimer and MaxTimer.
const (
	MinTimer = time.Minute
	MaxTimer = 365 * 24 * time.Hour
)

// settingTimerPrefix starts the synced setting of a conversation's
// timer: "timer/" then the contact's account in lowercase base32
// (a setting key is at most 64 bytes of [a-z0-9._/-]).
const settingTimerPrefix = "timer/"

var timerB32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// TimerRequest sets a conversation's timer: a contact or a group, and a
// time to live, 0 for off.
type TimerRequest struct {
	Contact string
	Group   string
	TTL     time.Duration
}

// convTimer is a conversation's timer: seconds (0: off) and the time of
// the change (unix ms), by which the latest wins.
type convTimer struct {
	Secs uint32 `json:"s"`
	AtMS uint64 `json:"t"`
}

// expiryRec is one message's expiry: its conversation and place, its
// time to live and when it ends (unix ms; 0: not started, an incoming
// message not read yet).
type expiryRec struct {
	Conv  []byte `json:"c"`
	Seq   uint64 `json:"q"`
	Secs  uint32 `json:"s"`
	Until int64  `json:"u,omitempty"`
}

// timersState is the timers in memory: each conversation's, and each
// pending expiry (loaded when the node opens).
type timersState struct {
	conv map[string]convTimer
	exp  map[[msgIDSize]byte]*expiryRec
	gone map[[msgIDSize]byte]int64 // expired message IDs, by when, so a late copy is not stored again
	wake chan struct{}
}

// goneKeep is how long an expired message's ID is remembered: a copy
// from a relay's mailbox or another device's sync arriving later than
// that is stored again.
const goneKeep = 30 * 24 * time.Hour

// Timers-table keys: 'c' ‖ conversation key, 'e' ‖ message ID, 'x' ‖
// an expired message's ID (value: when, unix ms).
func timerKey(conv []byte) []byte         { return append([]byte{'c'}, conv...) }
func expiryKey(id [msgIDSize]byte) []byte { return append([]byte{'e'}, id[:]...) }
func goneKey(id [msgIDSize]byte) []byte   { return append([]byte{'x'}, id[:]...) }
func timerSettingKey(acc identity.AccountID) string {
	return settingTimerPrefix + strings.ToLower(timerB32.EncodeToString(acc[:]))
}

// now is the node's clock (Config.Now in tests): expiries, presence,
// prekeys, cards and short links count with it.
func (n *Node) now() time.Time {
	if n.cfg.Now != nil {
		return n.cfg.Now()
	}
	return time.Now()
}

// loadTimersLocked reads the timers table when the node opens.
func (n *Node) loadTimersLocked() error {
	n.timers = timersState{conv: map[string]convTimer{}, exp: map[[msgIDSize]byte]*expiryRec{}, gone: map[[msgIDSize]byte]int64{}, wake: make(chan struct{}, 1)}
	return n.tabs.timers.Scan(func(k, v []byte) error {
		switch {
		case len(k) > 1 && k[0] == 'c':
			var c convTimer
			if jsonUnmarshal(v, &c) == nil {
				n.timers.conv[string(k[1:])] = c
			}
		case len(k) == 1+msgIDSize && k[0] == 'e':
			var e expiryRec
			if jsonUnmarshal(v, &e) == nil {
				n.timers.exp[[msgIDSize]byte(k[1:])] = &e
			}
		case len(k) == 1+msgIDSize && k[0] == 'x' && len(v) == 8:
			n.timers.gone[[msgIDSize]byte(k[1:])] = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
}

// timerSecsLocked is a conversation's timer in seconds (0: off).
func (n *Node) timerSecsLocked(conv []byte) uint32 { return n.timers.conv[string(conv)].Secs }

// setConvTimerLocked keeps c as conversation conv's timer if it is newer
// than the one held, in t; it reports whether it did.
func (n *Node) setConvTimerLocked(t *txn, conv []byte, c convTimer) bool {
	cur, had := n.timers.conv[string(conv)]
	if had && (c.AtMS < cur.AtMS || (c.AtMS == cur.AtMS && c.Secs <= cur.Secs)) {
		return false
	}
	n.timers.conv[string(conv)] = c
	t.undo(func() {
		if had {
			n.timers.conv[string(conv)] = cur
		} else {
			delete(n.timers.conv, string(conv))
		}
	})
	putJSON(t.b, n.tabs.timers, timerKey(conv), &c)
	if ev := n.timerEventLocked(conv, c.Secs); ev != nil {
		t.events = append(t.events, Event{Type: EventTimer, Timer: ev})
	}
	return true
}

// timerEventLocked is a timer event's body for conversation conv: its
// contact's name or its group's ID; nil for a message request's.
func (n *Node) timerEventLocked(conv []byte, secs uint32) *apitypes.TimerResult {
	if isGroupConv(conv) {
		return &apitypes.TimerResult{Group: hex.EncodeToString(conv[1:]), Seconds: int64(secs)}
	}
	acc, err := identity.ParseAccountID(conv)
	if err != nil {
		return nil
	}
	if ct := n.contacts[acc]; ct != nil && !ct.rec.Request {
		return &apitypes.TimerResult{Contact: ct.rec.Name, Seconds: int64(secs)}
	}
	return nil
}

// SetTimer sets a conversation's disappearing-messages timer (0: off):
// it applies to messages sent and received from now on, here, at the
// contact's devices and at this account's other devices.
func (n *Node) SetTimer(req TimerRequest) (time.Duration, error) {
	if req.TTL != 0 && (req.TTL < MinTimer || req.TTL > MaxTimer) {
		return 0, fmt.Errorf("a timer is off or between %v and %v", MinTimer, MaxTimer)
	}
	secs := uint32(req.TTL / time.Second)
	if req.Group != "" {
		if req.Contact != "" {
			return 0, errors.New("a timer is for a contact or a group, not both")
		}
		return n.setGroupTimer(req.Group, secs)
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, ErrClosed
	}
	c, err := n.contactByNameLocked(req.Contact)
	if err != nil {
		return 0, err
	}
	if err := n.sendableLocked(c); err != nil {
		return 0, err
	}
	acc := c.account()
	ct := convTimer{Secs: secs, AtMS: max(uint64(now.UnixMilli()), n.timers.conv[string(acc[:])].AtMS+1)}
	t := n.newTxnLocked()
	n.setConvTimerLocked(t, acc[:], ct)
	p := &payload{Type: ptTimer, ID: newMessageID(), TimeMS: ct.AtMS, Data: binary.BigEndian.AppendUint32(nil, secs)}
	if err := n.encryptToLocked(t, c, p, false, now); err != nil {
		n.dropQueuedLocked(t.queued)
		if t.onFail != nil {
			t.onFail()
		}
		return 0, err
	}
	n.syncLocalLocked(t, &msync.Setting{Key: timerSettingKey(acc), Clock: n.tickLocked(t, now), Value: ct.value()}, now)
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return 0, fmt.Errorf("node: store: %w", err)
	}
	return time.Duration(secs) * time.Second, nil
}

// Timer returns a contact's timer (0: off).
func (n *Node) Timer(contact string) (time.Duration, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.contactByNameLocked(contact)
	if err != nil {
		return 0, err
	}
	acc := c.account()
	return time.Duration(n.timerSecsLocked(acc[:])) * time.Second, nil
}

// value is a timer as the synced setting holds it: "SECS:ATMS".
func (c convTimer) value() []byte {
	return []byte(strconv.FormatUint(uint64(c.Secs), 10) + ":" + strconv.FormatUint(c.AtMS, 10))
}

// applyTimerPayloadLocked takes a contact's change of the timer (payload
// type 20: data = u32 seconds, time = when it changed).
func (n *Node) applyTimerPayloadLocked(t *txn, c *contact, p *payload) {
	r := codec.NewReader(p.Data)
	secs := r.U32()
	if r.Done() != nil || time.Duration(secs)*time.Second > MaxTimer {
		return
	}
	acc := c.account()
	n.setConvTimerLocked(t, acc[:], convTimer{Secs: secs, AtMS: p.TimeMS})
}

// applyTimerSettingLocked takes the timer set on another device of the
// account.
func (n *Node) applyTimerSettingLocked(t *txn, s *msync.Setting) bool {
	n.observeClockLocked(t, s.Clock)
	b32 := strings.ToUpper(strings.TrimPrefix(s.Key, settingTimerPrefix))
	acc, err := timerB32.DecodeString(b32)
	if err != nil || len(acc) != len(identity.AccountID{}) {
		return false
	}
	secsS, atS, ok := strings.Cut(string(s.Value), ":")
	secs, err1 := strconv.ParseUint(secsS, 10, 32)
	at, err2 := strconv.ParseUint(atS, 10, 64)
	if !ok || err1 != nil || err2 != nil || time.Duration(secs)*time.Second > MaxTimer {
		return false
	}
	return n.setConvTimerLocked(t, acc, convTimer{Secs: uint32(secs), AtMS: at})
}

// noteExpiryLocked records, in t, a new message's expiry: its time to
// live is what the payload carried (ttl, if set), else the
// conversation's timer (1:1 only: a group text always comes from its
// sender, which says its time to live). It counts from sending for a message this
// account sent (from this device, or in a group from another of its
// devices), from reading for the others.
func (n *Node) noteExpiryLocked(t *txn, id [msgIDSize]byte, ix indexRec, m *msgRec, ttl uint32) {
	if m.Dir == dirSystem {
		return
	}
	if ttl == 0 && !isGroupConv(ix.Account) {
		ttl = n.timerSecsLocked(ix.Account)
	}
	if ttl == 0 {
		return
	}
	e := &expiryRec{Conv: bytes.Clone(ix.Account), Seq: ix.Seq, Secs: ttl}
	if m.Dir == "out" || n.ownGroupMsgLocked(ix, m) {
		e.Until = m.Time.Add(time.Duration(ttl) * time.Second).UnixMilli()
	}
	n.putExpiryLocked(t, id, e)
	n.startExpiryLocked(t, id, m)
}

func (n *Node) putExpiryLocked(t *txn, id [msgIDSize]byte, e *expiryRec) {
	prev, had := n.timers.exp[id]
	n.timers.exp[id] = e
	t.undo(func() {
		if had {
			n.timers.exp[id] = prev
		} else {
			delete(n.timers.exp, id)
		}
	})
	putJSON(t.b, n.tabs.timers, expiryKey(id), e)
	if e.Until != 0 {
		t.timersChanged = true
	}
}

// startExpiryLocked starts an incoming message's countdown when it is
// read.
func (n *Node) startExpiryLocked(t *txn, id [msgIDSize]byte, m *msgRec) {
	e := n.timers.exp[id]
	if e == nil || e.Until != 0 || m.Dir != "in" || m.State != StateRead {
		return
	}
	started := *e
	started.Until = n.now().Add(time.Duration(e.Secs) * time.Second).UnixMilli()
	n.putExpiryLocked(t, id, &started)
}

// expiryLoop deletes expired messages: at once (messages that expired
// while the node was off), then whenever the next one is due.
func (n *Node) expiryLoop(ctx context.Context) {
	for {
		next := n.ExpireDue()
		wait := time.Minute
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(n.now()), 10*time.Millisecond))
		}
		tm := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-n.timers.wake:
		case <-tm.C:
		}
		tm.Stop()
	}
}

// kickExpiry wakes the expiry loop (a countdown started).
func (n *Node) kickExpiry() {
	select {
	case n.timers.wake <- struct{}{}:
	default:
	}
}

// ExpireDue deletes every message whose time is up, compacts what held
// them, and returns when the next one is due (zero: none pending).
func (n *Node) ExpireDue() time.Time {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return time.Time{}
	}
	now := n.now().UnixMilli()
	var next int64
	t := n.newTxnLocked()
	var blobs []string
	for id, e := range n.timers.exp {
		switch {
		case e.Until == 0:
		case e.Until <= now:
			blobs = append(blobs, n.expireLocked(t, id, e)...)
		case next == 0 || e.Until < next:
			next = e.Until
		}
	}
	for id, at := range n.timers.gone {
		if at < now-goneKeep.Milliseconds() {
			delete(n.timers.gone, id)
			t.b.Delete(n.tabs.timers, goneKey(id))
		}
	}
	if t.b.Len() == 0 {
		n.mu.Unlock()
		return msTime(next)
	}
	err := n.commitReleasingLock(t)
	n.mu.Unlock()
	if err != nil {
		n.logStoreError("store commit failed", err, "job", "expiry")
		return msTime(next)
	}
	for _, b := range blobs {
		os.Remove(b)
	}
	// The deletes are tombstones until compaction rewrites the files
	// that held the sealed records (and drops the journal).
	for _, tab := range []*store.Table{n.tabs.messages, n.tabs.msgIndex, n.tabs.syncState, n.tabs.files, n.tabs.timers} {
		if err := n.db.Compact(tab); err != nil {
			n.log.Warn("compaction after expiry failed", "err", err)
		}
	}
	return msTime(next)
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// expireLocked deletes, in t, an expired message and everything kept
// about it; it returns the attachment's files to remove after the
// commit.
func (n *Node) expireLocked(t *txn, id [msgIDSize]byte, e *expiryRec) []string {
	delete(n.timers.exp, id)
	now := n.now().UnixMilli()
	n.timers.gone[id] = now
	t.undo(func() { n.timers.exp[id] = e; delete(n.timers.gone, id) })
	t.b.Delete(n.tabs.timers, expiryKey(id))
	t.b.Put(n.tabs.timers, goneKey(id), binary.BigEndian.AppendUint64(nil, uint64(now)))
	t.b.Delete(n.syncTable(), syncKey(skMessage, id[:]))
	m, ix, err := n.loadMsgLocked(id)
	if err != nil {
		return nil // deleted already (its contact removed)
	}
	n.deleteMsgLocked(t, id, ix)
	var blobs []string
	if m.File != nil {
		if hash, err := hex.DecodeString(m.File.Hash); err == nil && len(hash) == attach.HashSize {
			t.b.Delete(n.tabs.files, hash)
			for _, ext := range []string{".blob", ".part"} {
				blobs = append(blobs, n.blobPath([attach.HashSize]byte(hash), ext))
			}
		}
	}
	gone := Message{ID: m.ID, Contact: n.nameOfLocked(ix.Account), Direction: m.Dir, Time: m.Time, Deleted: true, State: m.State}
	if isGroupConv(ix.Account) {
		gone.Group, gone.Sender = hex.EncodeToString(ix.Account[1:]), m.Sender
	}
	t.events = append(t.events, Event{Type: EventUpdate, Message: &gone})
	return blobs
}

// setTTL notes a new message's time to live as its payload carries it.
func (t *txn) setTTL(id [msgIDSize]byte, secs uint32) {
	if t.ttls == nil {
		t.ttls = map[[msgIDSize]byte]uint32{}
	}
	t.ttls[id] = secs
}

// expiredLocked reports whether message id expired here: a copy that
// comes later (a relay's mailbox, another device's sync) is dropped.
func (n *Node) expiredLocked(id [msgIDSize]byte) bool {
	_, gone := n.timers.gone[id]
	return gone
}
