package relay

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
)

// LinkProtocolID is the relay's link store protocol
// (docs/protocol/addresses.md §20.3).
const LinkProtocolID = "/hush/link/1"

// Link protocol sizes.
const (
	// LinkIDSize is the size of a link record's ID (HKDF of the link's
	// secret, §20.1).
	LinkIDSize = 16
	// MaxLinkRecord caps one link record: 64 KiB + 64 (a card of up to
	// 64 KiB, sealed, with its nonce and the plaintext's few fields).
	MaxLinkRecord = 64<<10 + 64
	// linkMaxFrame caps a request frame: a put of a record of up to
	// twice MaxLinkRecord, so that a record a little over the limit is
	// answered LinkTooLarge (not LinkBad) with the stream kept well
	// formed; anything longer is LinkBad.
	linkMaxFrame = 1 + LinkIDSize + ed25519.PublicKeySize + 8 + 4 + 2*MaxLinkRecord + ed25519.SignatureSize
	// linkMaxAnswer caps an answer frame: a get's record.
	linkMaxAnswer = 1 + 4 + MaxLinkRecord
)

// Link request kinds: the first byte of a request frame.
const (
	linkKindPut    Kind = 1
	linkKindGet    Kind = 2
	linkKindDelete Kind = 3
)

// Domain separations of the owner's signatures (§20.3).
const (
	linkPutDomain    = "hush link put v1"
	linkDeleteDomain = "hush link delete v1"
)

// LinkID is a link record's name on a relay (§20.1): not the link's
// secret, so the relay can serve the record but not read it.
type LinkID [LinkIDSize]byte

// LinkStatus is the first byte of every link store answer.
type LinkStatus uint8

// Link statuses (§20.3).
const (
	LinkOK        LinkStatus = 0 // done (a get: the record follows)
	LinkUnknown   LinkStatus = 1 // no such id: never put, deleted or expired
	LinkDenied    LinkStatus = 2 // a signature that does not verify, an owner not the first put's, or a version not above the stored one
	LinkTooLarge  LinkStatus = 3 // record over MaxLinkRecord
	LinkOverQuota LinkStatus = 4 // the peer's, its network's or the store's record count
	LinkBusy      LinkStatus = 5 // rate limited: retry later
	LinkBad       LinkStatus = 6 // malformed; the relay closes the stream
)

// Sentinel errors of the link statuses.
var (
	ErrLinkUnknown   = errors.New("relay: no such link record (never put, deleted or expired)")
	ErrLinkDenied    = errors.New("relay: link record change denied: bad signature, another owner, or a version not above the stored one")
	ErrLinkTooLarge  = errors.New("relay: link record larger than the relay keeps")
	ErrLinkOverQuota = errors.New("relay: link records quota used up: this peer's, its network's or the relay's")
	ErrLinkBusy      = errors.New("relay: link store busy (rate limited), retry later")
	ErrLinkBad       = errors.New("relay: malformed link request or answer")
)

var linkErrors = map[LinkStatus]error{
	LinkUnknown: ErrLinkUnknown, LinkDenied: ErrLinkDenied, LinkTooLarge: ErrLinkTooLarge,
	LinkOverQuota: ErrLinkOverQuota, LinkBusy: ErrLinkBusy, LinkBad: ErrLinkBad,
}

// linkReq is one decoded link request. Which fields are set depends on
// kind.
type linkReq struct {
	kind    Kind
	id      LinkID
	owner   [ed25519.PublicKeySize]byte // put
	version uint64                      // put, delete
	record  []byte                      // put (aliases the frame)
	sig     [ed25519.SignatureSize]byte // put, delete
}

// encode writes the request frame's payload.
func (q *linkReq) encode() []byte {
	w := codec.NewWriter(1 + LinkIDSize + ed25519.PublicKeySize + 8 + 4 + len(q.record) + ed25519.SignatureSize)
	w.U8(uint8(q.kind))
	w.Fixed(q.id[:])
	switch q.kind {
	case linkKindPut:
		w.Fixed(q.owner[:])
		w.U64(q.version)
		w.Bytes32(q.record)
		w.Fixed(q.sig[:])
	case linkKindDelete:
		w.U64(q.version)
		w.Fixed(q.sig[:])
	}
	return w.Bytes()
}

// decodeLinkReq parses a request frame; any error is LinkBad. A put's
// record may be longer than MaxLinkRecord (up to what linkMaxFrame
// holds): the store answers it LinkTooLarge.
func decodeLinkReq(b []byte) (*linkReq, error) {
	r := codec.NewReader(b)
	q := &linkReq{kind: Kind(r.U8())}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if q.kind < linkKindPut || q.kind > linkKindDelete {
		return nil, fmt.Errorf("%w: kind %d", codec.ErrInvalid, q.kind)
	}
	copy(q.id[:], r.Fixed(LinkIDSize))
	switch q.kind {
	case linkKindPut:
		copy(q.owner[:], r.Fixed(ed25519.PublicKeySize))
		q.version = r.U64()
		q.record = r.Bytes32(linkMaxFrame)
		copy(q.sig[:], r.Fixed(ed25519.SignatureSize))
	case linkKindDelete:
		q.version = r.U64()
		copy(q.sig[:], r.Fixed(ed25519.SignatureSize))
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	return q, nil
}

// linkPutMessage is what the owner signs to put record under id:
// "hush link put v1" ‖ id ‖ version u64 ‖ SHA-256(record).
func linkPutMessage(id LinkID, version uint64, record []byte) []byte {
	sum := sha256.Sum256(record)
	w := codec.NewWriter(len(linkPutDomain) + LinkIDSize + 8 + sha256.Size)
	w.Fixed([]byte(linkPutDomain))
	w.Fixed(id[:])
	w.U64(version)
	w.Fixed(sum[:])
	return w.Bytes()
}

// linkDeleteMessage is what the owner signs to delete id:
// "hush link delete v1" ‖ id ‖ version u64.
func linkDeleteMessage(id LinkID, version uint64) []byte {
	w := codec.NewWriter(len(linkDeleteDomain) + LinkIDSize + 8)
	w.Fixed([]byte(linkDeleteDomain))
	w.Fixed(id[:])
	w.U64(version)
	return w.Bytes()
}

// Answers: status u8, then for a get answered LinkOK its record
// bytes32; every other answer is the status byte alone.

func encodeLinkGot(record []byte) []byte {
	w := codec.NewWriter(1 + 4 + len(record))
	w.U8(uint8(LinkOK))
	w.Bytes32(record)
	return w.Bytes()
}

// decodeLinkAnswer reads an answer; withRecord says a LinkOK answer
// carries a record (a get's).
func decodeLinkAnswer(b []byte, withRecord bool) ([]byte, error) {
	r := codec.NewReader(b)
	st := LinkStatus(r.U8())
	var record []byte
	if r.Err() == nil && st == LinkOK && withRecord {
		record = r.Bytes32(MaxLinkRecord)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: answer: %v", ErrLinkBad, err)
	}
	if st != LinkOK {
		if err := linkErrors[st]; err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: answer status %d", ErrLinkBad, st)
	}
	return record, nil
}
