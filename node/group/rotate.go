package group

import (
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/crypto/senderkey"
)

// Sender-key rotation (docs/protocol/groups.md §16.4). Seal replaces this
// device's sender key once it has sealed RotateMessages messages or is
// RotateAfter old, and the new key goes to every member device over the
// pairwise sessions, as after an epoch change. Each key of an epoch
// carries a generation; a receiver that learns a newer generation from a
// device retires the older chains and accepts their late messages for
// Config.Grace more. So a copy of a device's sender key (or of anyone's
// receiving chains) reads and forges that device's messages only until
// its next rotation, not until the next removal.

// devEpoch is one sender device in one epoch.
type devEpoch struct {
	device identity.DeviceID
	epoch  uint64
}

// genChain is a sender chain with its generation in the epoch.
type genChain struct {
	gen   uint32
	chain uint32
}

// maxChainRecords bounds the newest-chain and retired-chain records: the
// Receiver holds at most MaxStates chains of at most MaxSenders devices.
const maxChainRecords = senderkey.MaxSenders * senderkey.MaxStates

// rotationDueLocked reports whether k has been used or kept long enough.
func (e *Engine) rotationDueLocked(k *ownKey) bool {
	return k.sk.Iteration() >= RotateMessages || e.cfg.Now().Sub(k.created) >= RotateAfter
}

// rotateLocked replaces this device's sender key of the current epoch
// with a new one of the next generation. Nobody has it yet: the next
// reconcile (Flush, or any call returning Effects) sends it to every
// member device.
func (e *Engine) rotateLocked(old *ownKey) (*ownKey, error) {
	cur := e.ro.epoch()
	secret, ok := e.secrets[e.curID]
	if cur == nil || cur.key != e.curID || !ok {
		return nil, ErrNotReady
	}
	sk, err := senderkey.NewSenderKey(e.ro.id, old.n, e.cfg.Device)
	if err != nil {
		return nil, err
	}
	k := &ownKey{n: old.n, gen: max(old.gen+1, e.nextGenLocked(old.n)), created: e.cfg.Now(), sk: sk, sent: make(map[identity.DeviceID]bool)}
	k.first = e.keyMsg(cur, secret, k)
	e.own[e.curID] = k
	e.installOwnLocked(k)
	e.owed = true
	return k, nil
}

// installOwnLocked puts this device's own chain in the Receiver, so its
// other devices' echoes and anti-entropy replies of its messages verify
// like anyone else's.
func (e *Engine) installOwnLocked(k *ownKey) {
	d := k.sk.Distribution()
	if e.recv.Add(d) == nil {
		e.noteChainLocked(chainRef{d.Device, d.Epoch, d.ChainID}, k.gen)
	}
}

// noteChainLocked records that chain c, of generation gen, is installed.
// A newer generation retires the device's previous chain of that epoch;
// an older one arriving late is retired at once (its late messages still
// have the grace window). Two chains of one generation (a sender state
// restored from a backup) both stay open: neither is known to be older.
func (e *Engine) noteChainLocked(c chainRef, gen uint32) {
	de := devEpoch{c.device, c.epoch}
	cur, ok := e.latest[de]
	switch {
	case !ok:
		if len(e.latest) >= maxChainRecords {
			return // cannot happen while the Receiver keeps its caps
		}
		e.latest[de] = genChain{gen, c.chain}
	case gen > cur.gen:
		e.retireLocked(chainRef{c.device, c.epoch, cur.chain})
		e.latest[de] = genChain{gen, c.chain}
	case gen < cur.gen:
		e.retireLocked(c)
	}
}

// nextGenLocked is the generation of a new own key for epoch n: one past
// the last this device made for that epoch number (a concurrent epoch
// change can make a second key for the same number).
func (e *Engine) nextGenLocked(n uint64) uint32 {
	if g, ok := e.latest[devEpoch{e.cfg.Device, n}]; ok {
		return g.gen + 1
	}
	return 0
}

// retireLocked notes that chain c was replaced now (the first time
// counts). It keeps the MaxStates most recent retirements per device:
// older chains are no longer in the Receiver.
func (e *Engine) retireLocked(c chainRef) {
	if _, ok := e.retired[c]; ok {
		return
	}
	e.retired[c] = e.cfg.Now()
	var oldest *chainRef
	n := 0
	for r, t := range e.retired {
		if r.device != c.device {
			continue
		}
		n++
		if oldest == nil || t.Before(e.retired[*oldest]) {
			o := r
			oldest = &o
		}
	}
	if n > senderkey.MaxStates && oldest != nil {
		delete(e.retired, *oldest)
	}
}

// closedLocked reports whether chain c was replaced by a newer one more
// than the grace window ago.
func (e *Engine) closedLocked(c chainRef) bool {
	t, ok := e.retired[c]
	return ok && e.cfg.Now().Sub(t) >= e.cfg.Grace
}

// forgetChainsLocked drops the chain records of devices and epochs for
// which drop is true.
func (e *Engine) forgetChainsLocked(drop func(identity.DeviceID, uint64) bool) {
	for de := range e.latest {
		if drop(de.device, de.epoch) {
			delete(e.latest, de)
		}
	}
	for c := range e.retired {
		if drop(c.device, c.epoch) {
			delete(e.retired, c)
		}
	}
}

// Flush returns what the engine owes the group that no call has returned
// yet: after Create, the Welcome, Secret and Key for each other device
// of this account in the group; after Seal replaced this device's sender
// key, the new key for every member device; after Unmarshal, whatever
// was saved unsent. Call it after Create and after Seal; like every
// other call's Effects, persist the engine before sending them.
func (e *Engine) Flush() *Effects {
	e.mu.Lock()
	defer e.mu.Unlock()
	fx := new(Effects)
	if e.owed {
		e.reconcileLocked(fx)
	}
	return fx
}
