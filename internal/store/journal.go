package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/syndtr/goleveldb/leveldb/journal"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// ErrJournalDamaged: the journal of recent writes (db/NNNNNN.log) is
// damaged or missing. goleveldb would drop the damaged part silently and
// open with data missing; Open refuses instead, and Repair keeps what can
// be read and reports what was lost. The error names the file, the kind
// of damage and where it starts.
var ErrJournalDamaged = errors.New("store: journal of recent writes damaged")

// The journal format (goleveldb's, LevelDB's log format): 32 KiB blocks of
// chunks, each a 7-byte header (masked CRC-32C of type and payload, payload
// length, type) and its payload; a record is one full chunk or a first,
// middles and a last. A block's tail shorter than a header is padding.
const (
	journalBlockSize  = 32 * 1024
	journalHeaderSize = 7
	chunkFull         = 1
	chunkFirst        = 2
	chunkMiddle       = 3
	chunkLast         = 4
)

// journalDamage describes the first damage found in a journal file.
type journalDamage struct {
	file   string // e.g. 000003.log
	reason string
	offset int64 // where the damage starts; -1 for a missing file
	size   int64 // the file's size
}

func (d *journalDamage) error() error {
	if d.offset < 0 {
		return fmt.Errorf("%w: %s: %s", ErrJournalDamaged, d.file, d.reason)
	}
	return fmt.Errorf("%w: %s: %s at byte %d of %d", ErrJournalDamaged, d.file, d.reason, d.offset, d.size)
}

// checkJournal reads a journal's chunks as goleveldb's reader would and
// returns the first damage, or nil. One thing is not damage: a tail cut
// off by a crash or a full disk in the middle of a write (the file ends
// inside its last record or chunk header, or from some point on holds
// only zeros). That write was never acknowledged, and goleveldb drops it
// as it should. Everything else — a checksum mismatch, a bad chunk type
// or length, a record missing parts in the middle — means bytes that were
// written and synced have changed, and the records they held would be
// dropped silently.
//
// A damaged length field in the very last chunk of the file that points
// past its end reads like a cut-off write; that case cannot be told apart.
func checkJournal(data []byte) (reason string, offset int64) {
	size := len(data)
	inRecord := false
	for off := 0; off < size; {
		blockEnd := (off/journalBlockSize + 1) * journalBlockSize
		if blockEnd-off < journalHeaderSize {
			off = blockEnd // padding at a block's end
			continue
		}
		if off+journalHeaderSize > size {
			return "", -1 // a header cut off at the end: an unfinished write
		}
		h := data[off : off+journalHeaderSize]
		sum := binary.LittleEndian.Uint32(h[0:4])
		length := int(binary.LittleEndian.Uint16(h[4:6]))
		typ := h[6]
		if sum == 0 && length == 0 && typ == 0 {
			if allZero(data[off:]) {
				return "", -1 // a zero-filled tail: an unfinished write
			}
			return "zeroed chunk header", int64(off)
		}
		if typ < chunkFull || typ > chunkLast {
			return fmt.Sprintf("invalid chunk type %d", typ), int64(off)
		}
		end := off + journalHeaderSize + length
		if end > blockEnd {
			return "chunk longer than its block", int64(off)
		}
		if end > size {
			return "", -1 // the file ends inside its last chunk: an unfinished write
		}
		if util.NewCRC(data[off+6:end]).Value() != sum {
			return "checksum mismatch", int64(off)
		}
		switch {
		case (typ == chunkFull || typ == chunkFirst) && inRecord:
			return "record missing its last part", int64(off)
		case (typ == chunkMiddle || typ == chunkLast) && !inRecord:
			return "record missing its first part", int64(off)
		}
		inRecord = typ == chunkFirst || typ == chunkMiddle
		off = end
	}
	// Ending inside a record (inRecord) is a crash between the blocks
	// of one large write: unfinished, never acknowledged.
	return "", -1
}

func allZero(b []byte) bool {
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

// checkJournals checks every journal in stor, and that the journal the
// manifest names exists (goleveldb treats a missing one as empty). It
// returns the first damage found, or nil.
func checkJournals(stor storage.Storage) (*journalDamage, error) {
	fds, err := stor.List(storage.TypeJournal)
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		data, err := readStorageFile(stor, fd)
		if err != nil {
			return nil, err
		}
		if reason, off := checkJournal(data); reason != "" {
			return &journalDamage{file: journalName(fd.Num), reason: reason, offset: off, size: int64(len(data))}, nil
		}
	}
	num, ok := manifestJournal(stor)
	if ok && num != 0 && !slices.ContainsFunc(fds, func(fd storage.FileDesc) bool { return fd.Num == num }) {
		return &journalDamage{file: journalName(num), reason: "missing (the manifest names it; the writes it held since the last flush to a table are gone)", offset: -1}, nil
	}
	return nil, nil
}

func journalName(num int64) string { return fmt.Sprintf("%06d.log", num) }

func readStorageFile(stor storage.Storage, fd storage.FileDesc) ([]byte, error) {
	r, err := stor.Open(fd)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// manifestJournal returns the journal number the current manifest names
// (goleveldb replays that journal and later ones at open). ok is false
// when there is no manifest yet or it cannot be read; goleveldb then
// reports the manifest's own damage.
func manifestJournal(stor storage.Storage) (num int64, ok bool) {
	fd, err := stor.GetMeta()
	if err != nil {
		return 0, false
	}
	data, err := readStorageFile(stor, fd)
	if err != nil {
		return 0, false
	}
	jr := journal.NewReader(bytes.NewReader(data), nil, true, true)
	for {
		r, err := jr.Next()
		if err == io.EOF {
			return num, ok
		}
		if err != nil {
			return 0, false
		}
		rec, err := io.ReadAll(r)
		if err != nil {
			return 0, false
		}
		n, has, good := recordJournalNum(rec)
		if !good {
			return 0, false
		}
		if has {
			num, ok = n, true
		}
	}
}

// recordJournalNum decodes one manifest record (goleveldb's
// sessionRecord encoding) and returns its journal number, if it sets one.
func recordJournalNum(rec []byte) (num int64, has, good bool) {
	r := bytes.NewReader(rec)
	uv := func() (uint64, bool) {
		x, err := binary.ReadUvarint(r)
		return x, err == nil
	}
	skipBytes := func() bool {
		n, ok := uv()
		if !ok || n > uint64(r.Len()) {
			return false
		}
		_, err := r.Seek(int64(n), io.SeekCurrent)
		return err == nil
	}
	for r.Len() > 0 {
		tag, ok := uv()
		if !ok {
			return 0, false, false
		}
		switch tag {
		case 1: // comparer name
			ok = skipBytes()
		case 2: // journal number
			var x uint64
			x, ok = uv()
			num, has = int64(x), true
		case 3, 4, 9: // next file number, sequence number, previous journal
			_, ok = uv()
		case 5: // compaction pointer: level, key
			if _, ok = uv(); ok {
				ok = skipBytes()
			}
		case 6: // deleted table: level, number
			if _, ok = uv(); ok {
				_, ok = uv()
			}
		case 7: // added table: level, number, size, smallest, largest
			for range 3 {
				if _, ok = uv(); !ok {
					break
				}
			}
			ok = ok && skipBytes() && skipBytes()
		default:
			return 0, false, false
		}
		if !ok {
			return 0, false, false
		}
	}
	return num, has, true
}
