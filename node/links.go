package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/node/shortlink"
	"github.com/hushnet/hush/relay"
)

// Short links (docs/protocol/addresses.md §20.1–20.4): this account's
// reusable address and one-time invitations, each a record on the first
// relay, sealed under a key only the link holds; the links table keeps
// them (their secrets sealed at rest like every record), and the links
// loop puts each live one again when the card changes and every
// linkRefresh, so a link never expires while it is kept.

// Link timing.
const (
	linkRefresh   = 7 * 24 * time.Hour // a live record is put again at least this often
	linkCheck     = time.Hour          // how often the links loop looks
	linkRelayTime = 30 * time.Second   // one relay call
)

// Link errors.
var (
	ErrNoRelay       = errors.New("short links need a relay (hush daemon --relay …); the long link (hush id) works without")
	ErrAddressExists = errors.New("this account has an address already (hush address show; --rotate makes a new one)")
	ErrNoAddress     = errors.New("this account has no address (hush address create)")
	ErrUnknownInvite = errors.New("no such invitation")
	ErrLinkGone      = errors.New("this invitation was used or deleted, or this address was deleted by its owner: ask for a new link")
	ErrLinkRelay     = errors.New("the relay in the link cannot be reached")
	ErrLinkStale     = errors.New("the card this link points to is out of date (its owner's device has not refreshed it for weeks, or this device's clock is wrong): ask for a new link")
)

// linkRec is a links-table record, keyed by the record ID.
type linkRec struct {
	Kind      shortlink.Kind `json:"k"`
	Link      string         `json:"l"` // the short link's text (it holds the secret)
	Relay     string         `json:"r"` // the relay's multiaddr, /p2p included
	Owner     []byte         `json:"o"` // Ed25519 seed of the record's owner key
	Token     []byte         `json:"t,omitempty"`
	Label     string         `json:"n,omitempty"`
	Created   time.Time      `json:"c"`
	Used      bool           `json:"u,omitempty"`
	Gone      bool           `json:"g,omitempty"` // deleted here; the relay's record still to delete
	Version   uint64         `json:"v,omitempty"` // the last version the relay took (unix ms)
	CardHash  []byte         `json:"h,omitempty"` // SHA-256 of the card last put
	Published time.Time      `json:"p,omitempty"`
}

func (r *linkRec) view(id []byte) ShortLink {
	kind := "address"
	if r.Kind == shortlink.KindInvitation {
		kind = "invitation"
	}
	return ShortLink{ID: fmt.Sprintf("%x", id), Kind: kind, Link: r.Link, Label: r.Label, Created: r.Created, Used: r.Used}
}

// relayOfLink is the relay a short link names, as a peer to dial.
func relayOfLink(l *shortlink.Link) (peer.AddrInfo, error) {
	pub, err := crypto.UnmarshalEd25519PublicKey(l.RelayKey[:])
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: relay key: %v", shortlink.ErrMalformed, err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w: relay key: %v", shortlink.ErrMalformed, err)
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{l.RelayAddr}}, nil
}

// newLinkLocked makes a link record of kind on the first relay.
func (n *Node) newLinkLocked(kind shortlink.Kind, label string, now time.Time) ([]byte, *linkRec, error) {
	if len(n.cfg.Relays) == 0 {
		return nil, nil, ErrNoRelay
	}
	ri, err := relay.ParseRelayAddr(n.cfg.Relays[0])
	if err != nil || len(ri.Addrs) == 0 {
		return nil, nil, fmt.Errorf("the relay's address: %v", err)
	}
	pub, err := ri.ID.ExtractPublicKey()
	if err != nil || pub.Type() != crypto.Ed25519 {
		return nil, nil, errors.New("the relay's peer ID holds no Ed25519 key: a short link cannot name it")
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != shortlink.RelayKeySize {
		return nil, nil, errors.New("the relay's peer ID holds no Ed25519 key: a short link cannot name it")
	}
	l, err := shortlink.New(ri.Addrs[0], [shortlink.RelayKeySize]byte(raw))
	if err != nil {
		return nil, nil, err
	}
	text, err := l.String()
	if err != nil {
		return nil, nil, err
	}
	_, owner, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	rec := &linkRec{Kind: kind, Link: text, Relay: n.cfg.Relays[0], Owner: owner.Seed(), Label: label, Created: now.UTC()}
	if kind == shortlink.KindInvitation {
		rec.Token = make([]byte, shortlink.TokenSize)
		rand.Read(rec.Token)
	}
	id := l.ID()
	return id[:], rec, nil
}

// publishLink puts rec's record (this device's current card) on its
// relay, from a throw-away identity, and stores the version it took.
func (n *Node) publishLink(ctx context.Context, id []byte, rec *linkRec) error {
	l, err := shortlink.Parse(rec.Link)
	if err != nil {
		return err
	}
	n.mu.Lock()
	own, err := n.ownCardLocked(n.now())
	n.mu.Unlock()
	if err != nil {
		return err
	}
	cardBytes := own.Marshal()
	r := &shortlink.Record{Kind: rec.Kind, Card: cardBytes, Label: rec.Label}
	copy(r.Token[:], rec.Token)
	sealed, err := l.Seal(r)
	if err != nil {
		return err
	}
	ri, err := relay.ParseRelayAddr(rec.Relay)
	if err != nil {
		return err
	}
	version := max(uint64(n.now().UnixMilli()), rec.Version+1)
	err = n.withAnonHost(ctx, ri, func(ctx context.Context, h host.Host) error {
		return n.relays.PutLink(ctx, h, ri, ed25519.NewKeyFromSeed(rec.Owner), relay.LinkID(id), version, sealed)
	})
	if err != nil {
		return fmt.Errorf("the relay %s: %w", ri.ID.ShortString(), err)
	}
	sum := sha256.Sum256(cardBytes)
	n.mu.Lock()
	defer n.mu.Unlock()
	var cur linkRec
	if err := n.getJSON(n.tabs.links, id, &cur); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	rec.Version, rec.CardHash, rec.Published = version, sum[:], n.now().UTC()
	if cur.Gone {
		rec.Gone = true // deleted while the put ran: the loop deletes it
	}
	b := n.db.Batch()
	putJSON(b, n.tabs.links, id, rec)
	return n.commit(b)
}

// unpublishLink deletes rec's record from its relay and then the
// record here. relay.ErrLinkUnknown counts as deleted.
func (n *Node) unpublishLink(ctx context.Context, id []byte, rec *linkRec) error {
	ri, err := relay.ParseRelayAddr(rec.Relay)
	if err == nil && rec.Owner != nil { // nil: the record was deleted already
		version := max(uint64(n.now().UnixMilli()), rec.Version+1)
		err = n.withAnonHost(ctx, ri, func(ctx context.Context, h host.Host) error {
			return n.relays.DeleteLink(ctx, h, ri, ed25519.NewKeyFromSeed(rec.Owner), relay.LinkID(id), version)
		})
		if errors.Is(err, relay.ErrLinkUnknown) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("the relay: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.db.Batch()
	if rec.Kind == shortlink.KindInvitation {
		// Used or deleted, an invitation is kept to recognise its token
		// (a late first message carrying it is refused); nothing is left
		// to delete.
		rec.Gone = true
		rec.Owner = nil
		putJSON(b, n.tabs.links, id, rec)
	} else {
		b.Delete(n.tabs.links, id)
	}
	return n.commit(b)
}

// links lists the links table.
func (n *Node) linksLocked() (ids [][]byte, recs []*linkRec) {
	n.tabs.links.Scan(func(k, v []byte) error {
		var r linkRec
		if jsonUnmarshal(v, &r) == nil {
			ids, recs = append(ids, slices.Clone(k)), append(recs, &r)
		}
		return nil
	})
	return ids, recs
}

// CreateAddress makes this account's reusable address and publishes it;
// rotate replaces an existing one (its record is deleted: new requests
// through the old link stop, contacts stay).
func (n *Node) CreateAddress(ctx context.Context, rotate bool, txnID string) (ShortLink, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ShortLink{}, ErrClosed
	}
	if l, ok := n.linkOfTxnLocked(txnAddress, txnID); ok {
		n.mu.Unlock()
		return l, nil
	}
	if n.host == nil {
		n.mu.Unlock()
		return ShortLink{}, ErrNotRunning
	}
	var old [][]byte
	var oldRecs []*linkRec
	ids, recs := n.linksLocked()
	for i, r := range recs {
		if r.Kind == shortlink.KindAddress && !r.Gone {
			old, oldRecs = append(old, ids[i]), append(oldRecs, r)
		}
	}
	if len(old) > 0 && !rotate {
		n.mu.Unlock()
		return ShortLink{}, ErrAddressExists
	}
	id, rec, err := n.newLinkLocked(shortlink.KindAddress, "", n.now())
	n.mu.Unlock()
	if err != nil {
		return ShortLink{}, err
	}
	if err := n.publishLink(ctx, id, rec); err != nil {
		return ShortLink{}, err
	}
	n.rememberLinkTxn(txnAddress, txnID, id)
	for i := range old {
		if err := n.retireLink(ctx, old[i], oldRecs[i]); err != nil {
			n.log.Info("the old address's record is not deleted yet; it goes later", "err", err)
		}
	}
	return rec.view(id), nil
}

// retireLink marks a link gone here at once (it stops working for this
// node) and deletes its relay record; when the relay cannot be reached
// the links loop tries again.
func (n *Node) retireLink(ctx context.Context, id []byte, rec *linkRec) error {
	n.mu.Lock()
	rec.Gone = true
	b := n.db.Batch()
	putJSON(b, n.tabs.links, id, rec)
	err := n.commit(b)
	n.mu.Unlock()
	if err != nil {
		return err
	}
	return n.unpublishLink(ctx, id, rec)
}

// Address returns this account's address.
func (n *Node) Address() (ShortLink, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids, recs := n.linksLocked()
	for i, r := range recs {
		if r.Kind == shortlink.KindAddress && !r.Gone {
			return r.view(ids[i]), nil
		}
	}
	return ShortLink{}, ErrNoAddress
}

// DeleteAddress deletes this account's address: new requests through it
// stop; contacts that came through it stay.
func (n *Node) DeleteAddress(ctx context.Context) error {
	n.mu.Lock()
	ids, recs := n.linksLocked()
	n.mu.Unlock()
	for i, r := range recs {
		if r.Kind == shortlink.KindAddress && !r.Gone {
			if err := n.retireLink(ctx, ids[i], r); err != nil {
				return fmt.Errorf("the address is deleted here; its record on the relay goes later: %w", err)
			}
			return nil
		}
	}
	return ErrNoAddress
}

// CreateInvite makes a one-time invitation and publishes it; label is
// the name the contact who uses it gets here (else its own).
func (n *Node) CreateInvite(ctx context.Context, label, txnID string) (ShortLink, error) {
	if label != "" {
		var err error
		if label, err = checkName(label); err != nil {
			return ShortLink{}, err
		}
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ShortLink{}, ErrClosed
	}
	if l, ok := n.linkOfTxnLocked(txnInvite, txnID); ok {
		n.mu.Unlock()
		return l, nil
	}
	if n.host == nil {
		n.mu.Unlock()
		return ShortLink{}, ErrNotRunning
	}
	id, rec, err := n.newLinkLocked(shortlink.KindInvitation, label, n.now())
	n.mu.Unlock()
	if err != nil {
		return ShortLink{}, err
	}
	if err := n.publishLink(ctx, id, rec); err != nil {
		return ShortLink{}, err
	}
	n.rememberLinkTxn(txnInvite, txnID, id)
	return rec.view(id), nil
}

// Invites lists this account's invitations not deleted, oldest first.
func (n *Node) Invites() ([]ShortLink, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []ShortLink{}
	ids, recs := n.linksLocked()
	for i, r := range recs {
		if r.Kind == shortlink.KindInvitation && (!r.Gone || r.Used) {
			out = append(out, r.view(ids[i]))
		}
	}
	slices.SortFunc(out, func(a, b ShortLink) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// DeleteInvite deletes an invitation (by its ID or a unique prefix of 8
// or more hex digits).
func (n *Node) DeleteInvite(ctx context.Context, ref string) error {
	ref = strings.ToLower(strings.TrimSpace(ref))
	n.mu.Lock()
	ids, recs := n.linksLocked()
	n.mu.Unlock()
	found := -1
	for i, r := range recs {
		if r.Kind == shortlink.KindInvitation && len(ref) >= 8 && strings.HasPrefix(fmt.Sprintf("%x", ids[i]), ref) {
			if found >= 0 {
				return fmt.Errorf("%w: %q names more than one", ErrUnknownInvite, ref)
			}
			found = i
		}
	}
	if found < 0 {
		return fmt.Errorf("%w: %q", ErrUnknownInvite, ref)
	}
	r := recs[found]
	r.Used = false // deleted by its owner: its token no longer names it
	return n.retireLink(ctx, ids[found], r)
}

// inviteOfTokenLocked finds the invitation whose token is tok. One used
// by a transaction not yet committed (this one, or another whose
// commit released the lock) shows as used.
func (n *Node) inviteOfTokenLocked(tok [shortlink.TokenSize]byte) ([]byte, *linkRec) {
	ids, recs := n.linksLocked()
	for i, r := range recs {
		if r.Kind == shortlink.KindInvitation && string(r.Token) == string(tok[:]) {
			if n.invitesUsed[tok] {
				r.Used, r.Gone = true, true
			}
			return ids[i], r
		}
	}
	return nil, nil
}

// useInviteLocked marks an invitation used, in t and at once in memory
// (a second first message carrying its token, in this batch or the
// next, is refused), and deletes its relay record once t is committed
// (the links loop retries).
func (n *Node) useInviteLocked(t *txn, id []byte, rec *linkRec) {
	rec.Used, rec.Gone = true, true
	putJSON(t.b, n.tabs.links, id, rec)
	t.linksChanged = true
	if len(rec.Token) != shortlink.TokenSize {
		return
	}
	tok := [shortlink.TokenSize]byte(rec.Token)
	if n.invitesUsed == nil {
		n.invitesUsed = map[[shortlink.TokenSize]byte]bool{}
	}
	n.invitesUsed[tok] = true
	t.undo(func() { delete(n.invitesUsed, tok) })
}

// withAnonHost calls f with a throw-away host that knows ri, within
// linkRelayTime.
func (n *Node) withAnonHost(ctx context.Context, ri peer.AddrInfo, f func(context.Context, host.Host) error) error {
	h, err := newAnonHost()
	if err != nil {
		return err
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ri.ID, ri.Addrs, time.Hour)
	ctx, cancel := context.WithTimeout(ctx, linkRelayTime)
	defer cancel()
	return f(ctx, h)
}

// kickLinks wakes the links loop.
func (n *Node) kickLinks() {
	select {
	case n.linksKick <- struct{}{}:
	default:
	}
}

// linksLoop keeps the relay records of live links current: put again
// when the card changed or every linkRefresh, deleted when gone here.
// A failure waits for the next look.
func (n *Node) linksLoop(ctx context.Context) {
	tick := time.NewTicker(linkCheck)
	defer tick.Stop()
	for {
		at := n.now()
		n.mu.Lock()
		ids, recs := n.linksLocked()
		var sum []byte
		if own, err := n.ownCardLocked(at); err == nil {
			h := sha256.Sum256(own.Marshal())
			sum = h[:]
		}
		n.mu.Unlock()
		for i, r := range recs {
			var err error
			switch {
			case r.Gone && r.Owner != nil:
				err = n.unpublishLink(ctx, ids[i], r)
			case !r.Gone && (at.Sub(r.Published) > linkRefresh || (sum != nil && string(sum) != string(r.CardHash))):
				err = n.publishLink(ctx, ids[i], r)
			}
			if err != nil && ctx.Err() == nil {
				n.log.Info("a short link's relay record is not current yet", "err", err)
			}
		}
		if tap := taps.Load(); tap != nil && tap.links != nil {
			tap.links(n, at)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.linksKick:
		}
	}
}

// resolveShortLink fetches what a short link points to: the owner's card
// (verified), and the invitation token if it is one.
func (n *Node) resolveShortLink(ctx context.Context, text string) (*card.Card, [shortlink.TokenSize]byte, error) {
	var tok [shortlink.TokenSize]byte
	l, err := shortlink.Parse(text)
	if err != nil {
		return nil, tok, fmt.Errorf("invalid contact link: %w", err)
	}
	ri, err := relayOfLink(l)
	if err != nil {
		return nil, tok, fmt.Errorf("invalid contact link: %w", err)
	}
	var sealed []byte
	err = n.withAnonHost(ctx, ri, func(ctx context.Context, h host.Host) error {
		var err error
		sealed, err = n.relays.GetLink(ctx, h, ri, relay.LinkID(l.ID()))
		return err
	})
	switch {
	case errors.Is(err, relay.ErrLinkUnknown):
		return nil, tok, ErrLinkGone
	case err != nil:
		return nil, tok, fmt.Errorf("%w (%s): %v", ErrLinkRelay, l.RelayAddr, err)
	}
	rec, err := l.Open(sealed)
	if err != nil {
		return nil, tok, err
	}
	c, err := card.Parse(rec.Card, n.now())
	if err != nil {
		if _, serr := card.ParseStored(rec.Card); serr == nil {
			return nil, tok, ErrLinkStale // signed, but its prekeys are out of date here
		}
		return nil, tok, fmt.Errorf("%w: its card: %v", shortlink.ErrRecord, err)
	}
	if rec.Kind == shortlink.KindInvitation {
		tok = rec.Token
	}
	return c, tok, nil
}

// Transaction IDs of link creation (txnids.go). The mapping is written
// once the record is published, in a commit of its own: a crash between
// the two leaves a link that a retry does not find, and the retry makes
// another (the first is listed, and can be deleted).
const (
	txnAddress txnKind = "address"
	txnInvite  txnKind = "invite"
)

// linkOfTxnLocked returns the link an earlier call with txnID made, if
// it is still here.
func (n *Node) linkOfTxnLocked(kind txnKind, txnID string) (ShortLink, bool) {
	idHex, ok := n.txnResultLocked(kind, txnID)
	if !ok {
		return ShortLink{}, false
	}
	id, err := hex.DecodeString(idHex)
	if err != nil {
		return ShortLink{}, false
	}
	var rec linkRec
	if n.getJSON(n.tabs.links, id, &rec) != nil {
		return ShortLink{}, false
	}
	return rec.view(id), true
}

// rememberLinkTxn maps txnID to the link id.
func (n *Node) rememberLinkTxn(kind txnKind, txnID string, id []byte) {
	if txnID == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.newTxnLocked()
	n.putTxnLocked(t, kind, txnID, hex.EncodeToString(id))
	n.commitForJobReleasingLock(t, "link txn")
}
