package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hushnet/hush/crypto/stream"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// The relay's blob limits, checked before a file is sealed
// (docs/protocol/files.md §19.2 step 1): with a relay configured every
// sent file is uploaded to it, so a file whose blob the relay would
// refuse is refused here, with the relay's limit in the error, before
// anything is read, sealed, stored or sent.

// ErrRelayLimit: the file's blob is over a limit the relay advertises
// (its per-blob size, what is left of the quota, its free space).
var ErrRelayLimit = errors.New("over the relay's limit")

// relayLimitsTimeout bounds the limits query: an unreachable relay
// delays a send by at most this.
const relayLimitsTimeout = 10 * time.Second

// blobLimitCache keeps the limits each relay last advertised, so that a
// relay out of reach at a send is still held to the per-blob size it
// had.
type blobLimitCache struct {
	mu   sync.Mutex
	last map[string]relay.BlobLimits // by the relay's address
}

func (c *blobLimitCache) put(addr string, l relay.BlobLimits) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = make(map[string]relay.BlobLimits)
	}
	c.last[addr] = l
}

func (c *blobLimitCache) get(addr string) (relay.BlobLimits, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.last[addr]
	return l, ok
}

// checkRelayLimits refuses a file of size bytes whose blob the relay
// files go through (fileRelay) would not take: over its max_blob, over
// what is left of its quota (quota_left: the uploading network's, since
// every upload comes from a new identity), or over its free space. It
// asks the relay (from a throw-away identity, as an upload does). A
// relay that does not answer (out of reach, or a version without a blob
// store) is held to the max_blob it last advertised, if it did; else the
// file goes, and its upload says what the relay makes of it.
func (n *Node) checkRelayLimits(ctx context.Context, size int64) error {
	addr := n.fileRelay()
	if addr == "" {
		return nil
	}
	blob := attach.BlobSize(stream.EncryptedSize(size))
	l, err := n.askBlobLimits(ctx, addr)
	if err != nil {
		last, known := n.blobLimits.get(addr)
		n.log.Info("the relay's blob limits are unknown; the file is sent and its upload tried", "err", err, "known_before", known)
		if known && uint64(blob) > last.MaxBlob {
			return tooLargeForRelay(blob, size, last.MaxBlob)
		}
		return nil
	}
	n.blobLimits.put(addr, l)
	charge := uint64(max(blob, relay.MinBlobCharge))
	switch {
	case uint64(blob) > l.MaxBlob:
		return tooLargeForRelay(blob, size, l.MaxBlob)
	case charge > l.QuotaLeft:
		return &relayLimitError{msg: fmt.Sprintf("over the relay's quota for now: the file's encrypted blob is %s and the relay takes %s more from this network (older uploads free it when they expire or are fetched)",
			byteSize(blob), byteSize(int64(l.QuotaLeft)))}
	case charge > l.Free:
		return &relayLimitError{msg: fmt.Sprintf("the relay is full: the file's encrypted blob is %s and the relay has %s free", byteSize(blob), byteSize(int64(l.Free)))}
	}
	return nil
}

func tooLargeForRelay(blob, size int64, maxBlob uint64) error {
	return &relayLimitError{tooLarge: true, msg: fmt.Sprintf("the file is too large for the relay: it is %s, its encrypted blob %s, and the relay takes blobs of at most %s (its max_blob)",
		byteSize(size), byteSize(blob), byteSize(int64(maxBlob)))}
}

// relayLimitError is a file refused for a relay's limit: ErrRelayLimit,
// and ErrFileTooLarge too when it is the per-blob size.
type relayLimitError struct {
	msg      string
	tooLarge bool
}

func (e *relayLimitError) Error() string { return e.msg }

func (e *relayLimitError) Is(target error) bool {
	return target == ErrRelayLimit || (e.tooLarge && target == ErrFileTooLarge)
}

// askBlobLimits asks the relay at addr for its blob limits.
func (n *Node) askBlobLimits(ctx context.Context, addr string) (relay.BlobLimits, error) {
	ri, err := relay.ParseRelayAddr(addr)
	if err != nil {
		return relay.BlobLimits{}, err
	}
	h, err := newAnonHost()
	if err != nil {
		return relay.BlobLimits{}, err
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ri.ID, ri.Addrs, time.Hour)
	ctx, cancel := context.WithTimeout(ctx, relayLimitsTimeout)
	defer cancel()
	return n.relays.BlobLimits(ctx, h, ri)
}

// byteSize is n bytes for a sentence: "512 B", "1.5 KiB", "16.0 MiB"
// (and the exact count past a KiB).
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
