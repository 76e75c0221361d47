package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/pqxdh"
	"github.com/hushnet/hush/crypto/session"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/shortlink"
	msync "github.com/hushnet/hush/sync"
)

// msgRec is a messages-table record: id = contact account, seq = local
// order of arrival or sending.
type msgRec struct {
	ID        string              `json:"id"`
	Dir       string              `json:"dir"`
	Text      string              `json:"text"`
	State     MessageState        `json:"state"`
	Time      time.Time           `json:"time"`
	ReplyTo   string              `json:"reply_to,omitempty"`
	Edited    bool                `json:"edited,omitempty"`
	Deleted   bool                `json:"deleted,omitempty"`
	Reactions map[string][]string `json:"reactions,omitempty"`
	Error     string              `json:"error,omitempty"`
	Sender    string              `json:"sender,omitempty"` // group messages: who sent it, as shown
	From      string              `json:"from,omitempty"`   // group messages: the sender's account (hex)
	// An entry the node wrote itself (Dir "system") has a Kind:
	// KindMissing, a missing-messages notice counting Missing texts.
	Kind    Kind   `json:"kind,omitempty"`
	Missing uint64 `json:"missing,omitempty"`
	// Counter is an outgoing 1:1 text's conversation counter (gaps.go).
	Counter uint64 `json:"ctr,omitempty"`
	// File is the message's attachment as it shows (files.go).
	File *FileInfo `json:"file,omitempty"`
	// ReadBy is, on a group message this account sent, the members
	// whose read receipts came: a bitmap over the group's reader slots
	// (groupreads.go).
	ReadBy []byte `json:"rb,omitempty"`
}

// indexRec is a msgindex-table record: where a message ID lives.
type indexRec struct {
	Account []byte `json:"a"`
	Seq     uint64 `json:"s"`
}

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("node: decode record: %w", err)
	}
	return nil
}

func parseMsgID(s string) ([msgIDSize]byte, error) {
	var id [msgIDSize]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != msgIDSize {
		return id, fmt.Errorf("%w: %q is not a message ID", ErrUnknownMessage, s)
	}
	copy(id[:], b)
	return id, nil
}

func (m *msgRec) view(contactName string) Message {
	return Message{
		ID: m.ID, Contact: contactName, Direction: m.Dir, Text: m.Text, State: m.State,
		Time: m.Time, ReplyTo: m.ReplyTo, Edited: m.Edited, Deleted: m.Deleted,
		Reactions: m.Reactions, Error: m.Error, Sender: m.Sender, Kind: m.Kind, File: m.File,
	}
}

// loadMsgLocked finds a message by ID.
func (n *Node) loadMsgLocked(id [msgIDSize]byte) (*msgRec, indexRec, error) {
	if m, ix, ok := n.records.get(id); ok {
		if m == nil { // deleted in a batch not yet committed
			return nil, ix, ErrUnknownMessage
		}
		return m, ix, nil
	}
	var ix indexRec
	b, err := n.tabs.msgIndex.Get(id[:])
	if errors.Is(err, store.ErrNotFound) {
		return nil, ix, ErrUnknownMessage
	}
	if err != nil {
		return nil, ix, err
	}
	if err := decodeIndexRec(b, &ix); err != nil {
		return nil, ix, err
	}
	v, err := n.tabs.messages.GetSeq(ix.Account, ix.Seq)
	if err != nil {
		return nil, ix, fmt.Errorf("node: message index points nowhere: %w", err)
	}
	var m msgRec
	if err := decodeMsgRec(v, &m); err != nil {
		return nil, ix, err
	}
	n.records.cache(id, &m, ix)
	return &m, ix, nil
}

// txnRec maps a client transaction ID to the message it created.
type txnRec struct {
	MsgID string `json:"m"`
}

// Send stores the message durably, then returns it (state queued); the
// outbox delivers it in the background. A request whose TxnID was seen
// before returns the original message instead of sending again.
func (n *Node) Send(ctx context.Context, req SendRequest) (Message, error) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Message{}, ErrClosed
	}
	c, err := n.contactByNameLocked(req.To)
	if err != nil {
		return Message{}, err
	}
	if err := n.sendableLocked(c); err != nil {
		return Message{}, err
	}
	acc := c.account()
	t := n.newTxnLocked()
	m, err := n.sendLocked(t, conversation{key: acc[:], contact: c},
		outgoing{Kind: req.Kind, Text: req.Text, Target: req.Target, Remove: req.Remove, TxnID: req.TxnID}, now)
	if err != nil {
		n.dropQueuedLocked(t.queued)
		return Message{}, err
	}
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return Message{}, fmt.Errorf("node: store: %w", err)
	}
	return m, nil
}

func checkText(kind Kind, text string) error {
	switch kind {
	case KindDelete:
		return nil
	case KindReaction:
		if text == "" || len(text) > maxReactionBytes || !utf8.ValidString(text) {
			return fmt.Errorf("%w: a reaction is 1 to %d bytes of UTF-8", ErrEmptyMessage, maxReactionBytes)
		}
		return nil
	}
	if strings.TrimSpace(text) == "" {
		return ErrEmptyMessage
	}
	if len(text) > MaxTextSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d bytes", ErrMessageTooLarge, len(text), MaxTextSize)
	}
	if !utf8.ValidString(text) {
		return errors.New("message text is not valid UTF-8")
	}
	return nil
}

// targetLocked resolves the message an action refers to; it must belong
// to the conversation conv (an account, or a group's convKey) and, if dir
// is set, go in that direction.
func (n *Node) targetLocked(idHex string, conv []byte, dir string) ([msgIDSize]byte, indexRec, error) {
	id, err := parseMsgID(idHex)
	if err != nil {
		return id, indexRec{}, err
	}
	m, ix, err := n.loadMsgLocked(id)
	if err != nil || string(ix.Account) != string(conv) {
		return id, ix, fmt.Errorf("%w %s in this conversation", ErrUnknownMessage, idHex)
	}
	if m.Dir == dirSystem {
		return id, ix, fmt.Errorf("%w: %s is a notice, not a message", ErrUnknownMessage, idHex)
	}
	if dir != "" && m.Dir != dir {
		return id, ix, fmt.Errorf("%w: you can only edit or delete your own messages", ErrUnknownMessage)
	}
	if m.Deleted {
		return id, ix, fmt.Errorf("%w: message %s was deleted", ErrUnknownMessage, idHex)
	}
	return id, ix, nil
}

// applyOwnAction applies this user's edit, delete or reaction to the
// target record tm and sets the payload that tells the others.
func applyOwnAction(p *payload, tm *msgRec, kind Kind, text string, remove bool) {
	switch kind {
	case KindEdit:
		p.Type = ptEdit
		tm.Text, tm.Edited = text, true
	case KindDelete:
		p.Type, p.Text = ptDelete, ""
		tm.Text, tm.Deleted, tm.Reactions = "", true, nil
	case KindReaction:
		p.Type = ptReaction
		if remove {
			p.Flags |= flagRemove
		}
		applyReaction(tm, text, "me", remove)
	}
}

func applyReaction(m *msgRec, emoji, who string, remove bool) {
	if m.Reactions == nil {
		m.Reactions = map[string][]string{}
	}
	list := m.Reactions[emoji]
	out := list[:0]
	for _, w := range list {
		if w != who {
			out = append(out, w)
		}
	}
	if !remove {
		out = append(out, who)
	}
	if len(out) == 0 {
		delete(m.Reactions, emoji)
	} else {
		m.Reactions[emoji] = out
	}
	if len(m.Reactions) == 0 {
		m.Reactions = nil
	}
}

// setFor returns the session set with a remote device, loading it from
// the store or creating an empty one.
func (n *Node) setForLocked(cert *identity.DeviceCert) (*session.Set, error) {
	id := cert.DeviceID()
	if s := n.sets[id]; s != nil {
		return s, nil
	}
	b, err := n.tabs.sessions.Get(id[:])
	switch {
	case errors.Is(err, store.ErrNotFound):
		s := session.NewSet(cert)
		n.sets[id] = s
		return s, nil
	case err != nil:
		return nil, err
	}
	s, err := session.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("node: stored session: %w", err)
	}
	n.sets[id] = s
	return s, nil
}

// saveSetLocked writes a session set in t with the active session's
// sending indices reserved up to ratchet.ReserveAhead past the next one
// (docs/protocol/messaging.md "Sending before the commit"): once t is
// durable, messages under them leave before their commits.
func (n *Node) saveSetLocked(t *txn, s *session.Set) error {
	_, err := n.putSetLocked(t, s)
	return err
}

// putSetLocked is saveSetLocked returning the bytes it wrote.
func (n *Node) putSetLocked(t *txn, s *session.Set) ([]byte, error) {
	res := s.Reserve()
	enc, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	id := s.Remote().DeviceID()
	if err := t.b.Put(n.tabs.sessions, id[:], enc); err != nil {
		return nil, err
	}
	t.committed = append(t.committed, func() { s.Confirm(res) })
	return enc, nil
}

// encryptToLocked encrypts p for every device of c, writes the outbox
// entries and session states into b, and queues the entries (not yet
// releasable until b is committed).
//
// When this device's route (peer, addresses, mailboxes) changed since the
// card it last gave c, the payload carries the current card, so c's
// delivery loops learn where to find it (a new port after a restart, a
// mailbox made later).
func (n *Node) encryptToLocked(t *txn, c *contact, p *payload, track bool, now time.Time) error {
	if n.host != nil && p.Card == nil {
		own, err := n.ownCardLocked(now)
		if err != nil {
			return err
		}
		if key := n.ownRouteKey; c.rec.SentRoute != key {
			p.Card = own.Marshal()
			prev := c.rec.SentRoute
			t.undo(func() { c.rec.SentRoute = prev }) // not sent after all
			c.rec.SentRoute = key
			n.saveContact(t.b, c)
		}
	}
	return n.encryptToCardLocked(t, c.card, c.rec.Name, nil, p, track, now)
}

// routeKey digests how a card says its devices are reached, which
// devices its list names, and their signed prekeys: a rotation (weekly)
// sends the card again, so a contact's held card stays young enough to
// start a new session from (a signed prekey is valid 14 days; session
// recovery, recovery.md, starts from the held card).
func routeKey(c *card.Card) string {
	h := sha256.New()
	list := c.List.Hash() // a new device list rides along too (it may drop a device)
	h.Write(list[:])
	for _, d := range c.Devices {
		h.Write(d.ID[:])
		if d.Bundle != nil {
			h.Write(binary.BigEndian.AppendUint32(nil, d.Bundle.SignedPrekey.ID))
			h.Write(binary.BigEndian.AppendUint32(nil, d.Bundle.PQPrekey.ID))
		}
		h.Write(d.PeerID)
		for _, a := range d.Addrs {
			h.Write(a)
		}
		for _, m := range d.Mailboxes {
			h.Write(m.Relay)
			h.Write(m.DepositID)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// encryptToCardLocked is encryptToLocked for any card (a contact's or a
// group member's), optionally for one device only.
func (n *Node) encryptToCardLocked(t *txn, cc *card.Card, name string, only *identity.DeviceID, p *payload, track bool, now time.Time) error {
	b := t.b
	sent := 0
	for _, d := range cc.List.Devices() {
		if only != nil && d.DeviceID() != *only {
			continue
		}
		set, err := n.setForLocked(d)
		if err != nil {
			return err
		}
		if !set.HasSession() {
			if started, err := n.startSessionLocked(set, cc, d, name, now); err != nil {
				return err
			} else if !started {
				continue // a listed device without prekeys in the card: unreachable until it sends
			}
		}
		pp := *p
		if set.Initiating() {
			own, err := n.ownCardLocked(now)
			if err != nil {
				return err
			}
			pp.Card = own.Marshal()
			if c := n.contacts[cc.Account()]; c != nil && len(c.rec.Invite) == shortlink.TokenSize && pp.Type < ptGroup {
				pp.Invite = [shortlink.TokenSize]byte(c.rec.Invite) // the invitation this account used
			}
		}
		// A message whose index the stored session already covers may
		// leave before t is committed; the set is written only when its
		// reservation runs low. Any other is written with t.
		early := set.Reserved()
		kind, body, err := set.Encrypt(n.local, pp.marshal())
		if err != nil {
			return fmt.Errorf("node: encrypt: %w", err)
		}
		if !early || set.ReserveLow() {
			if err := n.saveSetLocked(t, set); err != nil {
				return err
			}
		}
		e := &outEntry{outRec: outRec{
			Seq: n.nextSeqLocked(), MsgID: hex.EncodeToString(p.ID[:]), Track: track,
			Account: cc.Account().Hex(), Kind: uint8(kind), Body: body, Created: now.UTC(),
		}, device: d.DeviceID(), early: early}
		e.DirectOnly, e.Ephemeral = t.directOnly, e.Ephemeral || t.directOnly
		n.putOut(b, e)
		n.queueLocked(d, e)
		if tap := taps.Load(); tap != nil && tap.queue != nil {
			tap.queue(n, d.DeviceID())
		}
		t.queued = append(t.queued, e)
		sent++
	}
	if sent == 0 {
		return fmt.Errorf("%s has no reachable device", name)
	}
	return nil
}

// startSessionLocked starts a new session in set with device d of card
// cc (PQXDH, session.md §14) and makes it active; started is false when
// the card gives the device no prekeys.
func (n *Node) startSessionLocked(set *session.Set, cc *card.Card, d *identity.DeviceCert, name string, now time.Time) (started bool, err error) {
	cd := cc.Device(d.DeviceID())
	if cd == nil {
		return false, nil
	}
	// A one-time bundle fetched from the contact's relay gives the
	// session forward secrecy from its first message; the card's bundle
	// (no one-time keys) is the fallback.
	var bundle *pqxdh.Bundle
	if b, ok := n.prefetched[d.DeviceID()]; ok {
		delete(n.prefetched, d.DeviceID())
		bundle, _ = pqxdh.ParseBundle(b, d.SigningKey(), now)
	}
	if bundle == nil {
		bundle, err = pqxdh.ParseBundle(cd.Bundle.Marshal(), d.SigningKey(), now)
		if err != nil {
			return false, fmt.Errorf("cannot start a session with %s: %w (ask for a fresh link)", name, err)
		}
	}
	if err := set.Start(n.local, bundle); err != nil {
		return false, err
	}
	return true, nil
}

// WaitState blocks until message id reaches state (or a later one), the
// message fails, or ctx ends; the state it returns is committed.
func (n *Node) WaitState(ctx context.Context, idHex string, state MessageState) (Message, error) {
	id, err := parseMsgID(idHex)
	if err != nil {
		return Message{}, err
	}
	for {
		n.mu.Lock()
		m, ix, err := n.loadMsgLocked(id)
		if err != nil {
			n.mu.Unlock()
			return Message{}, err
		}
		name := n.nameOfLocked(ix.Account)
		ch := n.records.uncommitted(id) // a state is reported once it is durable
		if (m.State.Rank() >= state.Rank() || m.State == StateFailed) && ch == nil {
			n.mu.Unlock()
			return m.view(name), nil
		}
		if ch == nil {
			ch = n.events.Wait(idHex)
		}
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return m.view(name), ctx.Err()
		}
	}
}

func (n *Node) nameOfLocked(acc []byte) string {
	id, err := identity.ParseAccountID(acc)
	if err != nil {
		return ""
	}
	if c := n.contacts[id]; c != nil {
		return c.rec.Name
	}
	return ""
}

// Messages returns the last limit messages with a contact (0: all),
// oldest first.
func (n *Node) Messages(contactName string, limit int) ([]Message, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.contactByNameLocked(contactName)
	if err != nil {
		return nil, err
	}
	acc := c.account()
	return n.scanConversationLocked(acc[:], limit, func(m *msgRec) Message { return m.view(c.rec.Name) })
}

// MarkRead marks every incoming message from contact as read and, unless
// read receipts are off, tells the contact.
func (n *Node) MarkRead(contactName string) error {
	now := n.now()
	n.mu.Lock()
	c, err := n.contactByNameLocked(contactName)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	acc := c.account()
	t := n.newTxnLocked()
	var ids [][msgIDSize]byte
	type upd struct {
		seq uint64
		m   msgRec
	}
	var updates []upd
	var marker *msync.ReadMarker // the newest incoming message: what the other devices mark read up to
	err = n.tabs.messages.ScanSeq(acc[:], 0, ^uint64(0), func(seq uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		if m.Dir == "in" {
			if id, err := parseMsgID(m.ID); err == nil {
				if ms := recTimeMS(&m); marker == nil || markerCompare(ms, id, marker.TimeMS, marker.ID) > 0 {
					marker = &msync.ReadMarker{Conv: contactConv(acc), TimeMS: ms, ID: id}
				}
			}
		}
		if (m.Dir == "in" || m.Dir == dirSystem) && m.State != StateRead {
			updates = append(updates, upd{seq, m})
		}
		return nil
	})
	if err != nil {
		n.mu.Unlock()
		return err
	}
	for _, u := range updates {
		id, err := parseMsgID(u.m.ID)
		if err != nil {
			continue
		}
		cur, _, err := n.loadMsgLocked(id)
		if err != nil {
			continue // deleted meanwhile (a withdrawn notice)
		}
		u.m = *cur // perhaps a newer, uncommitted version
		u.m.State = StateRead
		n.updateMsgLocked(t, id, indexRec{Account: acc[:], Seq: u.seq}, &u.m)
		if u.m.Dir == "in" && len(ids) < maxReceiptIDs { // a notice is this device's own: no receipt
			ids = append(ids, id)
		}
		t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(u.m.view(c.rec.Name))})
	}
	if len(t.msgs) == 0 {
		n.mu.Unlock()
		return nil
	}
	if marker != nil {
		n.syncLocalLocked(t, marker, now)
	}
	if len(ids) > 0 && !n.settings.NoReadReceipts && n.sendableLocked(c) == nil {
		p := &payload{Type: ptRead, ID: newMessageID(), TimeMS: uint64(now.UnixMilli()), IDs: ids}
		if err := n.encryptToLocked(t, c, p, false, now); err != nil {
			n.dropQueuedLocked(t.queued)
			n.mu.Unlock()
			return err
		}
	}
	n.saveSeqLocked(t)
	err = n.commitReleasingLock(t)
	n.mu.Unlock()
	return err
}

// SetReadReceipts turns sending read receipts on or off (default on).
func (n *Node) SetReadReceipts(on bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	prev := n.settings.NoReadReceipts
	n.settings.NoReadReceipts = !on
	now := n.now()
	t := n.newTxnLocked()
	t.undo(func() { n.settings.NoReadReceipts = prev })
	putJSON(t.b, n.tabs.identity, idSettings, &n.settings)
	value := "on"
	if !on {
		value = "off"
	}
	n.syncLocalLocked(t, &msync.Setting{Key: settingReadReceipts, Clock: n.tickLocked(t, now), Value: []byte(value)}, now)
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	return nil
}
