package node

import (
	"bytes"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/group"
)

// The group directory side of the runner: pairwise group messages to
// members (contacts or directory cards), held while a member's card is
// missing, and the member cards learnt from the groups.

// effectsLocked queues an engine's effects in t: publications go out
// after the commit; pairwise messages are encrypted now into the outbox.
func (n *Node) effectsLocked(t *txn, gs *groupState, fx *group.Effects, now time.Time) {
	if fx == nil {
		return
	}
	for _, w := range fx.Publish {
		n.queuePublishLocked(t, gs, w)
	}
	for _, pw := range fx.Pairwise {
		n.sendGroupPairwiseLocked(t, pw.Account, pw.Device, &payload{Type: ptGroup, Data: pw.Data}, now)
	}
}

// sendGroupPairwiseLocked encrypts a group payload for one device of an
// account (a contact or a member from the directory).
func (n *Node) sendGroupPairwiseLocked(t *txn, acc identity.AccountID, dev identity.DeviceID, p *payload, now time.Time) {
	if acc == n.cert.Account() && dev == n.cert.DeviceID() {
		return
	}
	cc, name := n.cardOfAccountLocked(acc)
	if acc == n.cert.Account() {
		cc, name = n.siblingsLocked(), "your other device" // held below until its entry arrives
	}
	if cc == nil {
		// The member's card has not arrived yet (it comes with the
		// directory or with its first message): hold the message.
		n.holdPairwiseLocked(acc, dev, p)
		return
	}
	if d := cc.Device(dev); d == nil || !cc.List.Contains(dev) {
		// The card we hold does not list this device (or gives it no
		// prekeys): hold the message until a newer card does. The engine
		// counts it as sent, so dropping it would lose it for the epoch.
		n.holdPairwiseLocked(acc, dev, p)
		return
	}
	p.ID, p.TimeMS = newMessageID(), uint64(now.UnixMilli())
	if err := n.encryptToCardLocked(t, cc, name, &dev, p, false, now); err != nil {
		n.log.Debug("group pairwise message not queued", "err", err)
	}
}

func (n *Node) holdPairwiseLocked(acc identity.AccountID, dev identity.DeviceID, p *payload) {
	if len(n.heldPairwise[acc]) < maxHeldPairwise {
		n.heldPairwise[acc] = append(n.heldPairwise[acc], heldPW{dev: dev, p: p})
	} else {
		n.log.Warn("group message for a member whose card is missing dropped: too many held", "held", maxHeldPairwise)
	}
}

// releaseHeldLocked sends the group messages held for an account whose
// card just arrived or changed (as a member, a contact or a request);
// those its card still cannot carry are held again.
func (n *Node) releaseHeldLocked(t *txn, acc identity.AccountID, now time.Time) {
	held := n.heldPairwise[acc]
	delete(n.heldPairwise, acc)
	for _, h := range held {
		n.sendGroupPairwiseLocked(t, acc, h.dev, h.p, now)
	}
}

// cardOfAccountLocked returns a contact's or a directory member's card.
func (n *Node) cardOfAccountLocked(acc identity.AccountID) (*card.Card, string) {
	if c := n.contacts[acc]; c != nil {
		return c.card, c.rec.Name
	}
	if c := n.peers[acc]; c != nil {
		return c, c.Name
	}
	return nil, ""
}

// memberNameLocked is how a member is shown: the contact name, else the
// card's display name, else a short account ID.
func (n *Node) memberNameLocked(acc identity.AccountID) string {
	if acc == n.cert.Account() {
		return "me"
	}
	if c := n.contacts[acc]; c != nil {
		return c.rec.Name
	}
	if c := n.peers[acc]; c != nil {
		return cleanDisplayName(c.Name) + " (" + acc.String() + ")"
	}
	return acc.String()
}

// learnCardLocked adds a group member's card to the directory, or
// updates a contact's, so pairwise sessions can start with its devices.
func (n *Node) learnCardLocked(t *txn, b []byte, now time.Time) {
	for _, known := range n.peers { // the same card again (it rides on every prekey message): nothing to do
		if bytes.Equal(known.Marshal(), b) {
			return
		}
	}
	for _, c := range n.contacts {
		if bytes.Equal(c.rec.Card, b) {
			return
		}
	}
	c, err := card.Parse(b, now)
	if err != nil {
		c, err = card.ParseStored(b) // old prekeys: still good for its addresses
		if err != nil {
			return
		}
	}
	acc := c.Account()
	if acc == n.cert.Account() {
		return
	}
	if ct := n.contacts[acc]; ct != nil {
		// A contact's newer card from its group traffic (a device it
		// linked, or one it revoked): as from its 1:1 messages.
		n.updateContactCardLocked(t, ct, c, now)
		return
	}
	old := n.peers[acc]
	if old != nil && !cardNewer(c, old) {
		return
	}
	if old != nil {
		n.endDroppedDevicesLocked(t, old, c)
	}
	n.peers[acc] = c
	t.b.Put(n.tabs.peers, acc[:], c.Marshal())
	n.routeChangedLocked(c)
	n.releaseHeldLocked(t, acc, now)
}

// heldPW is a pairwise group message waiting for its recipient's card.
type heldPW struct {
	dev identity.DeviceID
	p   *payload
}

// maxHeldPairwise bounds the messages held per unknown member.
const maxHeldPairwise = 64
