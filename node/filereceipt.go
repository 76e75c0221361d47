package node

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// Receipts a download owes to relays (docs/protocol/files.md §19.5).
// After a download this device presents its receipt token to every
// relay source of the pointer, so that relay deletes the blob once every
// recipient has it. The relay may not have the whole blob yet (the file
// came straight from the sender while its upload ran), or may be out of
// reach: the addresses still owed are kept in the file's record (Owed)
// and tried again, with backoff, until the relay takes the token or
// refuses it, or the relay's TTL would have deleted the blob anyway.

// Receipt retry timing.
const (
	receiptRetryFirst = 2 * time.Second
	receiptRetryMax   = time.Hour
	receiptOwedFor    = relay.DefaultBlobTTL
)

// receipting is the set of receipt loops running, by blob hash. Node.mu
// guards it.
type receipting map[[attach.HashSize]byte]bool

// relayAddrs lists a pointer's relay sources.
func relayAddrs(p *attach.Pointer) []string {
	var out []string
	for _, s := range p.Sources {
		if s.Kind == attach.SourceRelay {
			out = append(out, s.Addr)
		}
	}
	return out
}

// startReceiptsLocked runs the loop that presents a downloaded file's
// owed receipts (at once, or at the next start).
func (n *Node) startReceiptsLocked(hash [attach.HashSize]byte) {
	if n.receipting == nil {
		n.receipting = make(receipting)
	}
	if n.receipting[hash] || n.host == nil {
		return
	}
	n.receipting[hash] = true
	if !n.loops.Go(func(ctx context.Context) {
		defer func() {
			n.mu.Lock()
			delete(n.receipting, hash)
			n.mu.Unlock()
		}()
		wait := receiptRetryFirst
		for !n.presentReceipts(ctx, hash) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, receiptRetryMax)
		}
	}) {
		delete(n.receipting, hash)
	}
}

// presentReceipts tries every relay still owed a receipt for hash and
// records which remain; it reports whether none does.
func (n *Node) presentReceipts(ctx context.Context, hash [attach.HashSize]byte) bool {
	n.mu.Lock()
	var rec fileRec
	err := n.getJSON(n.tabs.files, hash[:], &rec)
	n.mu.Unlock()
	if err != nil || len(rec.Owed) == 0 {
		return true
	}
	p, err := attach.ParsePointer(rec.Pointer)
	if err != nil {
		return true
	}
	var left []string
	if time.Now().Unix() < rec.OwedUntil {
		for _, src := range p.Sources {
			if src.Kind == attach.SourceRelay && slices.Contains(rec.Owed, src.Addr) && !n.presentReceipt(ctx, hash, src) {
				left = append(left, src.Addr)
			}
		}
	}
	if ctx.Err() != nil {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.getJSON(n.tabs.files, hash[:], &rec) != nil {
		return true
	}
	if len(left) == len(rec.Owed) {
		return false
	}
	rec.Owed = left
	b := n.db.Batch()
	putJSON(b, n.tabs.files, hash[:], &rec)
	if err := n.commit(b); err != nil {
		n.logStoreError("store commit failed", err, "job", "file receipts")
	}
	return len(left) == 0
}

// presentReceipt presents this device's token to one relay; it reports
// whether that relay is done with it (taken, or a token it refuses).
func (n *Node) presentReceipt(ctx context.Context, hash [attach.HashSize]byte, src attach.Source) bool {
	ri, err := relay.ParseRelayAddr(src.Addr)
	if err != nil {
		return true
	}
	h, err := newAnonHost()
	if err != nil {
		return false
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ri.ID, ri.Addrs, time.Hour)
	dev := n.cert.DeviceID()
	_, err = n.relays.BlobDone(ctx, h, ri, relay.BlobHash(hash), relay.BlobToken(src.TokenSeed, dev[:]))
	switch {
	case err == nil, errors.Is(err, relay.ErrBlobBadToken):
		return true
	default: // not uploaded yet (unknown or incomplete), or out of reach
		n.log.Debug("relay receipt for a file not taken yet", "err", err)
		return false
	}
}
