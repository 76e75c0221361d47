package store

import (
	"bufio"
	"slices"
	"sync"

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
// through a buffer, and journal files through journalFile (below).
type bufferedTables struct {
	storage.Storage
	journals *journals
}

func (s bufferedTables) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil {
		return w, err
	}
	switch fd.Type {
	case storage.TypeTable:
		return &bufferedWriter{w: w, b: bufio.NewWriterSize(w, tableWriteBuffer)}, nil
	case storage.TypeJournal:
		return s.journals.add(w), nil
	}
	return w, err
}

// journals are the journal files goleveldb has open: the one it writes
// and, while it moves to a new one (a full memory table), the one it
// leaves. DB.Sync syncs them without going through goleveldb, so it
// neither writes a record nor waits behind goleveldb's writes.
type journals struct {
	mu   sync.Mutex
	open []*journalFile
}

// journalFile is a journal file. goleveldb closes the journal it leaves
// without syncing it; a journal here is synced before it is closed, so
// what is on disk stays a prefix of what was written: a sync of the
// open journals makes every earlier write durable, whichever journal
// holds it. It costs one fsync per memory table (16 MiB).
type journalFile struct {
	storage.Writer
	js       *journals
	mu       sync.Mutex // orders Sync and Close
	closed   bool
	closeErr error // the sync at close
}

func (js *journals) add(w storage.Writer) *journalFile {
	f := &journalFile{Writer: w, js: js}
	js.mu.Lock()
	js.open = append(js.open, f)
	js.mu.Unlock()
	return f
}

// sync syncs every open journal; one closed meanwhile was synced by its
// Close.
func (js *journals) sync() error {
	js.mu.Lock()
	open := slices.Clone(js.open)
	js.mu.Unlock()
	for _, f := range open {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func (f *journalFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return f.closeErr
	}
	return f.Writer.Sync()
}

func (f *journalFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return f.closeErr
	}
	f.closed = true
	f.closeErr = f.Writer.Sync()
	err := f.Writer.Close()
	f.js.mu.Lock()
	f.js.open = slices.DeleteFunc(f.js.open, func(o *journalFile) bool { return o == f })
	f.js.mu.Unlock()
	if f.closeErr != nil {
		return f.closeErr
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
