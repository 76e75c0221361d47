package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/internal/wire"
)

// linkCall sends one link request on a fresh /hush/link/1 stream and
// reads its answer (see decodeLinkAnswer). A relay with no link store
// fails to open the stream (protocols not supported).
func (c *Client) linkCall(ctx context.Context, h host.Host, relay peer.AddrInfo, q *linkReq) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	if len(relay.Addrs) > 0 {
		if err := h.Connect(cctx, relay); err != nil {
			return nil, fmt.Errorf("relay: connect: %w", err)
		}
	}
	st, err := h.NewStream(cctx, relay.ID, LinkProtocolID)
	if err != nil {
		return nil, fmt.Errorf("relay: open link stream: %w", err)
	}
	defer context.AfterFunc(cctx, func() { st.Reset() })()
	defer st.Close()
	st.SetDeadline(time.Now().Add(c.timeout()))
	if err := wire.WriteFrame(st, q.encode()); err != nil {
		st.Reset()
		return nil, fmt.Errorf("relay: link request: %w", err)
	}
	b, err := wire.ReadFrame(st, linkMaxAnswer)
	if err != nil {
		st.Reset()
		return nil, fmt.Errorf("relay: link answer: %w", err)
	}
	return decodeLinkAnswer(b, q.kind == linkKindGet)
}

// PutLink puts record under id on a relay's link store
// (docs/protocol/addresses.md §20.3), signed by owner: the first put of
// an id binds owner's public key, and every later put or delete must be
// signed by it with a higher version (the node uses Unix milliseconds).
// A put also renews the record's TTL on the relay (link_ttl, 90 days by
// default). Errors: ErrLinkTooLarge (over MaxLinkRecord; not sent),
// ErrLinkDenied (another owner, or a version not above the stored one:
// a put whose answer was lost is retried with a new version),
// ErrLinkOverQuota, ErrLinkBusy (retry later), ErrLinkBad.
func (c *Client) PutLink(ctx context.Context, h host.Host, relay peer.AddrInfo, owner ed25519.PrivateKey, id LinkID, version uint64, record []byte) error {
	if len(record) > MaxLinkRecord {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrLinkTooLarge, len(record), MaxLinkRecord)
	}
	if len(owner) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: owner key of %d bytes", ErrLinkBad, len(owner))
	}
	q := &linkReq{kind: linkKindPut, id: id, version: version, record: record}
	copy(q.owner[:], owner.Public().(ed25519.PublicKey))
	copy(q.sig[:], ed25519.Sign(owner, linkPutMessage(id, version, record)))
	_, err := c.linkCall(ctx, h, relay, q)
	return err
}

// GetLink reads the record under id from a relay's link store: anyone
// with the id may. ErrLinkUnknown if the relay has none (never put,
// deleted or expired); ErrLinkBusy when rate limited.
func (c *Client) GetLink(ctx context.Context, h host.Host, relay peer.AddrInfo, id LinkID) ([]byte, error) {
	return c.linkCall(ctx, h, relay, &linkReq{kind: linkKindGet, id: id})
}

// DeleteLink deletes the record under id from a relay's link store,
// signed by its owner with a version above the stored one.
// ErrLinkUnknown if there is none; ErrLinkDenied for another key or a
// version not above the stored one.
func (c *Client) DeleteLink(ctx context.Context, h host.Host, relay peer.AddrInfo, owner ed25519.PrivateKey, id LinkID, version uint64) error {
	if len(owner) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: owner key of %d bytes", ErrLinkBad, len(owner))
	}
	q := &linkReq{kind: linkKindDelete, id: id, version: version}
	copy(q.sig[:], ed25519.Sign(owner, linkDeleteMessage(id, version)))
	_, err := c.linkCall(ctx, h, relay, q)
	return err
}
