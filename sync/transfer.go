package sync

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"

	"github.com/hushnet/hush/crypto/codec"
)

// Section is a part of the history snapshot; sections come in this order
// (docs/protocol/sync.md §18.4).
type Section uint8

// Snapshot sections.
const (
	SectionDeviceList Section = 1 // key: empty
	SectionDeviceInfo Section = 2 // key: device ID
	SectionSettings   Section = 3 // key: setting key
	SectionContacts   Section = 4 // key: account ID
	SectionGroups     Section = 5 // key: group ID (keys), group ID ‖ op hash (ops)
	SectionMarkers    Section = 6 // key: conversation
	SectionMessages   Section = 7 // key: (2⁶⁴−1−time_ms) ‖ message ID, newest first
	sectionEnd        Section = 8
)

// Transfer limits.
const (
	// MaxCursorKey bounds a cursor's key.
	MaxCursorKey = 64
	// MaxChunkItems bounds the items of one chunk.
	MaxChunkItems = 1000
	// DefaultChunkBytes is how many bytes of items a producer packs into a
	// chunk by default (at least one item, whatever its size).
	DefaultChunkBytes = 192 << 10
	// ChunkWindow is how many chunks a producer may send ahead of the
	// consumer's wants.
	ChunkWindow = 4
)

// ErrTransferGap: a chunk starts after the consumer's cursor, so items
// would be skipped. The consumer asks again from its cursor.
var ErrTransferGap = errors.New("sync: history chunk does not continue from the cursor")

// Cursor is a position in the snapshot order: the section, then the key
// (bytes compared). The zero Cursor is before everything.
type Cursor struct {
	Section Section
	Key     []byte
}

// Compare orders cursors.
func (c Cursor) Compare(o Cursor) int {
	return cmp.Or(cmp.Compare(c.Section, o.Section), bytes.Compare(c.Key, o.Key))
}

func (c Cursor) encode(w *codec.Writer) {
	w.U8(uint8(c.Section))
	w.Bytes16(c.Key)
}

func readCursor(r *codec.Reader) Cursor {
	c := Cursor{Section: Section(r.U8())}
	c.Key = codec.Clone(r.Bytes16(MaxCursorKey))
	if len(c.Key) == 0 {
		c.Key = nil
	}
	return c
}

func (c Cursor) check() error {
	if c.Section >= sectionEnd || len(c.Key) > MaxCursorKey || c.Section == 0 && len(c.Key) != 0 {
		return fmt.Errorf("cursor out of range")
	}
	return nil
}

// Item is one snapshot item: where it sits and its sync message encoding.
type Item struct {
	Cursor  Cursor
	Message []byte
}

// Source is the existing device's live view of what it holds, in snapshot
// order. The node implements it over its store; Replica implements it in
// memory.
type Source interface {
	// Items returns up to max items strictly after after, in order,
	// leaving out messages older than sinceMS (Unix ms; 0: none left out).
	Items(after Cursor, sinceMS uint64, max int) ([]Item, error)
	// Remaining counts the items strictly after after, with the same
	// filter.
	Remaining(after Cursor, sinceMS uint64) (uint64, error)
}

// Target is where a consumer applies items: the new device's merge state.
// Apply must leave the target unchanged when it returns an error.
type Target interface {
	Apply(m Message) (changed bool, err error)
}

// Want asks for the items after a cursor (and is the acknowledgement of
// everything up to it).
type Want struct {
	After   Cursor
	SinceMS uint64
}

// Marshal encodes the want record.
func (w *Want) Marshal() []byte {
	cw := codec.NewWriter(1 + 3 + len(w.After.Key) + 8)
	cw.U8(byte(RecordWant))
	w.After.encode(cw)
	cw.U64(w.SinceMS)
	return cw.Bytes()
}

// ParseWant decodes a want record.
func ParseWant(record []byte) (*Want, error) {
	b, err := recordBody(record, RecordWant)
	if err != nil {
		return nil, err
	}
	r := codec.NewReader(b)
	w := &Want{After: readCursor(r), SinceMS: r.U64()}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: want: %w", ErrMalformed, err)
	}
	if err := w.After.check(); err != nil {
		return nil, fmt.Errorf("%w: want: %w", ErrMalformed, err)
	}
	return w, nil
}

// Chunk is a run of consecutive snapshot items after After, the last of
// which is at Last; Remaining items follow it, and End says none do.
type Chunk struct {
	After     Cursor
	Last      Cursor
	Remaining uint64
	End       bool
	Items     []Item
}

// Marshal encodes the chunk record.
func (c *Chunk) Marshal() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: chunk: %w", ErrMalformed, err)
	}
	w := codec.NewWriter(1024)
	w.U8(byte(RecordChunk))
	c.After.encode(w)
	c.Last.encode(w)
	w.U64(c.Remaining)
	w.Bool(c.End)
	w.U16(uint16(len(c.Items)))
	for _, it := range c.Items {
		it.Cursor.encode(w)
		w.Bytes32(it.Message)
	}
	if w.Len() > MaxRecordSize {
		return nil, fmt.Errorf("%w: chunk of %d bytes", ErrTooLarge, w.Len())
	}
	return w.Bytes(), nil
}

// ParseChunk decodes a chunk record. Its items are checked to be in
// strictly increasing order after After and up to Last; the messages
// themselves are parsed when applied.
func ParseChunk(record []byte) (*Chunk, error) {
	if len(record) > MaxRecordSize {
		return nil, fmt.Errorf("%w: chunk of %d bytes", ErrTooLarge, len(record))
	}
	b, err := recordBody(record, RecordChunk)
	if err != nil {
		return nil, err
	}
	r := codec.NewReader(b)
	c := &Chunk{After: readCursor(r), Last: readCursor(r), Remaining: r.U64(), End: r.Bool()}
	n := r.Count(MaxChunkItems)
	for range n {
		it := Item{Cursor: readCursor(r)}
		it.Message = codec.Clone(r.Bytes32(MaxMessageSize))
		c.Items = append(c.Items, it)
	}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: chunk: %w", ErrMalformed, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%w: chunk: %w", ErrMalformed, err)
	}
	return c, nil
}

func (c *Chunk) check() error {
	if len(c.Items) > MaxChunkItems {
		return fmt.Errorf("%d items", len(c.Items))
	}
	if err := c.After.check(); err != nil {
		return err
	}
	if err := c.Last.check(); err != nil {
		return err
	}
	if c.End != (c.Remaining == 0) {
		return fmt.Errorf("end flag and remaining count disagree")
	}
	if len(c.Items) == 0 {
		if !c.End || c.Last.Compare(c.After) != 0 {
			return fmt.Errorf("an empty chunk must end the transfer at its start")
		}
		return nil
	}
	prev := c.After
	for _, it := range c.Items {
		if err := it.Cursor.check(); err != nil {
			return err
		}
		if it.Cursor.Compare(prev) <= 0 {
			return fmt.Errorf("items not in increasing order")
		}
		if len(it.Message) > MaxMessageSize {
			return fmt.Errorf("item too large")
		}
		prev = it.Cursor
	}
	if prev.Compare(c.Last) != 0 {
		return fmt.Errorf("last cursor is not the last item's")
	}
	return nil
}

// ProducerConfig bounds the chunks a producer makes. The zero value uses
// the defaults.
type ProducerConfig struct {
	// MaxItems defaults to MaxChunkItems (and may not exceed it).
	MaxItems int
	// MaxBytes defaults to DefaultChunkBytes: items are added while their
	// total stays within it, at least one.
	MaxBytes int
}

// Producer serves history chunks from a Source. It keeps no state between
// chunks: every chunk answers one Want, so a resume, after either side was
// killed, is a Want with the consumer's cursor.
type Producer struct {
	src Source
	cfg ProducerConfig
}

// NewProducer returns a producer over src.
func NewProducer(src Source, cfg ProducerConfig) *Producer {
	if cfg.MaxItems <= 0 || cfg.MaxItems > MaxChunkItems {
		cfg.MaxItems = MaxChunkItems
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultChunkBytes
	}
	return &Producer{src: src, cfg: cfg}
}

// Next returns the chunk that answers w. To send ahead (up to ChunkWindow
// chunks), call it again with the Last of the chunk before.
func (p *Producer) Next(w Want) (*Chunk, error) {
	if err := w.After.check(); err != nil {
		return nil, fmt.Errorf("%w: want: %w", ErrMalformed, err)
	}
	items, err := p.src.Items(w.After, w.SinceMS, p.cfg.MaxItems)
	if err != nil {
		return nil, fmt.Errorf("sync: history source: %w", err)
	}
	size := 0
	for i, it := range items {
		if len(it.Message) > MaxMessageSize {
			return nil, fmt.Errorf("%w: history item of %d bytes", ErrTooLarge, len(it.Message))
		}
		size += len(it.Message)
		if i > 0 && size > p.cfg.MaxBytes {
			items = items[:i]
			break
		}
	}
	c := &Chunk{After: w.After, Last: w.After, Items: items}
	if len(items) > 0 {
		c.Last = items[len(items)-1].Cursor
		if c.Remaining, err = p.src.Remaining(c.Last, w.SinceMS); err != nil {
			return nil, fmt.Errorf("sync: history source: %w", err)
		}
	}
	c.End = c.Remaining == 0
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("sync: history source out of order: %w", err)
	}
	return c, nil
}

// TransferState is the new device's progress, persisted in the same store
// batch as the items it covers.
type TransferState struct {
	// Cursor is the last item applied; SinceMS the history window chosen
	// at link time.
	Cursor  Cursor
	SinceMS uint64
	// Done counts the items applied, Total the items known so far (done
	// plus what the producer said remains).
	Done, Total uint64
	// Complete is set by the chunk that ends the transfer.
	Complete bool
}

// Marshal encodes the state for the store:
// 0x01 ‖ 'T' ‖ cursor ‖ since u64 ‖ done u64 ‖ total u64 ‖ complete bool.
func (s *TransferState) Marshal() []byte {
	w := codec.NewWriter(32 + len(s.Cursor.Key))
	w.U8(MessageVersion)
	w.U8('T')
	s.Cursor.encode(w)
	w.U64(s.SinceMS)
	w.U64(s.Done)
	w.U64(s.Total)
	w.Bool(s.Complete)
	return w.Bytes()
}

// ParseTransferState decodes TransferState.Marshal.
func ParseTransferState(b []byte) (*TransferState, error) {
	r := codec.NewReader(b)
	if v, t := r.U8(), r.U8(); r.Err() == nil && (v != MessageVersion || t != 'T') {
		return nil, fmt.Errorf("%w: transfer state header", ErrMalformed)
	}
	s := &TransferState{Cursor: readCursor(r), SinceMS: r.U64(), Done: r.U64(), Total: r.U64(), Complete: r.Bool()}
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("%w: transfer state: %w", ErrMalformed, err)
	}
	if err := s.Cursor.check(); err != nil || s.Done > s.Total {
		return nil, fmt.Errorf("%w: transfer state out of range", ErrMalformed)
	}
	return s, nil
}

// Consumer applies history chunks to a Target, once each, from a
// persisted TransferState.
type Consumer struct {
	target Target
	st     TransferState
}

// NewConsumer resumes from st (the zero state for a fresh transfer).
func NewConsumer(t Target, st TransferState) *Consumer {
	st.Cursor.Key = codec.Clone(st.Cursor.Key)
	return &Consumer{target: t, st: st}
}

// Want is what to ask the producer for next (and the acknowledgement of
// everything applied so far).
func (c *Consumer) Want() Want { return Want{After: c.st.Cursor, SinceMS: c.st.SinceMS} }

// State returns the state to persist with what Apply applied.
func (c *Consumer) State() TransferState {
	s := c.st
	s.Cursor.Key = codec.Clone(c.st.Cursor.Key)
	return s
}

// Progress returns the items applied and the items known in all.
func (c *Consumer) Progress() (done, total uint64) { return c.st.Done, c.st.Total }

// Complete reports whether the chunk that ends the transfer was applied.
func (c *Consumer) Complete() bool { return c.st.Complete }

// Apply applies the items of ch after the cursor, in order, and moves the
// cursor to ch.Last. A chunk that ends at or before the cursor (a
// duplicate, or one sent ahead before a resume) changes nothing; one that
// starts after it is ErrTransferGap. It returns how many items it applied.
// If an item fails to parse or apply, the consumer's state is left as it
// was: a node discards the store batch and asks again (items an in-memory
// target already took stay, which is harmless: applying them again changes
// nothing).
func (c *Consumer) Apply(ch *Chunk) (int, error) {
	if err := ch.check(); err != nil {
		return 0, fmt.Errorf("%w: chunk: %w", ErrMalformed, err)
	}
	if c.st.Complete {
		return 0, nil
	}
	if ch.After.Compare(c.st.Cursor) > 0 {
		return 0, fmt.Errorf("%w: chunk after section %d, cursor at section %d", ErrTransferGap, ch.After.Section, c.st.Cursor.Section)
	}
	if len(ch.Items) == 0 {
		// Nothing after After: the end, if After is where we are.
		if ch.After.Compare(c.st.Cursor) == 0 {
			c.st.Complete, c.st.Total = true, c.st.Done
		}
		return 0, nil
	}
	if ch.Last.Compare(c.st.Cursor) <= 0 {
		return 0, nil
	}
	var msgs []Message
	for _, it := range ch.Items {
		if it.Cursor.Compare(c.st.Cursor) <= 0 {
			continue
		}
		m, err := Parse(it.Message)
		if err != nil {
			return 0, fmt.Errorf("sync: history item: %w", err)
		}
		msgs = append(msgs, m)
	}
	for _, m := range msgs {
		if _, err := c.target.Apply(m); err != nil {
			return 0, fmt.Errorf("sync: history item %s: %w", m.Kind(), err)
		}
	}
	c.st.Cursor = Cursor{Section: ch.Last.Section, Key: codec.Clone(ch.Last.Key)}
	c.st.Done += uint64(len(msgs))
	c.st.Total = c.st.Done + ch.Remaining
	c.st.Complete = ch.End
	return len(msgs), nil
}
