package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	"github.com/hushnet/hush/internal/wire"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// Downloading attachments (docs/protocol/files.md §19.4): into
// HOME/files/<hash>.part, each chunk verified as it lands (attach.Download),
// resumed after the last verified chunk, renamed to <hash>.blob when the
// blob's hash matched; saved to a path the user names by SaveFile.

// Download tuning.
const (
	fetchRequest  = 1 << 20 // bytes asked for per request
	fetchWindow   = 4       // requests in flight (files.md §19.3)
	fetchProgress = 1 << 20 // an update event at most every this many bytes
	fetchDialTime = 30 * time.Second
	// A download that failed for a reason that may pass is tried again
	// after fetchRetryFirst, doubling up to fetchRetryMax, for
	// fetchPatience in all.
	fetchRetryFirst = time.Second
	fetchRetryMax   = 15 * time.Second
	fetchPatience   = 10 * time.Minute
	// AutoFetchSize is the largest file fetched as soon as it is offered,
	// unless a conversation says otherwise (autofetch.go); larger ones
	// wait for FetchFile (hush file get).
	AutoFetchSize = 16 << 20
)

// fetching is the set of downloads running, by blob hash. Node.mu
// guards it.
type fetching map[[attach.HashSize]byte]bool

// FetchFile starts (or continues) downloading a message's file and
// returns the message at once; WaitFile waits for the end.
func (n *Node) FetchFile(ctx context.Context, id string) (Message, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Message{}, ErrClosed
	}
	m, ix, rec, p, err := n.fileOfWaitLocked(ctx, id)
	if err != nil {
		return Message{}, err
	}
	name := n.nameOfLocked(ix.Account)
	if rec.Own || m.File.State == FileDone || n.fetches[p.Hash] {
		return m.view(name), nil
	}
	if p.Size > n.maxFileSize() {
		return m.view(name), fmt.Errorf("%w: %d bytes, the limit is %d", ErrFileTooLarge, p.Size, n.maxFileSize())
	}
	if n.host == nil {
		return m.view(name), ErrNotRunning
	}
	t := n.newTxnLocked()
	n.setFileLocked(t, id, ix, m, func(f *FileInfo) { f.State, f.Error = FileDownloading, "" })
	t.b.Lazy()
	n.finishInBackgroundLocked(t)
	n.startFetchLocked(id, rec, p)
	return m.view(name), nil
}

// fileOfWaitLocked is fileOfLocked for a message that may be in a
// commit not on disk yet (shown, its file record not readable): it waits
// for that commit, or for ctx. The lock is released while it waits.
func (n *Node) fileOfWaitLocked(ctx context.Context, id string) (*msgRec, indexRec, *fileRec, *attach.Pointer, error) {
	for {
		m, ix, rec, p, err := n.fileOfLocked(id)
		if !errors.Is(err, store.ErrNotFound) {
			return m, ix, rec, p, err
		}
		ch := n.events.Wait(id)
		n.mu.Unlock()
		select {
		case <-ch:
			n.mu.Lock()
		case <-ctx.Done():
			n.mu.Lock()
			return nil, ix, nil, nil, ctx.Err()
		}
	}
}

// autoFetchLocked starts downloading a file just offered that the
// conversation's auto-download limit let through (offerFileLocked).
func (n *Node) autoFetchLocked(id string) {
	if n.host == nil {
		return // resumeFetches starts it with the next run
	}
	_, _, rec, p, err := n.fileOfLocked(id)
	if err == nil {
		n.startFetchLocked(id, rec, p)
	}
}

// resumeFetches restarts, when the node runs, the downloads, relay
// uploads and relay receipts a stop cut.
func (n *Node) resumeFetches(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []string
	n.tabs.files.Scan(func(_, v []byte) error {
		var rec fileRec
		if jsonUnmarshal(v, &rec) == nil && !rec.Own {
			ids = append(ids, rec.MsgID)
		}
		return nil
	})
	for _, id := range ids {
		m, _, rec, p, err := n.fileOfLocked(id)
		if err == nil && m.File.State == FileDownloading {
			n.startFetchLocked(id, rec, p)
		}
	}
	n.tabs.files.Scan(func(k, v []byte) error {
		var rec fileRec
		if jsonUnmarshal(v, &rec) != nil || len(k) != attach.HashSize {
			return nil
		}
		if rec.Own && rec.Upload {
			n.startUploadLocked([attach.HashSize]byte(k))
		}
		if len(rec.Owed) > 0 {
			n.startReceiptsLocked([attach.HashSize]byte(k))
		}
		return nil
	})
}

// startFetchLocked runs a download as one of the run's loops. A failure
// that may pass (a source out of reach, or refusing for now) is tried
// again, after 1 s and then twice as long each time up to 15 s, for
// fetchPatience; then, or at once for a corrupted chunk, the file is
// failed (FetchFile tries again). When every source answered that it no
// longer has the blob, the file is expired.
func (n *Node) startFetchLocked(id string, rec *fileRec, p *attach.Pointer) {
	if n.fetches == nil {
		n.fetches = make(fetching)
	}
	if n.fetches[p.Hash] {
		return
	}
	n.fetches[p.Hash] = true
	from := identity.DeviceID(rec.From)
	if !n.loops.Go(func(ctx context.Context) {
		giveUp := time.Now().Add(fetchPatience)
		wait := fetchRetryFirst
		var err error
		for {
			err = n.fetch(ctx, id, p, from)
			if err == nil || ctx.Err() != nil || errors.Is(err, errCorrupt) || errors.Is(err, errGone) ||
				time.Now().Add(wait).After(giveUp) {
				break
			}
			n.log.Debug("file download failed; trying again", "err", err, "in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, fetchRetryMax)
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.fetches, p.Hash)
		if err != nil && ctx.Err() == nil {
			n.log.Info("file download stopped", "err", err)
			state := FileFailed
			if errors.Is(err, errGone) {
				state = FileExpired
			}
			n.fileStateLocked(id, func(f *FileInfo) { f.State, f.Error = state, err.Error() })
		}
	}) {
		delete(n.fetches, p.Hash)
	}
}

// fileStateLocked changes a message's file state in its own commit.
func (n *Node) fileStateLocked(id string, f func(*FileInfo)) {
	n.fileUpdateLocked(id, f, false)
}

// fileUpdateLocked is fileStateLocked, lazy for a progress figure: the
// .part file, not the record, says where a download resumes, so a lost
// progress update costs nothing and needs no fsync.
func (n *Node) fileUpdateLocked(id string, f func(*FileInfo), progress bool) {
	m, ix, _, _, err := n.fileOfLocked(id)
	if err != nil {
		return
	}
	t := n.newTxnLocked()
	n.setFileLocked(t, id, ix, m, f)
	if progress {
		t.b.Lazy()
	}
	n.commitForJobReleasingLock(t, "file state")
}

// fetch downloads a blob from the device that sent it, resuming from
// what the .part file holds.
func (n *Node) fetch(ctx context.Context, id string, p *attach.Pointer, from identity.DeviceID) error {
	if err := os.MkdirAll(n.filesDir(), 0o700); err != nil {
		return err
	}
	part := n.blobPath(p.Hash, ".part")
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := attach.NewDownload(p, f)
	if err != nil {
		return err
	}
	if !d.Complete() {
		// Sources in the pointer's order: the sending device, then relays.
		// The error is errGone only if every source is gone.
		err = errors.New("the pointer names no source")
		var passing error // the first failure that may pass
		for _, src := range p.Sources {
			switch src.Kind {
			case attach.SourceDirect:
				err = n.fetchDirect(ctx, id, d, p, from)
			case attach.SourceRelay:
				err = n.fetchRelay(ctx, id, d, p, src)
			}
			if err == nil || ctx.Err() != nil || errors.Is(err, errCorrupt) {
				break
			}
			if passing == nil && !errors.Is(err, errGone) {
				passing = err
			}
			n.log.Debug("file source failed; trying the next", "err", err)
		}
		if err != nil && passing != nil && errors.Is(err, errGone) {
			err = passing
		}
		if err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(part, n.blobPath(p.Hash, ".blob")); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ix, rec, _, err := n.fileOfLocked(id)
	if err != nil {
		return nil
	}
	t := n.newTxnLocked()
	n.setFileLocked(t, id, ix, m, func(fi *FileInfo) { fi.State, fi.Bytes, fi.Error = FileDone, p.Size, "" })
	if owed := relayAddrs(p); len(owed) > 0 {
		rec.Owed, rec.OwedUntil = owed, time.Now().Add(receiptOwedFor).Unix()
		putJSON(t.b, n.tabs.files, p.Hash[:], rec)
	}
	n.commitForJobReleasingLock(t, "file state")
	n.startReceiptsLocked(p.Hash)
	return nil
}

// errCorrupt: a chunk failed its check; the download stops there.
// errGone: a source no longer has the blob.
var (
	errCorrupt = errors.New("corrupted: a chunk failed its check")
	errGone    = errors.New("expired")
)

// feed copies a source's bytes into d, with progress events. If the
// source fails, what verified is written to the .part for a resume.
func (n *Node) feed(id string, d *attach.Download, p *attach.Pointer, next func() ([]byte, error)) (err error) {
	defer func() {
		if err != nil {
			d.Flush()
		}
	}()
	reported := d.Offset()
	for !d.Complete() {
		b, err := next()
		if err != nil {
			return err
		}
		if _, err := d.Write(b); err != nil {
			if errors.Is(err, attach.ErrCorrupt) || errors.Is(err, attach.ErrHashMismatch) {
				return errCorrupt
			}
			return err
		}
		if tap := taps.Load(); tap != nil && tap.fed != nil {
			tap.fed(n, d.Verified())
		}
		if now := d.Verified(); now-reported >= fetchProgress && !d.Complete() {
			reported = now
			n.mu.Lock()
			n.fileUpdateLocked(id, func(fi *FileInfo) { fi.State, fi.Bytes = FileDownloading, min(now, p.Size) }, true)
			n.mu.Unlock()
		}
	}
	return nil
}

// fetchRelay reads the rest of the blob from a relay's blob store, from
// a throw-away identity.
func (n *Node) fetchRelay(ctx context.Context, id string, d *attach.Download, p *attach.Pointer, src attach.Source) error {
	ri, err := relay.ParseRelayAddr(src.Addr)
	if err != nil {
		return fmt.Errorf("the pointer's relay address: %w", err)
	}
	h, err := newAnonHost()
	if err != nil {
		return err
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ri.ID, ri.Addrs, time.Hour)
	r, err := n.relays.OpenBlob(ctx, h, ri, relay.BlobHash(p.Hash), d.Offset())
	if err != nil {
		if errors.Is(err, relay.ErrBlobUnknown) {
			return fmt.Errorf("%w: the relay no longer has the file", errGone)
		}
		return fmt.Errorf("the relay: %w", err)
	}
	defer r.Close()
	buf := make([]byte, relay.BlobChunk)
	return n.feed(id, d, p, func() ([]byte, error) {
		k, err := r.Read(buf)
		if k > 0 {
			return buf[:k], nil
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("the relay: %w", err)
	})
}

// fetchDirect asks the sending device for the rest of the blob on
// /hush/file/1, a request at a time, and feeds what arrives to d.
func (n *Node) fetchDirect(ctx context.Context, id string, d *attach.Download, p *attach.Pointer, from identity.DeviceID) error {
	n.mu.Lock()
	pid, ok := n.peerOfLocked(from)
	h := n.host
	n.mu.Unlock()
	if !ok || h == nil {
		return errors.New("unreachable: the device that sent the file is not known here")
	}
	dctx, cancel := context.WithTimeout(ctx, fetchDialTime)
	s, err := h.NewStream(dctx, pid, protocol.ID(ProtocolFile))
	cancel()
	if err != nil {
		return fmt.Errorf("unreachable: %w", err)
	}
	defer s.Close()
	context.AfterFunc(ctx, func() { s.Reset() })
	br := bufio.NewReaderSize(s, 128<<10)
	// One buffer for every data frame (feed copies each out): a fresh one
	// per frame made the receiver's heap, and its resident set, grow
	// with the transfer's speed.
	frames := wire.NewFrameReader(br, fileFrameData)
	var left uint64      // bytes of the current answer still to come
	var pending []uint64 // lengths of the requests sent and not yet answered
	sent := d.Offset()   // where the next request starts
	// ask keeps up to fetchWindow requests in flight, and no more than
	// fetchWindow requests' bytes past what is written to the .part (the
	// Download holds verified blocks in memory before it writes them), so
	// a receiver killed is sent at most one window again.
	ask := func() error {
		for len(pending) < fetchWindow && sent < p.BlobSize {
			q := fileRequest{hash: p.Hash, offset: uint64(sent), length: uint64(min(int64(fetchRequest), p.BlobSize-sent))}
			if len(pending) > 0 && sent+int64(q.length)-d.Stored() > fetchWindow*fetchRequest {
				return nil
			}
			if err := wire.WriteFrame(s, q.marshal()); err != nil {
				return fmt.Errorf("unreachable: %w", err)
			}
			pending = append(pending, q.length)
			sent += int64(q.length)
		}
		return nil
	}
	return n.feed(id, d, p, func() ([]byte, error) {
		if left == 0 {
			if err := ask(); err != nil {
				return nil, err
			}
			if len(pending) == 0 {
				return nil, errors.New("the whole file was asked for and did not verify")
			}
			s.SetReadDeadline(time.Now().Add(fileStreamIdle))
			st, err := wire.ReadFrame(br, 1)
			if err != nil {
				return nil, fmt.Errorf("unreachable: %w", err)
			}
			switch st[0] {
			case fileStatusOK:
			case fileStatusNone:
				return nil, fmt.Errorf("%w: the sending device no longer has the file", errGone)
			case fileStatusDeny:
				return nil, errors.New("the sending device refused: this device is not one the file was sent to")
			default:
				return nil, fmt.Errorf("the sending device refused the request (status %d)", st[0])
			}
			// The answer being read stays in the window: the next
			// request goes out when it is all here.
			left, pending = pending[0], pending[1:]
		}
		s.SetReadDeadline(time.Now().Add(fileStreamIdle))
		b, err := frames.Next()
		if err != nil {
			return nil, fmt.Errorf("unreachable: %w", err)
		}
		if uint64(len(b)) > left {
			return nil, errors.New("the sending device sent more than asked")
		}
		left -= uint64(len(b))
		return b, nil
	})
}

// WaitFile waits until a message's file is done or failed, or ctx ends.
func (n *Node) WaitFile(ctx context.Context, id string) (Message, error) {
	for {
		n.mu.Lock()
		m, ix, _, _, err := n.fileOfLocked(id)
		if errors.Is(err, store.ErrNotFound) {
			// The message is in a commit not yet on disk; its event comes
			// when it is.
			ch := n.events.Wait(id)
			n.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Message{}, ctx.Err()
			}
		}
		if err != nil {
			n.mu.Unlock()
			return Message{}, err
		}
		view := m.view(n.nameOfLocked(ix.Account))
		if s := m.File.State; s == FileDone || s == FileFailed || s == FileSent || s == FileExpired {
			n.mu.Unlock()
			return view, nil
		}
		ch := n.events.Wait(id)
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return view, ctx.Err()
		}
	}
}

// SaveFile decrypts a downloaded (or sent) file to out, through
// out.hush-part renamed at the end: nothing half-written is left at out.
func (n *Node) SaveFile(ctx context.Context, id, out string) error {
	d, f, err := n.openFile(id)
	if err != nil {
		return err
	}
	defer f.Close()
	return d.DecryptTo(out)
}

// CopyFile writes a downloaded (or sent) file's plaintext to w, straight
// from its encrypted blob: the web UI serves a file so, with no
// plaintext on disk.
func (n *Node) CopyFile(ctx context.Context, id string, w io.Writer) error {
	d, f, err := n.openFile(id)
	if err != nil {
		return err
	}
	defer f.Close()
	return d.Decrypt(w)
}

// openFile opens id's verified blob for decryption; the caller closes f.
func (n *Node) openFile(id string) (*attach.Download, *os.File, error) {
	n.mu.Lock()
	m, _, rec, p, err := n.fileOfLocked(id)
	n.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if !rec.Own && m.File.State != FileDone {
		return nil, nil, fmt.Errorf("%w (%s)", ErrFileNotReady, m.File.State)
	}
	f, err := os.Open(n.blobPath(p.Hash, ".blob"))
	if err != nil {
		return nil, nil, fmt.Errorf("the file's blob is gone: %w", err)
	}
	d, err := attach.NewDownload(p, readOnlyPart{f})
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !d.Complete() {
		f.Close()
		return nil, nil, errors.New("corrupted: the stored file does not verify")
	}
	return d, f, nil
}

// readOnlyPart lets a verified blob be read through attach.Download
// without being changed.
type readOnlyPart struct{ *os.File }

// Truncate allows only the size the file has (a check that cuts
// nothing).
func (p readOnlyPart) Truncate(size int64) error {
	if st, err := p.Stat(); err == nil && st.Size() == size {
		return nil
	}
	return errors.New("corrupted: the stored file does not verify")
}
func (readOnlyPart) WriteAt([]byte, int64) (int, error) {
	return 0, errors.New("read-only")
}
