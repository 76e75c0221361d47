package node

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hushnet/hush/crypto/identity"
)

// One send path for every conversation and every kind: Send (a contact)
// and SendGroup (a group) differ only in how the conversation is found
// and committed; sendLocked does the rest. Adding a message kind is a
// case in sendLocked (what the sender stores) and in the receive side's
// apply (what the recipient stores), for 1:1 and groups at once.

// conversation is where a send goes: a contact or a group.
type conversation struct {
	key     []byte      // its messages-table ID: the contact's account, or convKey of the group
	contact *contact    // a 1:1 conversation
	group   *groupState // a group conversation
}

// view shows a record as the API does in this conversation.
func (n *Node) convView(cv conversation, m *msgRec) Message {
	if cv.group != nil {
		return n.groupMsgView(m, cv.group)
	}
	return m.view(cv.contact.rec.Name)
}

// outgoing is one send: the same fields for a contact and a group.
type outgoing struct {
	Kind   Kind
	Text   string
	Target string
	Remove bool
	TxnID  string // client transaction ID: a retry returns the first result
	// Attach is an attachment pointer (files.go) and File what the
	// message shows of it; Text is then a caption and may be empty.
	Attach []byte
	File   *FileInfo
}

// kind returns the send's kind (text, or reply when there is a target)
// after checking its text.
func (o outgoing) kind() (Kind, error) {
	k := o.Kind
	if k == "" {
		k = KindText
		if o.Target != "" {
			k = KindReply
		}
	}
	if o.Attach != nil && k == KindText && o.Text == "" {
		return k, nil // a file without a caption
	}
	return k, checkText(k, o.Text)
}

// sentBeforeLocked returns the message an earlier send with the same
// client transaction ID made, if there was one.
func (n *Node) sentBeforeLocked(cv conversation, txnID string) (Message, bool) {
	if txnID == "" {
		return Message{}, false
	}
	b, err := n.tabs.txns.Get([]byte(txnID))
	if err != nil {
		return Message{}, false
	}
	var rec txnRec
	if jsonUnmarshal(b, &rec) != nil {
		return Message{}, false
	}
	id, err := parseMsgID(rec.MsgID)
	if err != nil {
		return Message{}, false
	}
	m, ix, err := n.loadMsgLocked(id)
	if err != nil || string(ix.Account) != string(cv.key) {
		return Message{}, false
	}
	return n.convView(cv, m), true
}

// sendLocked builds, stores and sends one message in t: a new text or
// reply, or an edit, delete or reaction of a message of the conversation
// (edits and deletes only of one's own). A text starts "queued" in a 1:1
// conversation (the outbox moves it on) and "sent" in a group (it is
// published with the commit). It returns what the conversation now
// shows: the new message, or the target as changed.
func (n *Node) sendLocked(t *txn, cv conversation, o outgoing, now time.Time) (Message, error) {
	kind, err := o.kind()
	if err != nil {
		return Message{}, err
	}
	if m, ok := n.sentBeforeLocked(cv, o.TxnID); ok {
		return m, nil
	}
	p := &payload{ID: n.messageIDFor(cv.key, o.TxnID), Text: o.Text, Attach: o.Attach}
	if cv.group != nil {
		p.TimeMS = n.groupClockLocked(now) // orders one sender's group messages everywhere
	} else {
		p.TimeMS = uint64(now.UnixMilli())
	}
	var rec *msgRec
	var ix indexRec
	event := EventUpdate
	switch kind {
	case KindText, KindReply:
		p.Type = ptText
		rec = &msgRec{ID: hex.EncodeToString(p.ID[:]), Dir: "out", Text: o.Text, State: StateQueued, Time: now.UTC(), File: o.File}
		if cv.group != nil {
			rec.State, rec.Sender = StateSent, "me"
		}
		if kind == KindReply {
			target, _, err := n.targetLocked(o.Target, cv.key, "")
			if err != nil {
				return Message{}, err
			}
			p.Target = target
			rec.ReplyTo = o.Target
		}
		if cv.group != nil {
			ix = indexRec{Account: cv.key, Seq: n.groupSeqLocked(t, cv.key, p)}
		} else {
			ix = indexRec{Account: cv.key, Seq: n.nextSeqLocked()}
		}
		event = EventMessage
	case KindEdit, KindDelete, KindReaction:
		onlyOwn := "out"
		if kind == KindReaction {
			onlyOwn = ""
		}
		target, tix, err := n.targetLocked(o.Target, cv.key, onlyOwn)
		if err != nil {
			return Message{}, err
		}
		if kind == KindDelete {
			if err := n.recallAllowedLocked(target, now); err != nil {
				return Message{}, err
			}
		}
		p.Target = target
		if rec, _, err = n.loadMsgLocked(target); err != nil {
			return Message{}, err
		}
		ix = tix
		applyOwnAction(p, rec, kind, o.Text, o.Remove)
		if cv.group == nil {
			p.Clock = n.tickLocked(t, now) // the contact's devices and ours order it alike
		}
	default:
		return Message{}, fmt.Errorf("unknown message kind %q", kind)
	}
	// A 1:1 text takes the conversation's next counter, so the recipient
	// can tell when texts are missing (gaps.go); it is taken only once
	// the text is encrypted, and only texts count: nothing else the
	// outbox carries is shown as a message, and typing indicators are
	// dropped on purpose.
	counted := cv.group == nil && p.Type == ptText
	if counted {
		p.Counter = n.lastSentLocked(cv.contact.account()) + 1
	}
	if p.Type == ptText {
		if p.TTL = n.timerSecsLocked(cv.key); p.TTL != 0 { // disappears (timers.go)
			t.setTTL(p.ID, p.TTL)
		}
	}
	// Sent first: nothing of a send that cannot go is recorded.
	if cv.group != nil {
		err = n.publishGroupPayloadLocked(t, cv.group, p, now)
	} else {
		err = n.encryptToLocked(t, cv.contact, p, kind == KindText || kind == KindReply, now)
	}
	if err != nil {
		return Message{}, err
	}
	if counted {
		rec.Counter = p.Counter
		n.takeCounterLocked(t, cv.contact.account(), p.Counter)
	}
	if kind == KindText || kind == KindReply {
		n.putMsgLocked(t, p.ID, ix, rec)
	} else {
		n.updateMsgLocked(t, p.Target, ix, rec) // an edit, delete or reaction changes its target
	}
	view := n.convView(cv, rec)
	t.events = append(t.events, Event{Type: event, Message: &view})
	if cv.group == nil { // the account's other devices show it too (groups: not yet)
		n.syncMessageLocked(t, cv.contact.account(), n.cert.Account(), n.cert.DeviceID(), p, now)
	}
	if o.TxnID != "" {
		putJSON(t.b, n.tabs.txns, []byte(o.TxnID), &txnRec{MsgID: rec.ID})
	}
	return view, nil
}

// applyContentLocked applies an incoming text, reply, edit, delete or
// reaction from account from (shown as sender) to conversation cv, for
// contacts and groups alike. Texts are stored once per message ID,
// whatever the number of paths; an edit or delete applies only to a
// message the same account sent; a reaction to any message of the
// conversation that is not deleted. It returns the ID of a newly stored
// text, if it stored one.
func (n *Node) applyContentLocked(t *txn, cv conversation, from identity.AccountID, dev identity.DeviceID, sender string, p *payload) *[msgIDSize]byte {
	switch p.Type {
	case ptText:
		if _, _, err := n.loadMsgLocked(p.ID); err == nil || n.goneLocallyLocked(p.ID) || n.expiredLocked(p.ID) {
			return nil
		}
		m := &msgRec{ID: hex.EncodeToString(p.ID[:]), Dir: "in", Text: p.Text, State: StateReceived,
			Time: time.UnixMilli(int64(p.TimeMS)).UTC()}
		if p.Target != ([msgIDSize]byte{}) {
			m.ReplyTo = hex.EncodeToString(p.Target[:])
		}
		if p.Attach != nil {
			m.File = n.offerFileLocked(t, cv.key, p.ID, dev, p.Attach)
		}
		if p.TTL != 0 {
			t.setTTL(p.ID, p.TTL) // the sender's timer (timers.go)
		}
		ix := indexRec{Account: cv.key}
		if cv.group != nil {
			m.Sender, m.From = sender, from.Hex()
			ix.Seq = n.groupSeqLocked(t, cv.key, p)
		} else {
			ix.Seq = n.nextSeqLocked()
		}
		n.putMsgLocked(t, p.ID, ix, m)
		t.events = append(t.events, Event{Type: EventMessage, Message: ptr(n.convView(cv, m))})
		if cv.group == nil {
			n.syncMessageLocked(t, from, from, dev, p, n.now())
		}
		return &p.ID
	case ptEdit, ptDelete, ptReaction:
		m, ix, err := n.loadMsgLocked(p.Target)
		if err != nil || string(ix.Account) != string(cv.key) {
			return nil
		}
		own := m.Dir == "in" && (cv.group == nil || m.From == from.Hex())
		switch p.Type {
		case ptEdit:
			if !own || m.Deleted {
				return nil
			}
			m.Text, m.Edited = p.Text, true
		case ptDelete:
			if !own || !n.recallAcceptedLocked(m, p.TimeMS) {
				return nil
			}
			m.Text, m.Deleted, m.Reactions = "", true, nil
		case ptReaction:
			if m.Deleted {
				return nil
			}
			applyReaction(m, p.Text, sender, p.Flags&flagRemove != 0)
		}
		n.updateMsgLocked(t, p.Target, ix, m)
		t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(n.convView(cv, m))})
		if cv.group == nil {
			n.syncMessageLocked(t, from, from, dev, p, n.now())
		}
	}
	return nil
}
