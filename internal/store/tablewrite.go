package store

import (
	"bufio"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// goleveldb writes a table file one block (4 KiB) at a time, each a
// write system call of its own: flushing a 16 MiB memory table and
// every compaction made about 4,000 calls per 16 MiB, 6 % of the CPU
// of a busy relay's deposits (issue 13). Table files are written
// through a buffer instead, flushed in tableWriteBuffer pieces and
// before goleveldb syncs or closes the file. goleveldb reads a table
// only once it is finished (synced and closed), and a write error comes
// back from the flush, Sync or Close, where goleveldb checks it too.
// Journal and manifest files are not buffered: goleveldb writes and
// syncs them in its own pieces.

// tableWriteBuffer is the size of a table file's write buffer.
const tableWriteBuffer = 256 << 10

// bufferedTables wraps a storage so that table files are written
// through a buffer.
type bufferedTables struct{ storage.Storage }

func (s bufferedTables) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil {
		return w, err
	}
	switch fd.Type {
	case storage.TypeTable:
		return &bufferedWriter{w: w, b: bufio.NewWriterSize(w, tableWriteBuffer)}, nil
	case storage.TypeJournal:
		return syncedOnClose{w}, nil
	}
	return w, err
}

// syncedOnClose is a journal file: goleveldb closes the journal it
// leaves for a new one (a full memory table) without syncing it, so an
// unsynced write in it could be lost to a power cut while a synced write
// in the new journal survives. Syncing it at close keeps what is on disk
// a prefix of what was written: a synced write (DB.Sync) makes every
// write before it durable, whichever journal holds it. It costs one
// fsync per memory table (16 MiB).
type syncedOnClose struct{ storage.Writer }

func (f syncedOnClose) Close() error {
	err := f.Writer.Sync()
	if cerr := f.Writer.Close(); err == nil {
		err = cerr
	}
	return err
}

// bufferedWriter is a table file being written.
type bufferedWriter struct {
	w storage.Writer
	b *bufio.Writer
}

func (f *bufferedWriter) Write(p []byte) (int, error) { return f.b.Write(p) }

func (f *bufferedWriter) Sync() error {
	if err := f.b.Flush(); err != nil {
		return err
	}
	return f.w.Sync()
}

func (f *bufferedWriter) Close() error {
	err := f.b.Flush()
	if cerr := f.w.Close(); err == nil {
		err = cerr
	}
	return err
}
