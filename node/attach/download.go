package attach

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hushnet/hush/crypto/stream"
)

// sealedChunk is the size of a full STREAM chunk in the blob.
const sealedChunk = stream.ChunkSize + stream.TagSize

// Download errors.
var (
	// ErrCorrupt: a chunk failed authentication; its bytes were dropped.
	ErrCorrupt = errors.New("attach: corrupted chunk")
	// ErrHashMismatch: every chunk verified but the blob's SHA-256 is not
	// the pointer's; the padding was dropped.
	ErrHashMismatch = errors.New("attach: blob hash does not match the pointer")
	// ErrOverrun: more bytes than the blob holds.
	ErrOverrun = errors.New("attach: data past the end of the blob")
	// ErrIncomplete: the blob is not complete and verified yet.
	ErrIncomplete = errors.New("attach: download incomplete")
	// ErrIsDir: the destination is a directory.
	ErrIsDir = errors.New("attach: destination is a directory")
)

// PartFile is the file a download lands in (HOME/files/<hash>.part). An
// *os.File opened for reading and writing, without O_APPEND, is one.
type PartFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
}

// writeBlock is the size of the two blocks a Download holds in memory:
// one receives bytes (verified chunks, then the chunk arriving), the other
// is being hashed and written to the PartFile, on two other goroutines,
// while the first fills.
const writeBlock = 4*sealedChunk + stream.NonceSize

// syncEvery: while a download runs, a PartFile that has a Sync method (an
// *os.File has) is synced in the background each time this many more
// bytes have been written, so the sync that makes the complete blob
// durable finds little left to write.
const syncEvery = 8 << 20

// Download receives one blob into a PartFile, verifying each STREAM chunk
// as it completes with the pointer's key and, at the end, the whole blob's
// SHA-256 against the pointer's hash (docs/protocol/files.md §19.4).
//
// A chunk is verified from memory as its last byte arrives; only verified
// chunks are hashed and written to the PartFile, in blocks of up to
// writeBlock bytes, the hashing and the writing each on a goroutine of its
// own (so receiving and verifying the next block, hashing the last and
// writing it all overlap), so the .part file
// only ever holds bytes that verified. Opening a Download over an existing
// .part file re-verifies it and resumes after its last whole verified
// chunk. A Download is not safe for concurrent use.
type Download struct {
	p        Pointer
	f        PartFile
	flushed  int64 // bytes handed to be hashed and written, all verified
	verified int64 // bytes that verified: flushed, then the start of buf
	written  int64 // where the next Write lands: flushed + len(buf)
	complete bool  // the whole blob is here, written, and its hash matched

	buf      []byte         // blob bytes from flushed on: verified, then an incomplete chunk
	spare    []byte         // the other block: free, or being hashed and written
	inflight chan error     // the result of the block being hashed and written, or nil
	stored   int64          // bytes known to be written to f: flushed once inflight is done
	syncing  chan error     // the result of a background Sync, or nil; only block goroutines start one
	err      error          // sticky: a block failed to be written
	open     *stream.Opener // nil until the nonce is here
	h        hash.Hash      // SHA-256 of blob[0:flushed] once inflight is done
	plain    []byte         // one chunk of plaintext, thrown away
	reading  bool           // verifying what f holds: nothing to write
}

// NewDownload starts or resumes the download of the blob p describes into
// f. It verifies what f already holds and truncates f after the longest
// prefix of whole chunks that verify (a complete blob whose hash is wrong
// loses its padding, or its final chunk if it has none), so Offset is where
// to resume. Only read and write errors fail it; a .part that is damaged is
// cut, not refused.
func NewDownload(p *Pointer, f PartFile) (*Download, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("attach: part file: %w", err)
	}
	d := &Download{
		p:     *p,
		f:     f,
		buf:   make([]byte, 0, writeBlock),
		spare: make([]byte, 0, writeBlock),
		plain: make([]byte, 0, stream.ChunkSize),
	}
	err = d.verifyPrefix(min(fi.Size(), p.BlobSize))
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrHashMismatch) {
		return nil, err
	}
	if err := f.Truncate(d.flushed); err != nil {
		return nil, fmt.Errorf("attach: part file: %w", err)
	}
	return d, nil
}

// Offset is the blob offset where the next Write lands: the number of
// bytes to ask the source to skip.
func (d *Download) Offset() int64 { return d.written }

// Verified is how many bytes of the blob have verified (the last of them
// may not be written yet: see Flush).
func (d *Download) Verified() int64 { return d.verified }

// Stored is how many bytes of the blob are known to be written to the
// PartFile: what a resume would find if the process stopped now without
// a Flush. The verified bytes between Stored and Verified are in memory
// (at most two blocks of about 256 KiB).
func (d *Download) Stored() int64 { return d.stored }

// Complete reports whether the whole blob is here, written to the
// PartFile, and matched the hash.
func (d *Download) Complete() bool { return d.complete }

// Pointer returns a copy of the pointer the download follows.
func (d *Download) Pointer() *Pointer { p := d.p; return &p }

// Write appends p to the blob at Offset, verifying every chunk it
// completes. If a chunk fails, Write returns an error wrapping ErrCorrupt
// and the chunk's bytes are dropped (Offset goes back to its start; the
// rest of p is not taken). When the last byte arrives Write checks the
// blob's hash; a mismatch wraps ErrHashMismatch and drops the padding.
// Bytes past the blob's end are refused with ErrOverrun. Verified chunks
// are written to the PartFile in blocks, some after Write returns; an
// error writing one is returned by a later Write or Flush, and by every
// call after it.
func (d *Download) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.complete && len(p) > 0 {
		return 0, ErrOverrun
	}
	n, over := len(p), false
	if int64(n) > d.p.BlobSize-d.written {
		n, over = int(d.p.BlobSize-d.written), true
	}
	start := d.written
	for taken := 0; taken < n; {
		if len(d.buf) == cap(d.buf) {
			if err := d.launch(); err != nil {
				return taken, err
			}
		}
		k := copy(d.buf[len(d.buf):cap(d.buf)], p[taken:n])
		d.buf = d.buf[:len(d.buf)+k]
		d.written += int64(k)
		taken += k
		if err := d.advance(); err != nil {
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrHashMismatch) {
				// Whatever of p lies past the new Offset was not kept.
				return int(max(0, d.written-start)), err
			}
			return taken, err
		}
	}
	if over {
		return n, ErrOverrun
	}
	return n, nil
}

// Flush writes every verified byte to the PartFile and waits until it is
// written (and until a background sync, if one runs, ends). Write calls it
// at the end and after a bad chunk; a caller that stops before the blob is
// complete calls it to keep what verified for a resume.
func (d *Download) Flush() error {
	if err := d.launch(); err != nil {
		return err
	}
	if err := d.wait(); err != nil {
		return err
	}
	if d.syncing != nil {
		if err := <-d.syncing; err != nil {
			d.err = fmt.Errorf("attach: syncing part file: %w", err)
		}
		d.syncing = nil
	}
	return d.err
}

// launch waits for the block in flight, then hands the verified bytes of
// buf to two goroutines, one hashing them and one (unless reading)
// writing them at flushed; the incomplete chunk after them moves to the
// other block.
func (d *Download) launch() error {
	if err := d.wait(); err != nil {
		return err
	}
	k := d.verified - d.flushed
	if k == 0 {
		return nil
	}
	block, off, write := d.buf[:k], d.flushed, !d.reading
	next := d.spare[:copy(d.spare[:cap(d.spare)], d.buf[k:])]
	d.buf, d.spare = next, d.buf[:0]
	d.flushed += k
	done := make(chan error, 1)
	d.inflight = done
	// The block is hashed on one goroutine while it is written on
	// another: the hash sees the blocks in order, since the next waits
	// for both.
	hashed := make(chan struct{})
	go func() {
		d.h.Write(block)
		close(hashed)
	}()
	go func() {
		var err error
		if write {
			if _, werr := d.f.WriteAt(block, off); werr != nil {
				err = fmt.Errorf("attach: writing part file: %w", werr)
			} else if (off+k)/syncEvery != off/syncEvery {
				err = d.syncInBackground()
			}
		}
		<-hashed
		done <- err
	}()
	return nil
}

// syncInBackground starts syncing the PartFile on a goroutine of its own,
// unless a sync already runs, and returns the error of the last one if it
// failed (a failed sync may have lost written bytes: the download must
// not complete). Only the block goroutine calls it.
func (d *Download) syncInBackground() error {
	f, ok := d.f.(interface{ Sync() error })
	if !ok {
		return nil
	}
	if d.syncing != nil {
		select {
		case err := <-d.syncing:
			d.syncing = nil
			if err != nil {
				return fmt.Errorf("attach: syncing part file: %w", err)
			}
		default:
			return nil // the last one still runs
		}
	}
	ch := make(chan error, 1)
	d.syncing = ch
	go func() { ch <- f.Sync() }()
	return nil
}

// wait waits for the block in flight, if any, and returns the sticky
// error.
func (d *Download) wait() error {
	if d.inflight != nil {
		if err := <-d.inflight; err != nil && d.err == nil {
			d.err = err
		}
		d.inflight = nil
	}
	if d.err == nil && !d.reading {
		d.stored = d.flushed
	}
	return d.err
}

// verifyPrefix restarts verification from the blob's first byte and
// verifies f[0:have], leaving flushed = verified = written at the end of
// the longest good prefix.
func (d *Download) verifyPrefix(have int64) (err error) {
	if err := d.wait(); err != nil {
		return err
	}
	d.open, d.h = nil, sha256.New()
	d.flushed, d.verified, d.written, d.complete = 0, 0, 0, false
	d.buf = d.buf[:0]
	d.reading = true
	defer func() {
		if ferr := d.Flush(); err == nil {
			err = ferr
		}
		d.reading = false
		d.written = d.verified // an incomplete last chunk is fetched again
		d.stored = d.flushed
		d.buf = d.buf[:0]
	}()
	for d.written < have && !d.complete {
		if len(d.buf) == cap(d.buf) {
			if err := d.launch(); err != nil {
				return err
			}
		}
		room := d.buf[len(d.buf):cap(d.buf)]
		k := int(min(int64(len(room)), have-d.written))
		m, err := d.f.ReadAt(room[:k], d.written)
		if m < k {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("attach: reading part file: %w", err)
		}
		d.buf = d.buf[:len(d.buf)+k]
		d.written += int64(k)
		if err := d.advance(); err != nil {
			return err
		}
	}
	return nil
}

// unitEnd returns the end of the unit of the blob that starts at off: the
// nonce and the first chunk together, a chunk, or (past the payload) the
// padding, which only the final hash checks.
func (d *Download) unitEnd(off int64) int64 {
	if off >= d.p.EncSize {
		return d.p.BlobSize
	}
	i := max(0, (off-stream.NonceSize)/sealedChunk)
	return min(stream.NonceSize+(i+1)*sealedChunk, d.p.EncSize)
}

// advance verifies every whole unit between verified and written. A bad
// chunk is dropped from memory and the verified bytes before it are
// written, so the .part ends and Offset is at its start.
func (d *Download) advance() error {
	for !d.complete && d.verified < d.written {
		if d.verified >= d.p.EncSize {
			d.verified = d.written // padding: only the hash checks it
		} else {
			end := d.unitEnd(d.verified)
			if d.written < end {
				return nil
			}
			if err := d.verifyChunk(end); err != nil {
				d.buf = d.buf[:d.verified-d.flushed]
				d.written = d.verified
				if ferr := d.Flush(); ferr != nil {
					return ferr
				}
				return err
			}
		}
		if d.verified == d.p.BlobSize {
			return d.finish()
		}
	}
	return nil
}

// verifyChunk opens the chunk that ends at end (the nonce before it, for
// the first) from memory, at the index and finality its place in the
// pointer's payload gives it.
func (d *Download) verifyChunk(end int64) error {
	unit := d.buf[d.verified-d.flushed : end-d.flushed]
	if d.verified == 0 {
		o, err := stream.NewOpener(d.p.Key[:], unit[:stream.NonceSize], d.p.EncSize)
		if err != nil {
			return err
		}
		d.open, unit = o, unit[stream.NonceSize:]
	}
	i := max(0, (d.verified-stream.NonceSize)/sealedChunk)
	if _, err := d.open.Open(d.plain[:0], unit, i); err != nil {
		return fmt.Errorf("%w: chunk %d of %d", ErrCorrupt, i, d.open.Chunks())
	}
	d.verified = end
	return nil
}

// finish writes the rest of the complete blob and checks its SHA-256. On
// a mismatch it drops the padding, the only bytes no chunk tag covers, or,
// for a blob without padding, the final chunk, so the caller can fetch the
// end again from another source.
func (d *Download) finish() error {
	if err := d.Flush(); err != nil {
		return err
	}
	var sum [HashSize]byte
	d.h.Sum(sum[:0])
	if subtle.ConstantTimeCompare(sum[:], d.p.Hash[:]) == 1 {
		d.complete = true
		return nil
	}
	cut := d.p.EncSize
	if cut == d.p.BlobSize {
		i := max(0, (cut-stream.NonceSize-1)/sealedChunk)
		cut = stream.NonceSize + i*sealedChunk
		if i == 0 {
			cut = 0
		}
	}
	// Hash the bytes before the cut again, from f (a rare path).
	if err := d.f.Truncate(cut); err != nil {
		return fmt.Errorf("attach: part file: %w", err)
	}
	if err := d.verifyPrefix(cut); err != nil {
		return err
	}
	return ErrHashMismatch
}

// DecryptTo decrypts the complete, verified blob into path: it writes
// path + ".hush-part" in the same directory and renames it to path only
// once the whole plaintext is written and synced, so nothing
// half-written is ever at path. On any error the temporary file is
// removed. A path that is a directory is refused.
func (d *Download) DecryptTo(path string) (err error) {
	if !d.complete {
		return ErrIncomplete
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%w: %s", ErrIsDir, path)
	}
	tmp := filepath.Join(filepath.Dir(path), filepath.Base(path)+".hush-part")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	defer func() {
		if out != nil {
			out.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := d.Decrypt(out); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	cerr := out.Close()
	out = nil
	if cerr != nil {
		return fmt.Errorf("attach: %w", cerr)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return nil
}

// Decrypt writes the complete, verified blob's plaintext to w (the web
// UI streams a file to the browser so, with nothing on disk). A failure
// part way leaves w with a prefix of the file.
func (d *Download) Decrypt(w io.Writer) error {
	if !d.complete {
		return ErrIncomplete
	}
	dec, err := stream.NewReader(io.NewSectionReader(d.f, 0, d.p.EncSize), d.p.Key[:])
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(onlyWriter{w}, dec, make([]byte, stream.ChunkSize))
	if err != nil {
		return fmt.Errorf("attach: decrypting: %w", err)
	}
	if n != d.p.Size {
		return fmt.Errorf("%w: decrypted %d bytes, expected %d", ErrCorrupt, n, d.p.Size)
	}
	return nil
}
