package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// Uploading a sent file to a relay's blob store (docs/protocol/files.md
// §19.5), from a throw-away identity, with one receipt token per
// recipient device; resumed until it is whole, also after a restart.
// Its progress comes as file events of phase upload. A relay that
// refuses the blob as too large is not asked again (the limits were
// checked at the send, but a relay out of reach then, or one whose
// limit went down since, can still refuse it).

// uploadRetry is how long a failed upload waits before it goes on.
const uploadRetry = 30 * time.Second

// uploads is the set of uploads running, by blob hash. Node.mu guards it.
type uploads map[[attach.HashSize]byte]bool

// startUploadLocked runs the relay upload of a sent file as a loop of
// the run (at once, or at the next start).
func (n *Node) startUploadLocked(hash [attach.HashSize]byte) {
	if n.uploading == nil {
		n.uploading = make(uploads)
	}
	if n.uploading[hash] || n.host == nil {
		return
	}
	n.uploading[hash] = true
	if !n.loops.Go(func(ctx context.Context) {
		defer func() {
			n.mu.Lock()
			delete(n.uploading, hash)
			n.mu.Unlock()
		}()
		for {
			err := n.upload(ctx, hash)
			if err == nil || ctx.Err() != nil {
				return
			}
			n.log.Info("file upload to the relay stopped; it goes on later", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(uploadRetry):
			}
		}
	}) {
		delete(n.uploading, hash)
	}
}

// upload sends what the relay lacks of a blob and marks it uploaded.
func (n *Node) upload(ctx context.Context, hash [attach.HashSize]byte) error {
	if tap := taps.Load(); tap != nil && tap.upload != nil {
		tap.upload(n)
	}
	n.mu.Lock()
	var rec fileRec
	err := n.getJSON(n.tabs.files, hash[:], &rec)
	n.mu.Unlock()
	if err != nil || !rec.Upload {
		return nil // gone, or done
	}
	p, err := attach.ParsePointer(rec.Pointer)
	if err != nil {
		return nil
	}
	var src *attach.Source
	for i := range p.Sources {
		if p.Sources[i].Kind == attach.SourceRelay {
			src = &p.Sources[i]
		}
	}
	if src == nil {
		return nil
	}
	ri, err := relay.ParseRelayAddr(src.Addr)
	if err != nil {
		return nil
	}
	var receipts []relay.BlobHash
	for _, d := range rec.Allowed {
		receipts = append(receipts, relay.BlobTokenHash(relay.BlobToken(src.TokenSeed, d)))
	}
	f, err := os.Open(n.blobPath(hash, ".blob"))
	if err != nil {
		return nil // the spool file is gone: nothing to upload
	}
	defer f.Close()
	h, err := newAnonHost()
	if err != nil {
		return err
	}
	defer h.Close()
	h.Peerstore().AddAddrs(ri.ID, ri.Addrs, time.Hour)
	rep := n.newProgress(FileProgress{Phase: PhaseUpload, ID: rec.MsgID, Hash: hex.EncodeToString(hash[:]), Total: p.BlobSize})
	var have int64
	_, err = n.relays.PutBlobProgress(ctx, h, ri, relay.BlobHash(hash), p.BlobSize, receipts, f, func(k int64) {
		have = k
		rep.report(k)
	})
	if err != nil {
		refused := ""
		switch {
		case errors.Is(err, relay.ErrBlobHashMismatch):
			n.log.Warn("the relay found a sent file's blob damaged; it is not uploaded")
			refused = "the relay found the blob damaged"
		case errors.Is(err, relay.ErrBlobTooLarge):
			n.log.Warn("the relay refused a sent file as too large; it is not uploaded", "bytes", p.BlobSize)
			refused = fmt.Sprintf("too large for the relay (%s)", byteSize(p.BlobSize))
		default:
			if ctx.Err() == nil {
				rep.fail(have, fmt.Errorf("%w; the upload goes on in %v", err, uploadRetry))
			}
			return err
		}
		rep.fail(have, errors.New(refused))
		return n.endUpload(hash, refused)
	}
	rep.done()
	return n.endUpload(hash, "")
}

// endUpload records that a sent file's upload is over: the relay has
// the blob, or refused it for good (refused says why).
func (n *Node) endUpload(hash [attach.HashSize]byte, refused string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var rec fileRec
	if err := n.getJSON(n.tabs.files, hash[:], &rec); err != nil {
		return nil
	}
	rec.Upload, rec.Refused = false, refused
	b := n.db.Batch()
	putJSON(b, n.tabs.files, hash[:], &rec)
	return n.commit(b)
}
