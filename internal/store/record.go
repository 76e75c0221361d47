package store

import (
	"crypto/cipher"
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
	formatPlain byte = 0x01 // plain record: bytes16 id ‖ value
	formatSeq   byte = 0x02 // sequenced record: kind ‖ body

	tagSize    = 8  // table tag: HMAC(K_index_root, name)[:8]
	idHashSize = 16 // keyed hash of the id (plain) or of kind, id and seq
	keyLen     = tagSize + idHashSize

	// legacySeqKeyLen is the length of a layout 1 sequenced key:
	// tag ‖ HMAC(K_index_t, id)[:16] ‖ big-endian seq (§11.5).
	legacySeqKeyLen = keyLen + 8

	// sealOverhead is what sealing adds to a plaintext: format byte,
	// nonce and tag.
	sealOverhead = 1 + suite.NonceSizeX + suite.TagSize
	// recordOverhead is what sealing adds to id ‖ value in a plain
	// record: sealOverhead and the id length prefix.
	recordOverhead = sealOverhead + 2

	labelIndexRoot = "hush/v1/index-root"
	labelTable     = "hush/v1/table/"
	labelIndex     = "hush/v1/index/"
	labelSeq       = "hush/v1/seq/"
	labelRecord    = "hush/v1/record"
)

// Kinds of sequenced records: the first plaintext byte of a format 0x02
// record, and the first byte hashed into its key.
const (
	kindData byte = 0x01 // a value: bytes16 id ‖ u64 seq ‖ value
	kindLink byte = 0x02 // the skip-list node of one (id, seq)
	kindHead byte = 0x03 // the skip-list head of one id
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
	valueKey []byte      // K_t
	aead     cipher.AEAD // XChaCha20-Poly1305 under K_t; stateless, shared
	indexKey []byte      // K_index_t
	seqKey   []byte      // K_seq_t
	macs     sync.Pool   // keyed HMAC-SHA-256 states for indexKey, reused
	seqMacs  sync.Pool   // the same for seqKey
	memo     keyMemo     // keys computed again and again (headKey, linkKey)
}

func deriveTableKeys(dek, indexRoot []byte, name string) *tableKeys {
	tk := &tableKeys{
		name:     name,
		valueKey: suite.HKDF(dek, nil, labelTable+name, suite.KeySize),
		indexKey: suite.HKDF(dek, nil, labelIndex+name, suite.KeySize),
		seqKey:   suite.HKDF(dek, nil, labelSeq+name, suite.KeySize),
	}
	var err error
	if tk.aead, err = chacha20poly1305.NewX(tk.valueKey); err != nil {
		panic("store: table key must be 32 bytes")
	}
	m := hmac.New(sha256.New, indexRoot)
	m.Write([]byte(name))
	copy(tk.tag[:], m.Sum(nil))
	return tk
}

// keyed returns tag ‖ HMAC(key, head ‖ id ‖ tail)[:16], with an HMAC
// state from pool.
func (tk *tableKeys) keyed(pool *sync.Pool, key, head, id, tail []byte) []byte {
	k := make([]byte, keyLen)
	copy(k, tk.tag[:])
	m, _ := pool.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, key)
	}
	m.Reset()
	m.Write(head)
	m.Write(id)
	m.Write(tail)
	var sum [sha256.Size]byte
	copy(k[tagSize:], m.Sum(sum[:0])[:idHashSize])
	pool.Put(m)
	return k
}

// idPrefix returns the key of id's plain record: tag ‖
// HMAC(K_index_t, id)[:16]. Layout 1 appended the clear sequence number
// to it for sequenced records.
func (tk *tableKeys) idPrefix(id []byte) []byte {
	return tk.keyed(&tk.macs, tk.indexKey, nil, id, nil)
}

// seqRecordKey returns tag ‖ HMAC(K_seq_t, kind ‖ u16 len(id) ‖ id
// [‖ u64 seq])[:16]: the key of a data or link record (withSeq) or of
// id's head.
func (tk *tableKeys) seqRecordKey(kind byte, id []byte, seq uint64, withSeq bool) []byte {
	head := [3]byte{kind}
	binary.BigEndian.PutUint16(head[1:], uint16(len(id)))
	var tail [8]byte
	binary.BigEndian.PutUint64(tail[:], seq)
	if !withSeq {
		return tk.keyed(&tk.seqMacs, tk.seqKey, head[:], id, nil)
	}
	return tk.keyed(&tk.seqMacs, tk.seqKey, head[:], id, tail[:])
}

func (tk *tableKeys) dataKey(id []byte, seq uint64) []byte {
	return tk.seqRecordKey(kindData, id, seq, true)
}

// linkKey returns the key of the link record of (id, seq). The slice
// may be shared (keyMemo): callers must not change it.
func (tk *tableKeys) linkKey(id []byte, seq uint64) []byte {
	if key := tk.memo.tail(id, seq); key != nil {
		return key
	}
	return tk.seqRecordKey(kindLink, id, seq, true)
}

// headKey returns the key of id's skip-list head. The slice may be
// shared (keyMemo): callers must not change it.
func (tk *tableKeys) headKey(id []byte) []byte {
	if key := tk.memo.head(id); key != nil {
		return key
	}
	key := tk.seqRecordKey(kindHead, id, 0, false)
	tk.memo.setHead(id, key)
	return key
}

// keyMemo remembers the keys a table's appends compute again and again:
// each id's head key (every PutSeq and DeleteSeq names it), and the link
// key of the record appended last to each id (the predecessor the next
// append links to). A key is a function of the table, id and seq only,
// so an entry is never stale, whatever was written or failed since; the
// memo is bounded by forgetting everything at keyMemoSize entries. It
// holds only keys, which are in memory anyway (docs/protocol/store.md
// §11.3: keyed hashes, not secrets once on disk).
type keyMemo struct {
	mu    sync.Mutex
	heads map[string][]byte
	tails map[string]tailLink
}

// tailLink is the link key of one seq of an id.
type tailLink struct {
	seq uint64
	key []byte
}

// keyMemoSize bounds each map of a keyMemo (about 100 bytes an entry).
const keyMemoSize = 4096

func (m *keyMemo) head(id []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heads[string(id)]
}

func (m *keyMemo) setHead(id, key []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.heads == nil || len(m.heads) >= keyMemoSize {
		m.heads = make(map[string][]byte)
	}
	m.heads[string(id)] = key
}

func (m *keyMemo) tail(id []byte, seq uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.tails[string(id)]; ok && t.seq == seq {
		return t.key
	}
	return nil
}

// setTail remembers key as the link key of (id, seq), the record just
// appended to id.
func (m *keyMemo) setTail(id []byte, seq uint64, key []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tails == nil || len(m.tails) >= keyMemoSize {
		m.tails = make(map[string]tailLink)
	}
	m.tails[string(id)] = tailLink{seq, key}
}

// recordAD appends "hush/v1/record" ‖ format ‖ key to buf.
func recordAD(buf []byte, format byte, key []byte) []byte {
	buf = append(buf, labelRecord...)
	buf = append(buf, format)
	return append(buf, key...)
}

// seal encrypts pt for the physical key in the given format.
func (tk *tableKeys) seal(format byte, key, pt []byte) []byte {
	out, _ := sealBuffer(format, len(pt))
	return tk.sealIn(out, key, pt)
}

// sealBuffer returns a sealed record's buffer in the given format, with
// a fresh nonce and room for n bytes of plaintext (then its tag), and an
// empty slice where the plaintext goes: a caller appends the plaintext
// to pt and seals it in place with sealIn, with no copy of its own.
func sealBuffer(format byte, n int) (out, pt []byte) {
	out = make([]byte, 1+suite.NonceSizeX, sealOverhead+n)
	out[0] = format
	fillRandom(out[1:])
	return out, out[len(out):len(out)]
}

// sealIn encrypts pt into out (from sealBuffer) for the physical key:
// in place when pt was built where sealBuffer said.
func (tk *tableKeys) sealIn(out, key, pt []byte) []byte {
	var ad [64]byte
	return tk.aead.Seal(out, out[1:1+suite.NonceSizeX], pt, recordAD(ad[:0], out[0], key))
}

// open authenticates and decrypts a stored value found under key in the
// given format. Every failure is ErrCorrupt naming the table only.
func (tk *tableKeys) open(format byte, key, raw []byte) ([]byte, error) {
	if len(raw) < sealOverhead {
		return nil, fmt.Errorf("%w: record in table %q is %d bytes, shorter than a sealed record", ErrCorrupt, tk.name, len(raw))
	}
	if raw[0] != format {
		return nil, fmt.Errorf("%w: record in table %q has unexpected format 0x%02x", ErrCorrupt, tk.name, raw[0])
	}
	var ad [64]byte
	pt, err := tk.aead.Open(nil, raw[1:1+suite.NonceSizeX], raw[1+suite.NonceSizeX:], recordAD(ad[:0], format, key))
	if err != nil {
		return nil, fmt.Errorf("%w: record in table %q failed authentication", ErrCorrupt, tk.name)
	}
	return pt, nil
}

// sealRecord encrypts id ‖ value as a plain record for the physical key.
// The plaintext is built in the record's buffer and encrypted in place,
// so no clear copy of it is left behind.
func (tk *tableKeys) sealRecord(key, id, value []byte) []byte {
	out, pt := sealBuffer(formatPlain, 2+len(id)+len(value))
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(id)))
	pt = append(pt, id...)
	pt = append(pt, value...)
	return tk.sealIn(out, key, pt)
}

// decodeRecord authenticates and decrypts a plain record (or a layout 1
// sequenced record) found under key, returning the clear id and value.
func (tk *tableKeys) decodeRecord(key, raw []byte) (id, value []byte, err error) {
	pt, err := tk.open(formatPlain, key, raw)
	if err != nil {
		return nil, nil, err
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
	return nonNil(id), nonNil(value), nil
}

// sealData encrypts a data record: kind ‖ bytes16 id ‖ u64 seq ‖ value,
// in place as sealRecord does.
func (tk *tableKeys) sealData(key, id []byte, seq uint64, value []byte) []byte {
	return tk.sealDataParts(key, id, seq, len(value), [][]byte{value})
}

// sealDataParts is sealData of the value the parts joined (n bytes).
func (tk *tableKeys) sealDataParts(key, id []byte, seq uint64, n int, parts [][]byte) []byte {
	out, pt := sealBuffer(formatSeq, 1+2+len(id)+8+n)
	pt = append(pt, kindData)
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(id)))
	pt = append(pt, id...)
	pt = binary.BigEndian.AppendUint64(pt, seq)
	for _, p := range parts {
		pt = append(pt, p...)
	}
	return tk.sealIn(out, key, pt)
}

// seqRecord is a decoded format 0x02 record: a value (kindData) or a
// skip-list node (kindLink, kindHead).
type seqRecord struct {
	kind  byte
	id    []byte // kindData
	seq   uint64 // kindData
	value []byte // kindData
	node  *seqNode
}

// decodeSeqRecord authenticates, decrypts and parses a format 0x02
// record found under key.
func (tk *tableKeys) decodeSeqRecord(key, raw []byte) (*seqRecord, error) {
	pt, err := tk.open(formatSeq, key, raw)
	if err != nil {
		return nil, err
	}
	r := codec.NewReader(pt)
	rec := &seqRecord{kind: r.U8()}
	switch rec.kind {
	case kindData:
		rec.id = nonNil(r.Bytes16(MaxIDSize))
		rec.seq = r.U64()
		rec.value = nonNil(r.Fixed(r.Remaining()))
		if len(rec.value) > MaxValueSize {
			return nil, fmt.Errorf("%w: record in table %q: value over limit", ErrCorrupt, tk.name)
		}
	case kindLink, kindHead:
		n, err := decodeNode(r)
		if err != nil {
			return nil, fmt.Errorf("%w: record in table %q: %v", ErrCorrupt, tk.name, err)
		}
		if rec.kind == kindLink && n.count != 0 {
			return nil, fmt.Errorf("%w: record in table %q: link with a count", ErrCorrupt, tk.name)
		}
		rec.node = n
	default:
		if r.Err() == nil {
			return nil, fmt.Errorf("%w: record in table %q has unknown kind 0x%02x", ErrCorrupt, tk.name, rec.kind)
		}
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: record in table %q: %v", ErrCorrupt, tk.name, err)
	}
	return rec, nil
}

// sealNode encrypts a link or head record.
func (tk *tableKeys) sealNode(key []byte, kind byte, n *seqNode) []byte {
	out, pt := sealBuffer(formatSeq, n.size())
	return tk.sealIn(out, key, n.appendTo(pt, kind))
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
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
