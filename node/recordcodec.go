package node

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
)

// The hot records (messages, their index, outbox entries) are stored in
// the project's binary codec (docs/protocol/store.md, "Node records"):
// a format byte, then the fields in a fixed order. Records written by
// earlier versions are JSON; a JSON record starts with '{', which no
// format byte is, so both are read and only the binary one is written.
const (
	recMsgV1   byte = 0x01
	recIndexV1 byte = 0x02
	recOutV1   byte = 0x03
)

// Decoding caps: generous bounds on what a record may hold, checked
// before anything is allocated.
const (
	capRecField   = 1 << 10  // an ID, a name, a state, a kind, an error text
	capRecText    = 1 << 20  // a message text (MaxTextSize is far below)
	capRecBody    = 1 << 24  // an outbox entry's sealed body
	capRecList    = 1 << 12  // reactions, reactors, mailboxes left
	capRecAccount = 1 << 8   // an account or group conversation key
	capRecThumb   = 16 << 10 // an attachment's thumbnail
)

func putTime(w *codec.Writer, t time.Time) {
	if t.IsZero() {
		w.U64(0)
		return
	}
	w.U64(uint64(t.UnixNano()))
}

func readTime(r *codec.Reader) time.Time {
	ns := r.U64()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

// marshal encodes m: recMsgV1 ‖ id ‖ dir ‖ text ‖ state ‖ time ‖
// reply_to ‖ flags (edited 1, deleted 2) ‖ reactions ‖ error ‖ sender ‖
// from ‖ kind ‖ missing ‖ counter.
func (m *msgRec) marshal() []byte {
	w := codec.NewWriter(96 + len(m.Text) + len(m.ID) + len(m.ReplyTo))
	w.U8(recMsgV1)
	w.String16(m.ID)
	w.String16(m.Dir)
	w.Bytes32([]byte(m.Text))
	w.String16(string(m.State))
	putTime(w, m.Time)
	w.String16(m.ReplyTo)
	var flags uint8
	if m.Edited {
		flags |= 1
	}
	if m.Deleted {
		flags |= 2
	}
	w.U8(flags)
	w.U16(uint16(len(m.Reactions)))
	for _, emoji := range slices.Sorted(maps.Keys(m.Reactions)) {
		w.String16(emoji)
		who := m.Reactions[emoji]
		w.U16(uint16(len(who)))
		for _, s := range who {
			w.String16(s)
		}
	}
	w.String16(m.Error)
	w.String16(m.Sender)
	w.String16(m.From)
	w.String16(string(m.Kind))
	w.U64(m.Missing)
	w.U64(m.Counter)
	if f := m.File; f != nil { // optional trailing block: 1 ‖ the attachment
		w.U8(1)
		w.String16(f.Name)
		w.String16(f.MIME)
		w.U64(uint64(f.Size))
		w.String16(f.Hash)
		w.U32(uint32(f.Width))
		w.U32(uint32(f.Height))
		w.Bytes16(f.Thumbnail)
		w.String16(f.State)
		w.U64(uint64(f.Bytes))
		w.String16(f.Error)
		w.U64(uint64(f.DurationMS)) // added later: a record without it reads as 0
	}
	if len(m.ReadBy) > 0 { // optional trailing block: 2 ‖ the group read bitmap
		w.U8(2)
		w.Bytes16(m.ReadBy)
	}
	return w.Bytes()
}

// decodeMsgRec reads a messages-table record, binary or JSON.
func decodeMsgRec(v []byte, m *msgRec) error {
	if len(v) == 0 || v[0] != recMsgV1 {
		return jsonUnmarshal(v, m)
	}
	r := codec.NewReader(v[1:])
	*m = msgRec{
		ID:    r.String16(capRecField),
		Dir:   r.String16(capRecField),
		Text:  string(r.Bytes32(capRecText)),
		State: MessageState(r.String16(capRecField)),
		Time:  readTime(r),
	}
	m.ReplyTo = r.String16(capRecField)
	flags := r.U8()
	m.Edited, m.Deleted = flags&1 != 0, flags&2 != 0
	if k := r.Count(capRecList); k > 0 {
		m.Reactions = make(map[string][]string, k)
		for range k {
			emoji := r.String16(capRecField)
			who := make([]string, r.Count(capRecList))
			for i := range who {
				who[i] = r.String16(capRecField)
			}
			m.Reactions[emoji] = who
		}
	}
	m.Error = r.String16(capRecField)
	m.Sender = r.String16(capRecField)
	m.From = r.String16(capRecField)
	m.Kind = Kind(r.String16(capRecField))
	m.Missing = r.U64()
	m.Counter = r.U64()
	// Optional trailing blocks, in this order: 1 ‖ the attachment, 2 ‖
	// the group read bitmap.
	next := func() int { // the next block's tag, -1 at the end
		if r.Err() == nil && r.Remaining() > 0 {
			return int(r.U8())
		}
		return -1
	}
	block := next()
	if block == 1 {
		m.File = &FileInfo{Name: r.String16(capRecField), MIME: r.String16(capRecField), Size: int64(r.U64()),
			Hash: r.String16(capRecField), Width: int(r.U32()), Height: int(r.U32()),
			Thumbnail: codec.Clone(r.Bytes16(capRecThumb)), State: r.String16(capRecField),
			Bytes: int64(r.U64()), Error: r.String16(capRecField)}
		if r.Err() == nil && r.Remaining() > 0 { // a version that writes block 2 writes this too
			m.File.DurationMS = int64(r.U64())
		}
		block = next()
	}
	switch block {
	case -1:
	case 2:
		m.ReadBy = codec.Clone(r.Bytes16(maxReadSlots / 8))
	default:
		r.Fail(codec.ErrTrailing)
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("node: decode message record: %w", err)
	}
	return nil
}

// marshal encodes ix: recIndexV1 ‖ account ‖ seq.
func (ix *indexRec) marshal() []byte {
	w := codec.NewWriter(11 + len(ix.Account))
	w.U8(recIndexV1)
	w.Bytes16(ix.Account)
	w.U64(ix.Seq)
	return w.Bytes()
}

func decodeIndexRec(v []byte, ix *indexRec) error {
	if len(v) == 0 || v[0] != recIndexV1 {
		return jsonUnmarshal(v, ix)
	}
	r := codec.NewReader(v[1:])
	ix.Account = codec.Clone(r.Bytes16(capRecAccount))
	ix.Seq = r.U64()
	if err := r.Done(); err != nil {
		return fmt.Errorf("node: decode message index record: %w", err)
	}
	return nil
}

// marshal encodes o: recOutV1 ‖ seq ‖ msg ‖ flags (track 1, ephemeral
// 2) ‖ account ‖ kind ‖ body ‖ created ‖ sent ‖ left.
func (o *outRec) marshal() []byte {
	w := codec.NewWriter(64 + len(o.MsgID) + len(o.Account) + len(o.Body))
	w.U8(recOutV1)
	w.U64(o.Seq)
	w.String16(o.MsgID)
	var flags uint8
	if o.Track {
		flags |= 1
	}
	if o.Ephemeral {
		flags |= 2
	}
	w.U8(flags)
	w.String16(o.Account)
	w.U8(o.Kind)
	w.Bytes32(o.Body)
	putTime(w, o.Created)
	w.U64(uint64(o.SentMS))
	w.U16(uint16(len(o.Left)))
	for _, l := range o.Left {
		w.String16(l)
	}
	return w.Bytes()
}

func decodeOutRec(v []byte, o *outRec) error {
	if len(v) == 0 || v[0] != recOutV1 {
		return jsonUnmarshal(v, o)
	}
	r := codec.NewReader(v[1:])
	*o = outRec{Seq: r.U64(), MsgID: r.String16(capRecField)}
	flags := r.U8()
	o.Track, o.Ephemeral = flags&1 != 0, flags&2 != 0
	o.Account = r.String16(capRecField)
	o.Kind = r.U8()
	o.Body = codec.Clone(r.Bytes32(capRecBody))
	o.Created = readTime(r)
	o.SentMS = int64(r.U64())
	if k := r.Count(capRecList); k > 0 {
		o.Left = make([]string, k)
		for i := range o.Left {
			o.Left[i] = r.String16(capRecField)
		}
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("node: decode outbox record: %w", err)
	}
	return nil
}

// Outbox entries are plain records keyed by device ‖ seq (big-endian),
// not sequenced ones: an entry lives for one round trip, and the skip
// list a sequenced record keeps in order would be written twice for it
// (link, unlink). The entry holds its seq, and loadOutboxLocked sorts.
func outboxKey(dev identity.DeviceID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, len(dev)+8), dev[:]...), seq)
}

// putOut writes e's outbox record in b.
func (n *Node) putOut(b *store.Batch, e *outEntry) {
	if e.DirectOnly {
		return // memory only: never after a restart
	}
	b.Put(n.tabs.outbox, outboxKey(e.device, e.Seq), e.outRec.marshal())
}

// deleteOut deletes e's outbox record in b.
func (n *Node) deleteOut(b *store.Batch, e *outEntry) {
	if e.DirectOnly {
		return // never written
	}
	b.Delete(n.tabs.outbox, outboxKey(e.device, e.Seq))
}
