package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hushnet/hush/crypto/card"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/relay"
)

// This file is the node's side of attachments (docs/protocol/files.md):
// sending a file (sealed once into a spool file, the pointer in a text
// message), the record of each file in the `files` table, and the states
// a message's attachment shows. fileserve.go serves /hush/file/1 and
// filefetch.go downloads.

// File errors the API and CLI branch on.
var (
	ErrFileTooLarge = errors.New("file is too large")
	ErrNotAFile     = errors.New("not a regular file")
	ErrNoFile       = errors.New("the message carries no file")
	ErrFileNotReady = errors.New("the file is not downloaded yet")
	ErrUnreadable   = errors.New("the file cannot be read")
)

// DefaultMaxFileSize is the largest file sent or fetched unless
// Config.MaxFileSize says otherwise (files.md §19.6).
const DefaultMaxFileSize = 1 << 30

// fileRec is a files-table record, keyed by the blob's hash: one file
// this device sent or was offered.
type fileRec struct {
	Pointer []byte   `json:"p"`           // the attachment pointer (its key is sealed at rest like every record)
	MsgID   string   `json:"m"`           // the message that carries it
	Own     bool     `json:"o,omitempty"` // sent from here: served on /hush/file/1
	Allowed [][]byte `json:"a,omitempty"` // sent: the devices it may be served to
	From    []byte   `json:"f,omitempty"` // offered: the device that sent it
	Upload  bool     `json:"u,omitempty"` // sent: its relay upload has not finished
	// Refused is why the relay refused a sent file's upload for good
	// (too large for it): it is not tried again.
	Refused string `json:"ur,omitempty"`
	// Conv is a sent file's conversation (the contact's account ID, or a
	// group's convKey): a device the contact or a member has now may
	// fetch it too, though the sender did not know it at the send.
	Conv []byte `json:"c,omitempty"`

	// Downloaded: the relays (pointer addresses) still owed this
	// device's receipt, until OwedUntil (unix seconds; filereceipt.go).
	Owed      []string `json:"r,omitempty"`
	OwedUntil int64    `json:"ru,omitempty"`
}

func (n *Node) maxFileSize() int64 {
	if n.cfg.MaxFileSize > 0 {
		return n.cfg.MaxFileSize
	}
	return DefaultMaxFileSize
}

// filesDir holds spooled blobs (sent) and downloads (.part, then .blob):
// ciphertext only.
func (n *Node) filesDir() string { return filepath.Join(n.cfg.Home, "files") }

func (n *Node) blobPath(hash [attach.HashSize]byte, ext string) string {
	return filepath.Join(n.filesDir(), hex.EncodeToString(hash[:])+ext)
}

// SendFile sends a file to a contact as an attachment: it is sealed once
// (STREAM, a fresh key) into a spool file, and a text message with the
// caption carries its pointer. The recipient's devices download it from
// this device (/hush/file/1), or from this device's relay. A refusal
// (an unknown or blocked contact, a bad path, the size limits) comes
// before anything is sealed; a send that fails after the seal removes
// the spool file.
func (n *Node) SendFile(ctx context.Context, req SendFileRequest) (Message, error) {
	n.mu.Lock()
	c, err := n.contactByNameLocked(req.To)
	var before Message
	sent := false
	if err == nil {
		acc := c.account()
		before, sent = n.sentBeforeLocked(conversation{key: acc[:], contact: c}, req.TxnID)
		if !sent {
			err = n.sendableLocked(c)
		}
	}
	n.mu.Unlock()
	if err != nil {
		return Message{}, err
	}
	if sent { // a retry: the file is not sealed again
		return before, nil
	}
	p, ptr, file, err := n.sealFile(ctx, req.Path, req.Name, req.Caption, req.TxnID)
	if err != nil {
		return Message{}, err
	}
	m, upload, err := n.sendSealed(req, c, p, ptr, file)
	if err != nil {
		os.Remove(n.blobPath(p.Hash, ".blob")) // its key is random: no other message has this blob
		return Message{}, err
	}
	if upload {
		m.File = withUpload(m.File, UploadPending)
	}
	return m, nil
}

// sendSealed sends the message carrying a sealed file to contact c and
// records the file; upload says it goes to the relay too.
func (n *Node) sendSealed(req SendFileRequest, c *contact, p *attach.Pointer, ptr []byte, file *FileInfo) (Message, bool, error) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Message{}, false, ErrClosed
	}
	if err := n.sendableLocked(c); err != nil {
		return Message{}, false, err
	}
	acc := c.account()
	t := n.newTxnLocked()
	m, err := n.sendLocked(t, conversation{key: acc[:], contact: c},
		outgoing{Kind: KindText, Text: req.Caption, TxnID: req.TxnID, Attach: ptr, File: file}, now)
	if err != nil {
		n.dropQueuedLocked(t.queued)
		return Message{}, false, err
	}
	var devices []identity.DeviceID
	for _, l := range []*card.Card{c.card, n.siblingsLocked()} {
		for _, d := range l.List.Devices() {
			devices = append(devices, d.DeviceID())
		}
	}
	upload := n.recordSentFileLocked(t, p, ptr, m.ID, acc[:], devices)
	n.saveSeqLocked(t)
	if err := n.commitReleasingLock(t); err != nil {
		return Message{}, false, fmt.Errorf("node: store: %w", err)
	}
	if upload {
		n.startUploadLocked(p.Hash)
	}
	return m, upload, nil
}

// SendGroupFile sends a file to a group: sealed once, uploaded once to
// this device's relay (whatever the number of members), its pointer in a
// group text. As for SendFile, an unknown group or one this account is
// not a member of is refused before anything is sealed.
func (n *Node) SendGroupFile(ctx context.Context, req GroupFileRequest) (Message, error) {
	n.mu.Lock()
	gs, err := n.resolveGroupLocked(req.Group)
	if err == nil {
		if m, ok := n.sentBeforeLocked(conversation{key: convKey(gs.eng.ID()), group: gs}, req.TxnID); ok {
			n.mu.Unlock()
			return m, nil // a retry: the file is not sealed again
		}
		if !gs.eng.IsMember() {
			err = errors.New("accept the invitation first")
		}
	}
	n.mu.Unlock()
	if err != nil {
		return Message{}, err
	}
	p, ptr, file, err := n.sealFile(ctx, req.Path, req.Name, req.Caption, req.TxnID)
	if err != nil {
		return Message{}, err
	}
	var out Message
	upload := false
	err = n.groupSendTxn(req.Group, func(t *txn, gs *groupState, now time.Time) error {
		if !gs.eng.IsMember() {
			return errors.New("accept the invitation first")
		}
		var err error
		out, err = n.sendLocked(t, conversation{key: convKey(gs.eng.ID()), group: gs},
			outgoing{Kind: KindText, Text: req.Caption, TxnID: req.TxnID, Attach: ptr, File: file}, now)
		if err != nil {
			return err
		}
		var devices []identity.DeviceID
		st := gs.eng.State()
		for _, m := range st.Members {
			devices = append(devices, m.Devices...)
		}
		upload = n.recordSentFileLocked(t, p, ptr, out.ID, convKey(gs.eng.ID()), devices)
		return nil
	})
	if err != nil {
		os.Remove(n.blobPath(p.Hash, ".blob"))
		return Message{}, err
	}
	if upload {
		n.mu.Lock()
		n.startUploadLocked(p.Hash)
		n.mu.Unlock()
		out.File = withUpload(out.File, UploadPending)
	}
	return out, nil
}

// recordSentFileLocked keeps, in t, a sent file's record: the devices it
// may be served to and whether it still goes to the relay.
func (n *Node) recordSentFileLocked(t *txn, p *attach.Pointer, ptr []byte, msgID string, conv []byte, devices []identity.DeviceID) (upload bool) {
	rec := fileRec{Pointer: ptr, MsgID: msgID, Own: true, Conv: conv}
	for _, s := range p.Sources {
		rec.Upload = rec.Upload || s.Kind == attach.SourceRelay
	}
	for _, d := range devices {
		if d != n.cert.DeviceID() && len(rec.Allowed) < relay.MaxBlobReceipts {
			rec.Allowed = append(rec.Allowed, d[:])
		}
	}
	putJSON(t.b, n.tabs.files, p.Hash[:], &rec)
	// The message may leave before this commit lands (messaging.md
	// "Sending before the commit"), and its recipient ask for the file
	// at once: the file server waits for the commit instead of
	// answering that there is no such file.
	if t.done == nil {
		t.done = make(chan struct{})
	}
	done, hash := t.done, p.Hash
	n.filesPending[hash] = done
	forget := func() {
		if n.filesPending[hash] == done {
			delete(n.filesPending, hash)
		}
	}
	t.committed = append(t.committed, forget)
	t.undo(forget)
	return rec.Upload
}

// sealFile checks the file at path and seals it into the spool; the
// pointer names this device, and its relay if it has one, as sources.
// Everything that can refuse the file (its path, its size, the relay's
// limits) refuses it before a byte is sealed. Sealing reports its
// progress as file events of phase seal, naming the request's txnID.
func (n *Node) sealFile(ctx context.Context, path, name, caption, txnID string) (*attach.Pointer, []byte, *FileInfo, error) {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, nil, nil, fmt.Errorf("cannot send %s: %w", path, err)
	case st.IsDir():
		return nil, nil, nil, fmt.Errorf("%w: %s is a directory", ErrNotAFile, path)
	case !st.Mode().IsRegular():
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrNotAFile, path)
	case st.Size() > n.maxFileSize():
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFileTooLarge, st.Size(), n.maxFileSize())
	}
	if caption != "" {
		if err := checkText(KindText, caption); err != nil {
			return nil, nil, nil, err
		}
	}
	if name != "" {
		if err := attach.ValidName(name); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: file name %q: %v", ErrInvalidName, name, err)
		}
	} else if name = filepath.Base(path); attach.ValidName(name) != nil {
		name = "file"
	}
	size := st.Size()
	if err := n.checkRelayLimits(ctx, size); err != nil {
		return nil, nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	info, err := attach.Inspect(f, size)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %w", ErrUnreadable, path, err)
	}
	rep := n.newProgress(FileProgress{Phase: PhaseSeal, TxnID: txnID, Total: size})
	rep.report(0)
	p, err := n.sealToSpool(io.NewSectionReader(f, 0, size), size, rep)
	if err != nil {
		rep.fail(0, err)
		return nil, nil, nil, err
	}
	rep.done()
	p.Name, p.MIME, p.Thumb = name, info.MIME, info.Thumb
	p.Width, p.Height = uint32(info.Width), uint32(info.Height)
	p.DurationMS = info.DurationMS
	p.Sources = []attach.Source{{Kind: attach.SourceDirect}}
	if addr := n.fileRelay(); addr != "" {
		// Also through a relay, for a recipient who is away while this
		// device is (files.md §19.2 step 5).
		src := attach.Source{Kind: attach.SourceRelay, Addr: addr}
		rand.Read(src.TokenSeed[:])
		p.Sources = append(p.Sources, src)
	}
	ptr, err := p.Marshal()
	if err != nil {
		return nil, nil, nil, err
	}
	return p, ptr, fileView(p, FileSent), nil
}

// fileRelay is the relay files go through: the first one configured
// ("" if none).
func (n *Node) fileRelay() string {
	if len(n.cfg.Relays) == 0 {
		return ""
	}
	return n.cfg.Relays[0]
}

// sealToSpool seals size bytes of src into the spool directory as
// <hash>.blob (through a .part file, so a crash leaves no blob that is
// not whole) and returns the pointer's key, sizes and hash. rep (if not
// nil) hears of the bytes of src sealed.
func (n *Node) sealToSpool(src io.Reader, size int64, rep *progress) (*attach.Pointer, error) {
	if err := os.MkdirAll(n.filesDir(), 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(n.filesDir(), "send-*.part")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	bw := bufio.NewWriterSize(tmp, 256<<10)
	cr := &countingReader{r: src, report: func(int64) {}}
	if rep != nil {
		cr.report = rep.report
	}
	sealed, err := attach.Seal(bw, cr, size, nil)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if cr.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, cr.err)
	}
	if err != nil {
		return nil, fmt.Errorf("sealing the file: %w", err)
	}
	p := sealed.Pointer()
	if err := os.Rename(tmp.Name(), n.blobPath(p.Hash, ".blob")); err != nil {
		return nil, err
	}
	return p, nil
}

// fileView is what a message shows of its attachment.
func fileView(p *attach.Pointer, state string) *FileInfo {
	return &FileInfo{Name: p.Name, MIME: p.MIME, Size: p.Size, Hash: hex.EncodeToString(p.Hash[:]),
		Width: int(p.Width), Height: int(p.Height), DurationMS: int64(p.DurationMS), Thumbnail: p.Thumb, State: state}
}

// offerFileLocked records an attachment that came with a text in the
// conversation with key conv (from device dev) and returns what the
// message shows; nil when the pointer is malformed (the text still
// shows). It is fetched at once if the conversation's auto-download
// limit allows.
func (n *Node) offerFileLocked(t *txn, conv []byte, msgID [msgIDSize]byte, dev identity.DeviceID, ptr []byte) *FileInfo {
	p, err := attach.ParsePointer(ptr)
	if err != nil {
		n.log.Debug("attachment pointer refused", "err", err)
		return nil
	}
	view := fileView(p, FileOffered)
	if p.Size > n.maxFileSize() {
		view.State, view.Error = FileFailed, fmt.Sprintf("too large: %d bytes, the limit is %d", p.Size, n.maxFileSize())
	}
	rec := fileRec{Pointer: ptr, MsgID: hex.EncodeToString(msgID[:]), From: dev[:]}
	putJSON(t.b, n.tabs.files, p.Hash[:], &rec)
	if view.State == FileOffered && p.Size <= n.autoFetchLimitLocked(conv) {
		// Decided now, durably: a node that does not run yet (a history
		// transfer) starts it with its next run.
		view.State = FileDownloading
		t.fetch = append(t.fetch, rec.MsgID)
	}
	return view
}

// attachmentOfLocked returns the pointer of a message's attachment, and
// for one received, the device that sent it (as the files table keeps
// them); nil and zero for a message without one.
func (n *Node) attachmentOfLocked(m *msgRec) ([]byte, identity.DeviceID) {
	if m.File == nil {
		return nil, identity.DeviceID{}
	}
	hash, err := hex.DecodeString(m.File.Hash)
	if err != nil {
		return nil, identity.DeviceID{}
	}
	var rec fileRec
	if n.getJSON(n.tabs.files, hash, &rec) != nil {
		return nil, identity.DeviceID{}
	}
	var from identity.DeviceID
	copy(from[:], rec.From)
	return rec.Pointer, from
}

// fileOfLocked finds a message's attachment: the message, its record
// and the parsed pointer.
func (n *Node) fileOfLocked(idHex string) (*msgRec, indexRec, *fileRec, *attach.Pointer, error) {
	id, err := parseMsgID(idHex)
	if err != nil {
		return nil, indexRec{}, nil, nil, err
	}
	m, ix, err := n.loadMsgLocked(id)
	if err != nil {
		return nil, ix, nil, nil, err
	}
	if m.File == nil {
		return nil, ix, nil, nil, fmt.Errorf("%w: %s", ErrNoFile, idHex)
	}
	hash, err := hex.DecodeString(m.File.Hash)
	if err != nil {
		return nil, ix, nil, nil, fmt.Errorf("%w: %s", ErrNoFile, idHex)
	}
	var rec fileRec
	if err := n.getJSON(n.tabs.files, hash, &rec); err != nil {
		return nil, ix, nil, nil, fmt.Errorf("node: file record: %w", err)
	}
	p, err := attach.ParsePointer(rec.Pointer)
	if err != nil {
		return nil, ix, nil, nil, err
	}
	return m, ix, &rec, p, nil
}

// setFileLocked updates what a message shows of its attachment, with an
// update event.
func (n *Node) setFileLocked(t *txn, idHex string, ix indexRec, m *msgRec, f func(*FileInfo)) {
	id, err := parseMsgID(idHex)
	if err != nil || m.File == nil {
		return
	}
	fi := *m.File
	f(&fi)
	m.File = &fi
	n.updateMsgLocked(t, id, ix, m)
	t.events = append(t.events, Event{Type: EventUpdate, Message: ptr(m.view(n.nameOfLocked(ix.Account)))})
}

// Files lists a contact's messages that carry files, oldest first; a
// file this device sent through a relay shows where its upload is.
func (n *Node) Files(contact string) ([]Message, error) {
	all, err := n.Messages(contact, 0)
	if err != nil {
		return nil, err
	}
	out := []Message{}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range all {
		if m.File != nil {
			if st := n.uploadStateLocked(m.File.Hash); st != "" {
				m.File = withUpload(m.File, st)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// uploadStateLocked is where the relay upload of the sent file with
// blob hash hashHex is (FileInfo.Upload): "" for a file received, or
// sent without a relay.
func (n *Node) uploadStateLocked(hashHex string) string {
	hash, err := hex.DecodeString(hashHex)
	if err != nil {
		return ""
	}
	var rec fileRec
	if n.getJSON(n.tabs.files, hash, &rec) != nil || !rec.Own {
		return ""
	}
	switch {
	case rec.Refused != "":
		return UploadRefused
	case rec.Upload:
		return UploadPending
	}
	if p, err := attach.ParsePointer(rec.Pointer); err == nil {
		for _, s := range p.Sources {
			if s.Kind == attach.SourceRelay {
				return UploadDone
			}
		}
	}
	return ""
}

// withUpload is a copy of f (shared with the store's cache) showing the
// upload state st.
func withUpload(f *FileInfo, st string) *FileInfo {
	c := *f
	c.Upload = st
	return &c
}
