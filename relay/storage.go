package relay

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/internal/gossip"
	"github.com/hushnet/hush/internal/store"
)

// Table names (docs/RELAY.md "Storage").
const (
	tableMailboxes = "mailboxes"
	tableDeposits  = "deposits"
	tableMessages  = "messages"
	tableMsgIDs    = "msgids"
	tableExpiry    = "expiry"
	tablePrekeys   = "prekeys"
	tableWatches   = "watches"
	tableWakes     = "wakes"
)

// expiryID is the single id of the expiry index that relays before
// schema 2 wrote (its seq the expiry time in unix nanoseconds); its
// entries are deleted as their messages go.
var expiryID = []byte("x")

type tables struct {
	mailboxes, deposits, messages, msgids, expiry, prekeys, watches, wakes *store.Table
	blobs, blobTokens                                                      *store.Table // the blob store (blobstore.go)
	links, linkData                                                        *store.Table // the link store (linkstore.go)
}

func openTables(db *store.DB) tables {
	return tables{
		mailboxes:  db.Table(tableMailboxes),
		deposits:   db.Table(tableDeposits),
		messages:   db.Table(tableMessages),
		msgids:     db.Table(tableMsgIDs),
		expiry:     db.Table(tableExpiry),
		prekeys:    db.Table(tablePrekeys),
		watches:    db.Table(tableWatches),
		wakes:      db.Table(tableWakes),
		blobs:      db.Table(tableBlobs),
		blobTokens: db.Table(tableBlobTokens),
		links:      db.Table(tableLinks),
		linkData:   db.Table(tableLinkData),
	}
}

// mailbox is the in-memory state of one mailbox; its record is the
// persistent part. All mailboxes are kept in memory (about 200 bytes
// each), so a deposit needs no read.
type mailbox struct {
	id      ID
	deposit ID
	owner   ed25519.PublicKey
	created uint64
	// creator is the peer and network that created the mailbox in the
	// open mode (creationLimits), in memory only; nil for mailboxes
	// loaded at start and those created in the other modes.
	creator *creator

	// mu guards the fields below and orders the batches of this mailbox
	// (they are queued for commit while it is held).
	mu      sync.Mutex
	count   int64
	bytes   int64
	next    uint64 // next arrival number
	deleted bool
	// ckptNext is the next arrival number of the last checkpoint of the
	// counters queued for commit (its mailbox record): a deposit does not
	// rewrite the record, so the record is due again when next differs
	// (Server.checkpoint).
	ckptNext uint64
	// dueAt is a lower bound on when the oldest stored message expires
	// (unix ns; 0: not known, look; math.MaxUint64: nothing stored):
	// expiry reads a mailbox's messages only once it has passed.
	dueAt    uint64
	inflight sync.WaitGroup         // deposits queued, not yet committed
	deleting map[MessageID]struct{} // deletes queued but not yet committed
	sub      *session               // the current owner subscription
	// watchTime and watching are the last accepted Watch: its time and
	// its topics (the group store files their messages here).
	watchTime uint64
	watching  []string
	watchIP   string // ipKey of the connection that set watching ("" when loaded at start)
	// wakeTime and wakeHandle are the last accepted SetWake; lastWake is
	// when the bridge was last asked to wake the owner (wake.go).
	wakeTime   uint64
	wakeHandle string
	lastWake   time.Time
}

// creator is who created a mailbox: rate-limit keys, never logged or
// stored.
type creator struct{ peer, ip string }

// record encodes the mailbox record: owner ‖ deposit ‖ created ‖ count ‖
// bytes ‖ next arrival. The counters are a checkpoint: messages stored
// with an arrival number at or past next are counted on top of it when
// the relay starts (Server.loadCounters).
func (m *mailbox) recordLocked() []byte {
	w := codec.NewWriter(128)
	w.Fixed(m.owner)
	w.Fixed(m.deposit[:])
	w.U64(m.created)
	w.U64(uint64(m.count))
	w.U64(uint64(m.bytes))
	w.U64(m.next)
	return w.Bytes()
}

func parseMailbox(id, b []byte) (*mailbox, error) {
	r := codec.NewReader(b)
	m := &mailbox{owner: codec.Clone(r.Fixed(ed25519.PublicKeySize))}
	copy(m.id[:], id)
	copy(m.deposit[:], r.Fixed(IDSize))
	m.created = r.U64()
	m.count = int64(r.U64())
	m.bytes = int64(r.U64())
	m.next = r.U64()
	if err := r.Done(); err != nil || len(id) != IDSize {
		return nil, fmt.Errorf("relay: corrupt mailbox record: %v", err)
	}
	return m, nil
}

// message is a stored message: the value of messages[mailbox, arrival].
// envelope is a sealed envelope (SourceDeposit) or the data of a group
// topic message (SourceTopic).
type message struct {
	id       MessageID
	storedAt uint64 // unix seconds
	expiry   uint64 // when it expires (unix ns)
	// indexed: the message has an entry in the expiry index, under
	// expiry (written by relays before deposits in batches; see
	// noIndexBit).
	indexed  bool
	source   Source
	topic    string // SourceTopic: the topic it was seen on
	envelope []byte
	seq      uint64 // transient pushes only: the order they came in
}

// noIndexBit is set in the expiry field of a message record that has no
// expiry index entry: every message stored since deposits in batches
// (docs/RELAY.md "Deposits in batches"); expiry finds those by walking
// each mailbox from its oldest message. Expiry times (unix ns) stay far
// below it.
const noIndexBit = 1 << 63

// indexSeq is the message's expiry index seq, 0 when it has none.
func (m *message) indexSeq() uint64 {
	if m.indexed {
		return m.expiry
	}
	return 0
}

// encode writes id ‖ stored-at ‖ expiry ‖ envelope bytes32 ‖ source u8.
// The source comes last so that records written before it existed (which
// end after the envelope) still parse, as SourceDeposit.
func (m *message) encode() []byte {
	b := make([]byte, 0, msgHeaderSize+len(m.envelope)+2+len(m.topic))
	b = m.appendHeader(b)
	b = append(b, m.envelope...)
	return m.appendTrailer(b)
}

// msgHeaderSize is the size of what appendHeader writes.
const msgHeaderSize = MessageIDSize + 8 + 8 + 4

// appendHeader appends what encode writes before the envelope: id ‖
// stored-at ‖ expiry ‖ the envelope's length. With the envelope and
// appendTrailer's bytes it is the record, which the store can then be
// given in parts (store.Batch.PutSeqParts), the envelope not copied.
func (m *message) appendHeader(b []byte) []byte {
	b = append(b, m.id[:]...)
	b = binary.BigEndian.AppendUint64(b, m.storedAt)
	if m.indexed {
		b = binary.BigEndian.AppendUint64(b, m.expiry)
	} else {
		b = binary.BigEndian.AppendUint64(b, m.expiry|noIndexBit)
	}
	return binary.BigEndian.AppendUint32(b, uint32(len(m.envelope)))
}

// appendTrailer appends what encode writes after the envelope: source
// u8, and for SourceTopic the topic (writeTopic).
func (m *message) appendTrailer(b []byte) []byte {
	b = append(b, uint8(m.source))
	if m.source == SourceTopic {
		b = append(b, uint8(len(m.topic)))
		b = append(b, m.topic...)
	}
	return b
}

func parseMessage(b []byte) (*message, error) {
	r := codec.NewReader(b)
	m := &message{}
	copy(m.id[:], r.Fixed(MessageIDSize))
	m.storedAt, m.expiry = r.U64(), r.U64()
	m.indexed = m.expiry&noIndexBit == 0
	m.expiry &^= noIndexBit
	m.envelope = r.Bytes32(math.MaxUint32)
	if r.Err() == nil && r.Remaining() > 0 {
		m.source = Source(r.U8())
		if !m.source.valid() {
			r.Fail(fmt.Errorf("%w: source %d", codec.ErrInvalid, m.source))
		}
		if m.source == SourceTopic && r.Err() == nil && r.Remaining() > 0 {
			m.topic = readTopic(r)
		}
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("relay: corrupt message record: %v", err)
	}
	return m, nil
}

// msgRef locates a message: the value of msgids[message ID] and of
// expiry[x, t] (mailbox ‖ message ID ‖ arrival ‖ expiry ‖ size). expiry
// is the message's expiry index seq, 0 when it has no index entry.
type msgRef struct {
	mailbox ID
	msg     MessageID
	arrival uint64
	expiry  uint64
	size    uint32
}

// dueAt is when m expires under ttl: its expiry, or earlier when the
// relay's TTL was lowered since it was stored (rounded up to the second
// of its stored-at, so never earlier than ttl after it arrived).
func (m *message) dueAt(ttl time.Duration) uint64 {
	byTTL := uint64(time.Unix(int64(m.storedAt)+1, 0).Add(ttl).UnixNano())
	return min(m.expiry, byTTL)
}

func (r *msgRef) encode() []byte {
	w := codec.NewWriter(56)
	w.Fixed(r.mailbox[:])
	w.Fixed(r.msg[:])
	w.U64(r.arrival)
	w.U64(r.expiry)
	w.U32(r.size)
	return w.Bytes()
}

func parseRef(b []byte) (msgRef, error) {
	r := codec.NewReader(b)
	var ref msgRef
	copy(ref.mailbox[:], r.Fixed(IDSize))
	copy(ref.msg[:], r.Fixed(MessageIDSize))
	ref.arrival, ref.expiry, ref.size = r.U64(), r.U64(), r.U32()
	if err := r.Done(); err != nil {
		return ref, fmt.Errorf("relay: corrupt index record: %v", err)
	}
	return ref, nil
}

// prekeyRecord is the value of prekeys[mailbox].
type prekeyRecord struct {
	lastResort []byte
	oneTime    [][]byte
}

func (p *prekeyRecord) encode() []byte {
	n := len(p.lastResort) + 4
	for _, b := range p.oneTime {
		n += len(b) + 2
	}
	w := codec.NewWriter(n)
	w.Bytes16(p.lastResort)
	w.U16(uint16(len(p.oneTime)))
	for _, b := range p.oneTime {
		w.Bytes16(b)
	}
	return w.Bytes()
}

func parsePrekeys(b []byte) (*prekeyRecord, error) {
	r := codec.NewReader(b)
	p := &prekeyRecord{lastResort: codec.Clone(r.Bytes16(MaxBundleSize))}
	n := r.Count(MaxOneTime)
	for range n {
		p.oneTime = append(p.oneTime, codec.Clone(r.Bytes16(MaxBundleSize)))
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("relay: corrupt prekeys record: %v", err)
	}
	return p, nil
}

// watchRecord is the value of watches[mailbox]: the last accepted Watch,
// time u64 ‖ topics (u16 count ≤ MaxWatchTopics, bytes8 each). It is kept
// with an empty list too, so an older Watch cannot be replayed after the
// owner stopped watching.
type watchRecord struct {
	time   uint64
	topics []string
}

func (w *watchRecord) encode() []byte {
	cw := codec.NewWriter(10 + len(w.topics)*(1+gossip.MaxTopicLen))
	cw.U64(w.time)
	cw.U16(uint16(len(w.topics)))
	for _, t := range w.topics {
		writeBytes8(cw, []byte(t))
	}
	return cw.Bytes()
}

func parseWatch(b []byte) (*watchRecord, error) {
	r := codec.NewReader(b)
	w := &watchRecord{time: r.U64()}
	w.topics = readTopics(r)
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("relay: corrupt watch record: %v", err)
	}
	return w, nil
}

// wakeRecord is the value of wakes[mailbox]: the last accepted SetWake,
// time u64 ‖ handle (string16). It is kept with an empty handle too, so
// an older SetWake cannot be replayed after the owner detached.
func encodeWake(t uint64, handle string) []byte {
	w := codec.NewWriter(10 + len(handle))
	w.U64(t)
	w.String16(handle)
	return w.Bytes()
}

func parseWake(b []byte) (uint64, string, error) {
	r := codec.NewReader(b)
	t := r.U64()
	h := r.String16(MaxWakeHandle)
	if err := r.Done(); err != nil {
		return 0, "", fmt.Errorf("relay: corrupt wake record: %v", err)
	}
	return t, h, nil
}
