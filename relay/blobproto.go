package relay

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
)

// BlobProtocolID is the relay's blob store protocol
// (docs/protocol/files.md §19.5).
const BlobProtocolID = "/hush/blob/1"

// Blob protocol sizes.
const (
	// BlobHashSize is the size of a blob's ID, SHA-256 of its bytes.
	BlobHashSize = sha256.Size
	// BlobChunk caps the data of one write or read: 1 MiB.
	BlobChunk = 1 << 20
	// MaxBlobReceipts caps the receipt hashes registered with one put.
	MaxBlobReceipts = 1000
	// MinBlobCharge is the least a blob counts against the quotas, so
	// tiny blobs cannot hold many records for no bytes: 64 KiB, the
	// smallest bucket of files.md §19.5.
	MinBlobCharge = 64 << 10
	// blobMaxFrame caps a request frame: a write of BlobChunk bytes
	// (kind ‖ hash ‖ offset ‖ u32 length ‖ data), which is also larger
	// than a put with MaxBlobReceipts receipts.
	blobMaxFrame = 1 + BlobHashSize + 8 + 4 + BlobChunk
	// blobMaxAnswer caps an answer frame: a read of BlobChunk bytes.
	blobMaxAnswer = 1 + 4 + BlobChunk
)

// Blob request kinds: the first byte of a request frame.
const (
	blobKindLimits Kind = 1
	blobKindPut    Kind = 2
	blobKindWrite  Kind = 3
	blobKindStat   Kind = 4
	blobKindRead   Kind = 5
	blobKindDone   Kind = 6
)

// BlobHash is a blob's ID: SHA-256 of its bytes.
type BlobHash [BlobHashSize]byte

// BlobStatus is the first byte of every blob store answer.
type BlobStatus uint8

// Blob statuses (files.md §19.5).
const (
	BlobOK           BlobStatus = 0  // done
	BlobUnknown      BlobStatus = 1  // no such blob: never put, expired or deleted
	BlobOverQuota    BlobStatus = 2  // the live blobs of the uploading peer, or of its network, would pass their quota
	BlobTooLarge     BlobStatus = 3  // blob_size over max_blob
	BlobBadRange     BlobStatus = 4  // a write not at the relay's end of the blob, past blob_size or empty; a read at or past the end, or of length 0 or over BlobChunk; a put of size 0 or of a known hash with another size
	BlobHashMismatch BlobStatus = 5  // the last write completed a blob whose SHA-256 is not its hash: it was deleted
	BlobBusy         BlobStatus = 6  // rate limited: retry later
	BlobBadRequest   BlobStatus = 7  // malformed or oversized frame; the relay closes the stream
	BlobFull         BlobStatus = 8  // the relay's blob_store_bytes would be passed
	BlobInternal     BlobStatus = 9  // the relay failed to store; nothing was acknowledged
	BlobIncomplete   BlobStatus = 10 // a read or done of a blob still being uploaded
	BlobBadToken     BlobStatus = 11 // done with a token whose hash was not registered: nothing changed
)

// Sentinel errors of the blob statuses; a *BlobError matches its
// sentinel with errors.Is.
var (
	ErrBlobUnknown      = errors.New("relay: no such blob")
	ErrBlobOverQuota    = errors.New("relay: blob quota used up: this peer's or its network's live blobs would pass the relay's quota")
	ErrBlobTooLarge     = errors.New("relay: blob larger than the relay keeps")
	ErrBlobBadRange     = errors.New("relay: bad blob range")
	ErrBlobHashMismatch = errors.New("relay: blob does not match its hash; the relay deleted it")
	ErrBlobBusy         = errors.New("relay: blob store busy (rate limited), retry later")
	ErrBlobBadRequest   = errors.New("relay: malformed blob request")
	ErrBlobFull         = errors.New("relay: blob store full")
	ErrBlobInternal     = errors.New("relay: blob store failed")
	ErrBlobIncomplete   = errors.New("relay: blob still being uploaded")
	ErrBlobBadToken     = errors.New("relay: unknown blob receipt token")
)

var blobErrors = map[BlobStatus]error{
	BlobUnknown: ErrBlobUnknown, BlobOverQuota: ErrBlobOverQuota, BlobTooLarge: ErrBlobTooLarge,
	BlobBadRange: ErrBlobBadRange, BlobHashMismatch: ErrBlobHashMismatch, BlobBusy: ErrBlobBusy,
	BlobBadRequest: ErrBlobBadRequest, BlobFull: ErrBlobFull, BlobInternal: ErrBlobInternal,
	BlobIncomplete: ErrBlobIncomplete, BlobBadToken: ErrBlobBadToken,
}

// BlobError is a blob store answer with a status other than BlobOK.
type BlobError struct{ Status BlobStatus }

// Error describes the status.
func (e *BlobError) Error() string {
	if err := blobErrors[e.Status]; err != nil {
		return err.Error()
	}
	return fmt.Sprintf("relay: blob status %d", e.Status)
}

// Is matches the status's sentinel error.
func (e *BlobError) Is(target error) bool { return blobErrors[e.Status] == target }

// BlobLimits are what a relay's blob store takes, from a limits request.
type BlobLimits struct {
	MaxBlob      uint64 // bytes of one blob
	TTLSeconds   uint64 // how long a blob is kept after its put
	QuotaPerPeer uint64 // bytes of live blobs one uploading peer may hold
	Free         uint64 // bytes the whole store can still take
	QuotaLeft    uint64 // bytes the asking peer can still put, under its own quota and its network's
}

// BlobState is what a relay holds of one blob: the answer to put, write
// and stat.
type BlobState struct {
	Size     uint64 // blob_size given with its put
	Have     uint64 // bytes stored, from the start
	Complete bool   // all bytes are in and SHA-256 matched: served
}

// BlobToken is a recipient device's receipt token for a blob
// (files.md §19.5): HMAC-SHA-256(seed, device ID).
func BlobToken(seed [32]byte, device []byte) [32]byte {
	m := hmac.New(sha256.New, seed[:])
	m.Write(device)
	return [32]byte(m.Sum(nil))
}

// BlobTokenHash is what an uploader registers for a token: SHA-256(token).
func BlobTokenHash(token [32]byte) BlobHash { return sha256.Sum256(token[:]) }

// blobReq is one decoded blob request. Which fields are set depends on
// kind.
type blobReq struct {
	kind     Kind
	hash     BlobHash
	size     uint64     // put
	receipts []BlobHash // put
	offset   uint64     // write, read
	length   uint64     // read
	data     []byte     // write (aliases the frame)
	token    [32]byte   // done
}

// encode writes the request frame's payload.
func (q *blobReq) encode() []byte {
	w := codec.NewWriter(1 + BlobHashSize + 16 + len(q.data) + len(q.receipts)*BlobHashSize + 8)
	w.U8(uint8(q.kind))
	if q.kind == blobKindLimits {
		return w.Bytes()
	}
	w.Fixed(q.hash[:])
	switch q.kind {
	case blobKindPut:
		w.U64(q.size)
		w.U16(uint16(len(q.receipts)))
		for _, r := range q.receipts {
			w.Fixed(r[:])
		}
	case blobKindWrite:
		w.U64(q.offset)
		w.Bytes32(q.data)
	case blobKindRead:
		w.U64(q.offset)
		w.U64(q.length)
	case blobKindDone:
		w.Fixed(q.token[:])
	}
	return w.Bytes()
}

// decodeBlobReq parses a request frame; any error is BlobBadRequest.
func decodeBlobReq(b []byte) (*blobReq, error) {
	r := codec.NewReader(b)
	q := &blobReq{kind: Kind(r.U8())}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if q.kind < blobKindLimits || q.kind > blobKindDone {
		return nil, fmt.Errorf("%w: kind %d", codec.ErrInvalid, q.kind)
	}
	if q.kind != blobKindLimits {
		copy(q.hash[:], r.Fixed(BlobHashSize))
	}
	switch q.kind {
	case blobKindPut:
		q.size = r.U64()
		n := r.Count(MaxBlobReceipts)
		if r.Err() == nil && r.Remaining() != n*BlobHashSize {
			r.Fail(fmt.Errorf("%w: %d receipts in %d bytes", codec.ErrInvalid, n, r.Remaining()))
		}
		if r.Err() == nil {
			q.receipts = make([]BlobHash, n)
			for i := range q.receipts {
				copy(q.receipts[i][:], r.Fixed(BlobHashSize))
			}
		}
	case blobKindWrite:
		q.offset = r.U64()
		q.data = r.Bytes32(BlobChunk)
	case blobKindRead:
		q.offset, q.length = r.U64(), r.U64()
	case blobKindDone:
		copy(q.token[:], r.Fixed(32))
	}
	if err := r.Done(); err != nil {
		return nil, err
	}
	return q, nil
}

// Answers: status u8 ‖ the kind's fields, which follow whenever the
// request was well formed (zeros when the status is not BlobOK); a
// BlobBadRequest answer is the status byte alone.
//
//	limits:           max_blob u64 ‖ ttl_s u64 ‖ quota_per_peer u64 ‖ free u64 ‖ quota_left u64
//	put, write, stat: size u64 ‖ have u64 ‖ complete bool
//	read:             data bytes32 (empty unless BlobOK)
//	done:             left u16 (registered tokens not yet presented)

func encodeLimits(st BlobStatus, l BlobLimits) []byte {
	w := codec.NewWriter(41)
	w.U8(uint8(st))
	w.U64(l.MaxBlob)
	w.U64(l.TTLSeconds)
	w.U64(l.QuotaPerPeer)
	w.U64(l.Free)
	w.U64(l.QuotaLeft)
	return w.Bytes()
}

func encodeState(st BlobStatus, s BlobState) []byte {
	w := codec.NewWriter(18)
	w.U8(uint8(st))
	w.U64(s.Size)
	w.U64(s.Have)
	w.Bool(s.Complete)
	return w.Bytes()
}

func encodeDone(st BlobStatus, left int) []byte {
	w := codec.NewWriter(3)
	w.U8(uint8(st))
	w.U16(uint16(left))
	return w.Bytes()
}

// decodeAnswer reads an answer's status and hands the rest to fields
// (nil for a bare status); a status other than BlobOK is returned as a
// *BlobError after the fields were read.
func decodeAnswer(b []byte, fields func(r *codec.Reader)) error {
	r := codec.NewReader(b)
	st := BlobStatus(r.U8())
	if r.Err() == nil && (r.Remaining() > 0 || st == BlobOK) && fields != nil {
		fields(r)
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("%w: answer: %v", ErrBlobBadRequest, err)
	}
	if st != BlobOK {
		return &BlobError{Status: st}
	}
	return nil
}

func readLimits(r *codec.Reader, l *BlobLimits) {
	l.MaxBlob, l.TTLSeconds, l.QuotaPerPeer, l.Free, l.QuotaLeft = r.U64(), r.U64(), r.U64(), r.U64(), r.U64()
}

func readState(r *codec.Reader, s *BlobState) {
	s.Size, s.Have, s.Complete = r.U64(), r.U64(), r.Bool()
}
