package relay

import (
	"fmt"
	"sync"
	"time"

	"github.com/hushnet/hush/crypto/codec"
)

// A blob's in-memory state and its two stored records (the blobs and
// blobtokens tables of the blob store, blobstore.go).

// blobRecordVersion is the first byte of a blobs record: 2 since the
// network quota key; records of version 1 (without it) are still read.
const blobRecordVersion = 2

// blob is one blob's in-memory state; its record in the blobs table is
// the persistent part. Every blob is kept in memory (about 150 bytes;
// MinBlobCharge bounds how many fit under BlobStoreBytes); its receipt
// token hashes are only in the blobtokens table.
type blob struct {
	hash     BlobHash
	file     [blobFileIDSize]byte // the file's name
	size     uint64               // blob_size of the put
	created  uint64               // unix ns of the put
	expiry   uint64               // unix ns: created + the TTL at the put
	quota    [16]byte             // the uploading peer's quota key
	net      [16]byte             // the uploading network's quota key; zero: none (a version 1 record)
	receipts int                  // token hashes registered

	// mu orders writes, dones and the deletion of this blob, and guards
	// the fields below.
	mu        sync.Mutex
	have      uint64 // bytes stored (fsynced) from the start
	complete  bool   // have == size and SHA-256 matched: served
	presented int    // registered tokens presented
	gone      bool   // deleted (or its put failed)
}

func (b *blob) charge() uint64 { return max(b.size, MinBlobCharge) }

func (b *blob) stateLocked() BlobState {
	return BlobState{Size: b.size, Have: b.have, Complete: b.complete}
}

// dueAt is when b goes: its expiry, or earlier if the TTL was lowered
// since its put.
func (b *blob) dueAt(ttl time.Duration) uint64 {
	return min(b.expiry, b.created+uint64(ttl))
}

// recordLocked encodes the blobs record: version ‖ file ‖ size ‖ have ‖
// created ‖ expiry ‖ quota key ‖ complete ‖ receipts u16 ‖ presented u16
// ‖ network quota key (version 2; version 1 ends before it).
func (b *blob) recordLocked() []byte {
	w := codec.NewWriter(96)
	w.U8(blobRecordVersion)
	w.Fixed(b.file[:])
	w.U64(b.size)
	w.U64(b.have)
	w.U64(b.created)
	w.U64(b.expiry)
	w.Fixed(b.quota[:])
	w.Bool(b.complete)
	w.U16(uint16(b.receipts))
	w.U16(uint16(b.presented))
	w.Fixed(b.net[:])
	return w.Bytes()
}

func parseBlob(id, v []byte) (*blob, error) {
	r := codec.NewReader(v)
	ver := r.U8()
	if r.Err() == nil && ver != 1 && ver != blobRecordVersion {
		r.Fail(fmt.Errorf("%w: version %d", codec.ErrInvalid, ver))
	}
	b := &blob{}
	copy(b.file[:], r.Fixed(blobFileIDSize))
	b.size, b.have, b.created, b.expiry = r.U64(), r.U64(), r.U64(), r.U64()
	copy(b.quota[:], r.Fixed(16))
	b.complete = r.Bool()
	b.receipts, b.presented = int(r.U16()), int(r.U16())
	if ver == blobRecordVersion {
		copy(b.net[:], r.Fixed(16))
	}
	if err := r.Done(); err != nil || len(id) != BlobHashSize || b.have > b.size ||
		b.receipts > MaxBlobReceipts || b.presented > b.receipts {
		return nil, fmt.Errorf("relay: corrupt blob record: %v", err)
	}
	copy(b.hash[:], id)
	return b, nil
}

// blobTokens is the value of blobtokens[hash]: u16 n ‖ (SHA-256(token)
// fixed[32] ‖ presented bool)·n.
type blobTokens struct {
	hashes    []BlobHash
	presented []bool
}

func (t *blobTokens) encode() []byte {
	w := codec.NewWriter(2 + len(t.hashes)*(BlobHashSize+1))
	w.U16(uint16(len(t.hashes)))
	for i, h := range t.hashes {
		w.Fixed(h[:])
		w.Bool(t.presented[i])
	}
	return w.Bytes()
}

func parseBlobTokens(v []byte) (*blobTokens, error) {
	r := codec.NewReader(v)
	n := r.Count(MaxBlobReceipts)
	t := &blobTokens{hashes: make([]BlobHash, 0, n), presented: make([]bool, 0, n)}
	for range n {
		h, p := r.Fixed(BlobHashSize), r.Bool()
		if r.Err() != nil {
			break
		}
		t.hashes = append(t.hashes, BlobHash(h))
		t.presented = append(t.presented, p)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("relay: corrupt blob tokens record: %v", err)
	}
	return t, nil
}
