package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/suite"
)

// Record and key layout constants (docs/protocol/store.md §11.3–11.4).
const (
	recordFormat byte = 0x01

	tagSize     = 8  // table tag: HMAC(K_index_root, name)[:8]
	idHashSize  = 16 // HMAC-SHA-256(K_index_t, id)[:16]
	seqSize     = 8  // clear big-endian sequence suffix
	plainKeyLen = tagSize + idHashSize
	seqKeyLen   = plainKeyLen + seqSize

	// recordOverhead is what sealing adds to id ‖ value: format byte,
	// nonce, id length prefix and tag.
	recordOverhead = 1 + suite.NonceSizeX + 2 + suite.TagSize

	labelIndexRoot = "hush/v1/index-root"
	labelTable     = "hush/v1/table/"
	labelIndex     = "hush/v1/index/"
	labelRecord    = "hush/v1/record"
)

// Size limits.
const (
	// MaxIDSize is the largest record identifier, in bytes.
	MaxIDSize = 1024
	// MaxValueSize is the largest record value: 16 MiB. goleveldb keeps
	// values whole in memory; large blobs (attachments) belong in files.
	MaxValueSize = 16 << 20
	// MaxTableName is the longest table name.
	MaxTableName = 64
)

// tableKeys is the per-table key material derived from the DEK.
type tableKeys struct {
	name     string
	tag      [tagSize]byte
	valueKey []byte    // K_t
	indexKey []byte    // K_index_t
	macs     sync.Pool // keyed HMAC-SHA-256 states for indexKey, reused
}

func deriveTableKeys(dek, indexRoot []byte, name string) *tableKeys {
	tk := &tableKeys{
		name:     name,
		valueKey: suite.HKDF(dek, nil, labelTable+name, suite.KeySize),
		indexKey: suite.HKDF(dek, nil, labelIndex+name, suite.KeySize),
	}
	m := hmac.New(sha256.New, indexRoot)
	m.Write([]byte(name))
	copy(tk.tag[:], m.Sum(nil))
	return tk
}

// idPrefix returns tag ‖ HMAC(K_index_t, id)[:16], with room for a
// sequence suffix.
func (tk *tableKeys) idPrefix(id []byte) []byte {
	k := make([]byte, plainKeyLen, seqKeyLen)
	copy(k, tk.tag[:])
	m, _ := tk.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, tk.indexKey)
	}
	m.Reset()
	m.Write(id)
	var sum [sha256.Size]byte
	copy(k[tagSize:], m.Sum(sum[:0])[:idHashSize])
	tk.macs.Put(m)
	return k
}

func (tk *tableKeys) seqKey(id []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(tk.idPrefix(id), seq)
}

func recordAD(key []byte) []byte {
	ad := make([]byte, 0, len(labelRecord)+1+len(key))
	ad = append(ad, labelRecord...)
	ad = append(ad, recordFormat)
	return append(ad, key...)
}

// sealRecord encrypts id ‖ value for the physical key.
func (tk *tableKeys) sealRecord(key, id, value []byte) []byte {
	w := codec.NewWriter(2 + len(id) + len(value))
	w.Bytes16(id)
	w.Fixed(value)
	pt := w.Bytes()
	aead, err := chacha20poly1305.NewX(tk.valueKey)
	if err != nil {
		panic("store: table key must be 32 bytes")
	}
	out := make([]byte, 1+suite.NonceSizeX, 1+suite.NonceSizeX+len(pt)+suite.TagSize)
	out[0] = recordFormat
	nonce := out[1 : 1+suite.NonceSizeX]
	fillRandom(nonce)
	out = aead.Seal(out, nonce, pt, recordAD(key))
	clear(pt)
	return out
}

// decodeRecord authenticates and decrypts a stored value found under key,
// returning the clear id and value. Every failure is ErrCorrupt naming the
// table only.
func (tk *tableKeys) decodeRecord(key, raw []byte) (id, value []byte, err error) {
	if len(raw) < recordOverhead {
		return nil, nil, fmt.Errorf("%w: record in table %q is %d bytes, shorter than a sealed record", ErrCorrupt, tk.name, len(raw))
	}
	if raw[0] != recordFormat {
		return nil, nil, fmt.Errorf("%w: record in table %q has unknown format 0x%02x", ErrCorrupt, tk.name, raw[0])
	}
	aead, err := chacha20poly1305.NewX(tk.valueKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: table %q key", ErrCorrupt, tk.name)
	}
	pt, err := aead.Open(nil, raw[1:1+suite.NonceSizeX], raw[1+suite.NonceSizeX:], recordAD(key))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: record in table %q failed authentication", ErrCorrupt, tk.name)
	}
	r := codec.NewReader(pt)
	id = r.Bytes16(MaxIDSize)
	value = r.Fixed(r.Remaining())
	if err := r.Done(); err != nil {
		return nil, nil, fmt.Errorf("%w: record in table %q: %v", ErrCorrupt, tk.name, err)
	}
	if len(value) > MaxValueSize {
		return nil, nil, fmt.Errorf("%w: record in table %q: value over limit", ErrCorrupt, tk.name)
	}
	if id == nil {
		id = []byte{}
	}
	if value == nil {
		value = []byte{}
	}
	return id, value, nil
}

// checkSizes returns an error for an id or value the store will not hold.
func checkSizes(id, value []byte) error {
	if len(id) > MaxIDSize {
		return fmt.Errorf("store: id of %d bytes, limit %d", len(id), MaxIDSize)
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("store: value of %d bytes, limit %d", len(value), MaxValueSize)
	}
	return nil
}

// validTableName reports whether name is a user table name:
// [a-z0-9][a-z0-9_.-]{0,63}. Names starting with '_' are reserved.
func validTableName(name string) bool {
	if len(name) == 0 || len(name) > MaxTableName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}
