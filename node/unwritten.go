package node

import (
	"crypto/sha256"
	"slices"
)

// A received message whose write failed is answered "try again", and
// its sender sends the same bytes again. Its session set in memory has
// already used the message's key, so a failed commit puts the set back
// from the store (saveSessionLocked) — unless something used the set
// after the failed batch was built (a message sealed under it while the
// write ran): reading back an older state could then reuse a key. In
// that case the copy that comes again cannot be decrypted: the ratchet
// calls it a duplicate. unwritten keeps, in memory, what the session
// layer read in a batch whose commit failed, by the digest of the bytes
// read, so that the copy is taken as read then (messaging.md "A failed
// write loses nothing"). The plaintext was authenticated when it was
// read; only the same bytes find it; it is used once, and kept again if
// that write fails too. Memory only: after a restart the store's session
// state, which never took the message, decrypts the copy itself.

// maxUnwritten bounds the messages kept (the oldest go first): a failed
// write is answered at once, and the sender sends the copy within its
// back-off, so only a disk that keeps failing fills it.
const maxUnwritten = 256

// readMsg is a message the session layer read in a txn: the digest of
// its bytes (messageDigest) and its plaintext.
type readMsg struct {
	digest [sha256.Size]byte
	pt     []byte
}

// unwritten holds the messages read in failed batches. Its methods are
// called with the node's lock held.
type unwritten struct {
	pt    map[[sha256.Size]byte][]byte
	order [][sha256.Size]byte
}

// keep remembers the messages of a batch whose commit failed.
func (u *unwritten) keep(msgs []readMsg) {
	for _, m := range msgs {
		if u.pt == nil {
			u.pt = make(map[[sha256.Size]byte][]byte)
		}
		if _, ok := u.pt[m.digest]; !ok {
			u.order = append(u.order, m.digest)
		}
		u.pt[m.digest] = m.pt
	}
	for len(u.order) > maxUnwritten {
		delete(u.pt, u.order[0])
		u.order = u.order[1:]
	}
}

// take returns, and forgets, the plaintext of the message with digest d
// if it was read in a failed batch. The receiver calls it for every
// message it reads: a copy read again normally (its set was put back)
// drops it too.
func (u *unwritten) take(d [sha256.Size]byte) ([]byte, bool) {
	pt, ok := u.pt[d]
	if ok {
		delete(u.pt, d)
		u.order = slices.DeleteFunc(u.order, func(o [sha256.Size]byte) bool { return o == d })
	}
	return pt, ok
}
