package node

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hushnet/hush/node/attach"
)

// Deleting messages: for everyone (a recall, sent as a KindDelete
// message) within RecallWindow of sending, or on this device only
// (DeleteLocal, ClearConversation), which nobody else learns of.

// DefaultRecallWindow is how long a sent message can be deleted for
// everyone unless Config.RecallWindow says otherwise.
const DefaultRecallWindow = 24 * time.Hour

// RecallSkew is the clock difference a received recall is allowed on top
// of the window: a contact's recall is applied when it was sent at most
// RecallWindow + RecallSkew after the message it deletes (both times
// from the contact's clock), and ignored beyond.
const RecallSkew = 10 * time.Minute

// ErrRecallWindow: a message older than the recall window cannot be
// deleted for everyone any more.
var ErrRecallWindow = errors.New("too old to delete for everyone")

func (n *Node) recallWindow() time.Duration {
	if n.cfg.RecallWindow > 0 {
		return n.cfg.RecallWindow
	}
	return DefaultRecallWindow
}

// recallAllowedLocked refuses to recall one's own message id once the
// recall window has passed since it was sent.
func (n *Node) recallAllowedLocked(id [msgIDSize]byte, now time.Time) error {
	m, _, err := n.loadMsgLocked(id)
	if err != nil {
		return err
	}
	if age := now.Sub(m.Time); age > n.recallWindow() {
		return fmt.Errorf("%w: sent %s ago, the limit is %s; delete it on this device only with --local (API: deleteMessage with local: true)",
			ErrRecallWindow, age.Round(time.Minute), n.recallWindow())
	}
	return nil
}

// recallAcceptedLocked says whether a contact's recall, sent at timeMS
// (its clock), of message m still falls in the window.
func (n *Node) recallAcceptedLocked(m *msgRec, timeMS uint64) bool {
	age := time.UnixMilli(int64(timeMS)).Sub(m.Time)
	return age <= n.recallWindow()+RecallSkew
}

// goneLocallyLocked says whether message id was deleted on this device
// only: a copy arriving again (another path, another device's sync) is
// not stored again.
func (n *Node) goneLocallyLocked(id [msgIDSize]byte) bool {
	if !n.localGoneAny {
		return false // nothing was ever deleted here: no lookup per incoming message
	}
	ok, err := n.tabs.localGone.Has(id[:])
	return err == nil && ok
}

// loadLocalGoneLocked notes whether any message was deleted on this
// device only (goneLocallyLocked).
func (n *Node) loadLocalGoneLocked() error {
	err := n.tabs.localGone.Scan(func(_, _ []byte) error { return errFound })
	n.localGoneAny = errors.Is(err, errFound)
	if err != nil && !n.localGoneAny {
		return fmt.Errorf("node: load local deletions: %w", err)
	}
	return nil
}

// removeMsgLocked deletes message m (id, at ix) from this device's store
// in t, leaving a tombstone, and returns the hash of its attachment's
// blob, if it has one, for removeBlobs once t is committed.
func (n *Node) removeMsgLocked(t *txn, id [msgIDSize]byte, ix indexRec, m *msgRec) (blob []byte) {
	t.b.Delete(n.tabs.msgIndex, id[:])
	t.b.DeleteSeq(n.tabs.messages, ix.Account, ix.Seq)
	n.tailChangedLocked(t, ix.Account)
	t.b.Delete(n.syncTable(), syncKey(skMessage, id[:]))
	t.b.Put(n.tabs.localGone, id[:], []byte{1})
	n.localGoneAny = true // at once: a copy arriving before the commit lands is refused too
	n.records.remove(id, ix)
	t.msgs = append(t.msgs, id)
	if m.File != nil {
		if h, err := hex.DecodeString(m.File.Hash); err == nil && len(h) == attach.HashSize {
			t.b.Delete(n.tabs.files, h)
			return h
		}
	}
	return nil
}

// removeBlobs deletes the blob files of removed attachments.
func (n *Node) removeBlobs(hashes [][]byte) {
	for _, h := range hashes {
		hash := [attach.HashSize]byte(h)
		for _, ext := range []string{".blob", ".part"} {
			if err := os.Remove(n.blobPath(hash, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
				n.log.Warn("cannot remove a deleted message's file", "err", err)
			}
		}
	}
}

// DeleteLocal deletes a message of the conversation with a contact or a
// group from this device only, with its attachment's file; nobody else
// is told, and the account's other devices keep it. An update event
// shows it deleted.
func (n *Node) DeleteLocal(contactName, groupRef, idHex string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	key, err := n.convKeyLocked(contactName, groupRef)
	if err != nil {
		return err
	}
	id, err := parseMsgID(idHex)
	if err != nil {
		return err
	}
	m, ix, err := n.loadMsgLocked(id)
	if err != nil || string(ix.Account) != string(key) {
		return fmt.Errorf("%w %s in this conversation", ErrUnknownMessage, idHex)
	}
	t := n.newTxnLocked()
	var blobs [][]byte
	if h := n.removeMsgLocked(t, id, ix, m); h != nil {
		blobs = append(blobs, h)
	}
	gone := *m
	gone.Text, gone.Deleted, gone.Reactions, gone.File = "", true, nil, nil
	t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(n.viewByKeyLocked(key, &gone))})
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	n.removeBlobs(blobs)
	return nil
}

// ClearConversation deletes every message of the conversation with a
// contact or a group from this device, as DeleteLocal does one; the
// contact or group stays.
func (n *Node) ClearConversation(contactName, groupRef string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	key, err := n.convKeyLocked(contactName, groupRef)
	if err != nil {
		return err
	}
	type entry struct {
		id  [msgIDSize]byte
		seq uint64
		m   msgRec
	}
	var all []entry
	err = n.tabs.messages.ScanSeq(key, 0, ^uint64(0), func(seq uint64, v []byte) error {
		var m msgRec
		if err := decodeMsgRec(v, &m); err != nil {
			return err
		}
		id, err := parseMsgID(m.ID)
		if err != nil {
			return nil
		}
		all = append(all, entry{id, seq, m})
		return nil
	})
	if err != nil {
		return err
	}
	t := n.newTxnLocked()
	var blobs [][]byte
	for i := range all {
		if h := n.removeMsgLocked(t, all[i].id, indexRec{Account: key, Seq: all[i].seq}, &all[i].m); h != nil {
			blobs = append(blobs, h)
		}
	}
	if err := n.commitReleasingLock(t); err != nil {
		return fmt.Errorf("node: store: %w", err)
	}
	n.records.forget()
	n.removeBlobs(blobs)
	return nil
}
