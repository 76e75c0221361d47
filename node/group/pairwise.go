package group

// Group data that arrives over pairwise sessions (docs/protocol/groups.md
// §16.3): Welcome parts, ops, epoch secrets and sender keys, and the ops
// parked until what they need arrives.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
)

// HandlePairwise takes a group message that arrived over the pairwise
// session with (account, device); the caller vouches for both. Key and
// secret messages for an epoch this engine does not know yet are held
// and retried when it arrives.
func (e *Engine) HandlePairwise(account identity.AccountID, device identity.DeviceID, data []byte) (*Effects, error) {
	p, err := parsePairwise(data)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p.group != e.ro.id {
		return nil, ErrWrongGroup
	}
	fx := new(Effects)
	err = e.handlePairwiseLocked(account, device, p, fx)
	if errors.Is(err, ErrParked) {
		if len(e.parkedPW) >= maxParked {
			e.parkedPW = e.parkedPW[1:]
		}
		e.parkedPW = append(e.parkedPW, parkedPW{account, device, codec.Clone(data)})
		return fx, err
	}
	if err != nil {
		return nil, err
	}
	e.retryParkedLocked(fx)
	return fx, nil
}

// retryParkedLocked retries held key and secret messages until none more
// applies. Nested calls (an op applied by a retried message) return at
// once; the outer loop picks up what they enabled.
func (e *Engine) retryParkedLocked(fx *Effects) {
	if e.retrying {
		return
	}
	e.retrying = true
	defer func() { e.retrying = false }()
	for progress := true; progress; {
		progress = false
		for i := 0; i < len(e.parkedPW); i++ {
			q := e.parkedPW[i]
			qp, _ := parsePairwise(q.data)
			if err := e.handlePairwiseLocked(q.acc, q.dev, qp, fx); !errors.Is(err, ErrParked) {
				e.parkedPW = slices.Delete(e.parkedPW, i, i+1)
				i--
				progress = progress || err == nil
			}
		}
	}
}

// epochByKeyLocked finds a recent epoch by its key (which commits to the
// whole history of epoch changes before it).
func (e *Engine) epochByKeyLocked(key [32]byte) *epochRec {
	eps := e.ro.epochs
	for i := len(eps) - 1; i >= 0 && i >= len(eps)-keepEpochs; i-- {
		if eps[i].key == key {
			return &eps[i]
		}
	}
	return nil
}

// epochByIDLocked finds a recent epoch by the hash of the op that started
// it. Its number may differ from what the sender believed when concurrent
// epoch changes were ordered after it wrote.
func (e *Engine) epochByIDLocked(id [32]byte) *epochRec {
	eps := e.ro.epochs
	for i := len(eps) - 1; i >= 0 && i >= len(eps)-keepEpochs; i-- {
		if eps[i].id == id {
			return &eps[i]
		}
	}
	return nil
}

func (e *Engine) handlePairwiseLocked(acc identity.AccountID, dev identity.DeviceID, p *pairwiseMsg, fx *Effects) error {
	switch p.kind {
	case pwWelcome:
		for _, b := range p.ops {
			if o, err := ParseOp(b); err == nil {
				_ = e.applyLocked(o, fx, true)
			}
		}
		return nil
	case pwOp:
		o, err := ParseOp(p.op)
		if err != nil {
			return err
		}
		wasNew := !e.opSet[o.hash]
		if err := e.applyLocked(o, fx, true); err != nil {
			return err
		}
		// An invitee's answer reaches the group through a member.
		if wasNew && (o.Kind == OpAccept || o.Kind == OpDecline) {
			if k := e.own[e.curID]; k != nil && e.inLocked() {
				if w, err := e.sealLocked(k, kindOpMsg, o.enc); err == nil {
					fx.Publish = append(fx.Publish, w)
				}
			}
		}
		return nil
	case pwSecret:
		ep := e.epochByIDLocked(p.epochID)
		if ep == nil {
			if p.epoch+keepEpochs < uint64(len(e.ro.epochs)) {
				return ErrEpoch
			}
			return ErrParked
		}
		if acc != ep.authorAcc || dev != ep.authorDev {
			return ErrWrongSender
		}
		if ep.members == nil || !ep.members[e.self] || !ep.devs[e.cfg.Device] {
			return ErrNotMember
		}
		if c := e.contribs[ep.id]; c == nil || c.dev != dev {
			e.contribs[ep.id] = &contribution{dev: dev, c: p.secret, sent: map[identity.DeviceID]bool{}}
		}
		e.reconcileLocked(fx)
		return nil
	case pwKey:
		if p.dist.Device != dev {
			return ErrWrongSender
		}
		if p.dist.Epoch != p.epoch || p.dist.GroupID != e.ro.id {
			return ErrEpoch
		}
		e.expireLocked()
		cur := e.ro.epoch()
		if p.epoch < e.minEpoch {
			return ErrEpoch
		}
		if p.epoch > cur.n {
			return ErrParked // its epoch change has not arrived yet
		}
		if !e.ro.isMemberDevice(acc, dev) {
			return ErrParked // perhaps its Accept has not arrived yet
		}
		if err := e.recv.Add(p.dist); err != nil {
			return fmt.Errorf("%w: %v", ErrBadOp, err)
		}
		e.noteChainLocked(chainRef{dev, p.dist.Epoch, p.dist.ChainID}, p.gen)
		// Iterations before the distribution can never be read here:
		// anti-entropy must not ask for them.
		e.markBelowLocked(chainRef{dev, p.dist.Epoch, p.dist.ChainID}, p.dist.Iteration)
		// The secret is taken only if the sender's history of epoch
		// changes is ours. A key made before its sender saw a concurrent
		// epoch change still installs its chain: the sender is a current
		// member, and its messages sent meanwhile stay readable.
		ep := e.epochByKeyLocked(p.epochID)
		if ep != nil && ep.n == p.epoch && ep.members != nil && ep.members[acc] {
			if _, ok := e.secrets[ep.key]; !ok {
				e.secrets[ep.key] = p.secret
			}
		}
		e.reconcileLocked(fx)
		return nil
	}
	return ErrMalformed
}
