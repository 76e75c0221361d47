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

// Download receives one blob into a PartFile, verifying each STREAM chunk
// as it completes with the pointer's key and, at the end, the whole blob's
// SHA-256 against the pointer's hash (docs/protocol/files.md §19.4).
//
// The .part file only ever holds, beyond an incomplete last chunk, bytes
// that verified: a chunk that fails is cut off again. Opening a Download
// over an existing .part file re-verifies it and resumes after its last
// whole verified chunk. A Download is not safe for concurrent use.
type Download struct {
	p        Pointer
	f        PartFile
	chunks   int64 // STREAM chunks in the payload
	written  int64 // bytes in f: where the next Write lands
	verified int64 // bytes of f that verified (and are hashed)
	complete bool  // the whole blob is here and its hash matched

	src   partSource
	dec   io.Reader // sequential STREAM reader, positioned at verified
	h     hash.Hash // SHA-256 of f[0:verified]
	plain []byte    // one chunk of plaintext, thrown away
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
		p:      *p,
		f:      f,
		chunks: max(1, (p.EncSize-stream.NonceSize-1)/sealedChunk+1),
		plain:  make([]byte, stream.ChunkSize),
	}
	d.src.f = f
	err = d.verifyPrefix(min(fi.Size(), p.BlobSize))
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrHashMismatch) {
		return nil, err
	}
	d.written = d.verified // an incomplete last chunk is fetched again
	if err := f.Truncate(d.written); err != nil {
		return nil, fmt.Errorf("attach: part file: %w", err)
	}
	return d, nil
}

// Offset is the blob offset where the next Write lands: the number of
// bytes to ask the source to skip.
func (d *Download) Offset() int64 { return d.written }

// Verified is how many bytes of the blob have verified.
func (d *Download) Verified() int64 { return d.verified }

// Complete reports whether the whole blob is here and matched the hash.
func (d *Download) Complete() bool { return d.complete }

// Pointer returns a copy of the pointer the download follows.
func (d *Download) Pointer() *Pointer { p := d.p; return &p }

// Write appends p to the blob at Offset, verifying every chunk it
// completes. If a chunk fails, Write returns an error wrapping ErrCorrupt
// and the chunk's bytes are dropped (Offset goes back to its start; the
// rest of p is not taken). When the last byte arrives Write checks the
// blob's hash; a mismatch wraps ErrHashMismatch and drops the padding.
// Bytes past the blob's end are refused with ErrOverrun.
func (d *Download) Write(p []byte) (int, error) {
	if d.complete && len(p) > 0 {
		return 0, ErrOverrun
	}
	n, over := len(p), false
	if int64(n) > d.p.BlobSize-d.written {
		n, over = int(d.p.BlobSize-d.written), true
	}
	if n > 0 {
		m, err := d.f.WriteAt(p[:n], d.written)
		d.written += int64(m)
		if err != nil {
			return m, fmt.Errorf("attach: writing part file: %w", err)
		}
	}
	before := d.written
	if err := d.advance(); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrHashMismatch) {
			// Whatever of p lies past the new Offset was not kept.
			n -= int(before - d.written)
			return max(0, n), err
		}
		return n, err
	}
	if over {
		return n, ErrOverrun
	}
	return n, nil
}

// verifyPrefix restarts verification from the blob's first byte and
// verifies f[0:have], leaving written = verified at the end of the longest
// good prefix.
func (d *Download) verifyPrefix(have int64) error {
	dec, err := stream.NewReader(&d.src, d.p.Key[:])
	if err != nil {
		return err
	}
	d.dec, d.h = dec, sha256.New()
	d.src.pos, d.src.limit, d.src.h = 0, 0, d.h
	d.verified, d.written, d.complete = 0, have, false
	return d.advance()
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

// advance verifies every whole unit between verified and written. On a
// bad chunk it re-verifies the prefix before it (the STREAM reader cannot
// go back) and cuts f there.
func (d *Download) advance() error {
	for !d.complete && d.verified < d.written {
		if d.verified >= d.p.EncSize {
			if err := d.hashPadding(); err != nil {
				return err
			}
			continue
		}
		end := d.unitEnd(d.verified)
		if d.written < end {
			return nil
		}
		if err := d.verifyChunk(end); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return err
			}
			start := d.verified
			if perr := d.verifyPrefix(start); perr != nil {
				return perr
			}
			if terr := d.f.Truncate(d.written); terr != nil {
				return fmt.Errorf("attach: part file: %w", terr)
			}
			return err
		}
	}
	return nil
}

// verifyChunk decrypts the chunk ending at end (the nonce before it, for
// the first) and checks it has the plaintext length and finality the
// pointer implies.
func (d *Download) verifyChunk(end int64) error {
	i := max(0, (d.verified-stream.NonceSize)/sealedChunk)
	final := i == d.chunks-1
	want := min(int64(stream.ChunkSize), d.p.Size-i*stream.ChunkSize)
	d.src.limit, d.src.err = end, nil
	n, err := d.dec.Read(d.plain)
	if err == nil && int64(n) == want {
		// A Read of nothing reports the end of the payload (io.EOF) once
		// the final chunk is read, nil otherwise.
		_, err = d.dec.Read(d.plain[:0])
		if final && err == io.EOF || !final && err == nil {
			d.verified = end
			if final && d.p.BlobSize == d.p.EncSize {
				return d.finish()
			}
			return nil
		}
	}
	if d.src.err != nil {
		return fmt.Errorf("attach: reading part file: %w", d.src.err)
	}
	return fmt.Errorf("%w: chunk %d of %d", ErrCorrupt, i, d.chunks)
}

// hashPadding hashes the padding from verified to written and, once it is
// all here, checks the blob's hash.
func (d *Download) hashPadding() error {
	d.src.pos, d.src.limit, d.src.err = d.verified, d.written, nil
	if _, err := io.CopyBuffer(io.Discard, &d.src, d.plain); err != nil {
		return fmt.Errorf("attach: reading part file: %w", err)
	}
	d.verified = d.written
	if d.verified == d.p.BlobSize {
		return d.finish()
	}
	return nil
}

// finish checks the SHA-256 of the complete blob. On a mismatch it drops
// the padding, the only bytes no chunk tag covers, or, for a blob without
// padding, the final chunk, so the caller can fetch the end again from
// another source.
func (d *Download) finish() error {
	var sum [HashSize]byte
	d.h.Sum(sum[:0])
	if subtle.ConstantTimeCompare(sum[:], d.p.Hash[:]) == 1 {
		d.complete = true
		return nil
	}
	cut := d.p.EncSize
	if cut == d.p.BlobSize {
		cut = max(0, stream.NonceSize+(d.chunks-1)*sealedChunk)
		if d.chunks == 1 {
			cut = 0
		}
	}
	if err := d.verifyPrefix(cut); err != nil {
		return err
	}
	if err := d.f.Truncate(d.written); err != nil {
		return fmt.Errorf("attach: part file: %w", err)
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
	dec, err := stream.NewReader(io.NewSectionReader(d.f, 0, d.p.EncSize), d.p.Key[:])
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(onlyWriter{out}, dec, make([]byte, stream.ChunkSize))
	if err != nil {
		return fmt.Errorf("attach: decrypting: %w", err)
	}
	if n != d.p.Size {
		return fmt.Errorf("%w: decrypted %d bytes, expected %d", ErrCorrupt, n, d.p.Size)
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

// partSource reads f from pos up to limit, hashing what it returns, for
// the sequential STREAM reader; it records a read error apart, so it is
// not taken for a bad chunk.
type partSource struct {
	f          io.ReaderAt
	h          hash.Hash
	pos, limit int64
	err        error
}

func (s *partSource) Read(p []byte) (int, error) {
	if s.pos >= s.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.limit-s.pos)]
	n, err := s.f.ReadAt(p, s.pos)
	s.h.Write(p[:n])
	s.pos += int64(n)
	if n == len(p) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	s.err = err
	return n, err
}
