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
// this device (/hush/file/1), or from this device's relay.
func (n *Node) SendFile(ctx context.Context, req SendFileRequest) (Message, error) {
	n.mu.Lock()
	c, err := n.contactByNameLocked(req.To)
	var before Message
	sent := false
	if err == nil {
		acc := c.account()
		before, sent = n.sentBeforeLocked(conversation{key: acc[:], contact: c}, req.TxnID)
	}
	n.mu.Unlock()
	if err != nil {
		return Message{}, err
	}
	if sent { // a retry: the file is not sealed again
		return before, nil
	}
	p, ptr, file, err := n.sealFile(req.Path, req.Name, req.Caption)
	if err != nil {
		return Message{}, err
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return Message{}, ErrClosed
	}
	if err := n.sendableLocked(c); err != nil {
		return Message{}, err
	}
	acc := c.account()
	t := n.newTxnLocked()
	m, err := n.sendLocked(t, conversation{key: acc[:], contact: c},
		outgoing{Kind: KindText, Text: req.Caption, TxnID: req.TxnID, Attach: ptr, File: file}, now)
	if err != nil {
		n.dropQueuedLocked(t.queued)
		return Message{}, err
	}
	var devices []identity.DeviceID
	for _, l := range []*card.Card{c.card, n.siblingsLocked()} {
		for _, d := range l.List.Devices() {
			devices = append(devices, d.DeviceID())
		}
	}
	upload := n.recordSentFileLocked(t, p, ptr, m.ID, acc[:], devices)
	n.saveSeqLocked(t.b)
	if err := n.commitReleasingLock(t); err != nil {
		return Message{}, fmt.Errorf("node: store: %w", err)
	}
	if upload {
		n.startUploadLocked(p.Hash)
	}
	return m, nil
}

// SendGroupFile sends a file to a group: sealed once, uploaded once to
// this device's relay (whatever the number of members), its pointer in a
// group text.
func (n *Node) SendGroupFile(ctx context.Context, req GroupFileRequest) (Message, error) {
	n.mu.Lock()
	if gs, err := n.resolveGroupLocked(req.Group); err == nil {
		if m, ok := n.sentBeforeLocked(conversation{key: convKey(gs.eng.ID()), group: gs}, req.TxnID); ok {
			n.mu.Unlock()
			return m, nil // a retry: the file is not sealed again
		}
	}
	n.mu.Unlock()
	p, ptr, file, err := n.sealFile(req.Path, req.Name, req.Caption)
	if err != nil {
		return Message{}, err
	}
	var out Message
	upload := false
	_, err = n.groupTxn(req.Group, func(t *txn, gs *groupState, now time.Time) error {
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
		return Message{}, err
	}
	if upload {
		n.mu.Lock()
		n.startUploadLocked(p.Hash)
		n.mu.Unlock()
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
	return rec.Upload
}

// sealFile checks the file at path and seals it into the spool; the
// pointer names this device, and its relay if it has one, as sources.
func (n *Node) sealFile(path, name, caption string) (*attach.Pointer, []byte, *FileInfo, error) {
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
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot send %s: %w", path, err)
	}
	defer f.Close()
	size := st.Size()
	info, err := attach.Inspect(f, size)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	p, err := n.sealToSpool(io.NewSectionReader(f, 0, size), size)
	if err != nil {
		return nil, nil, nil, err
	}
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
// not whole) and returns the pointer's key, sizes and hash.
func (n *Node) sealToSpool(src io.Reader, size int64) (*attach.Pointer, error) {
	if err := os.MkdirAll(n.filesDir(), 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(n.filesDir(), "send-*.part")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	bw := bufio.NewWriterSize(tmp, 256<<10)
	sealed, err := attach.Seal(bw, src, size, nil)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
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

// Files lists a contact's messages that carry files, oldest first.
func (n *Node) Files(contact string) ([]Message, error) {
	all, err := n.Messages(contact, 0)
	if err != nil {
		return nil, err
	}
	out := []Message{}
	for _, m := range all {
		if m.File != nil {
			out = append(out, m)
		}
	}
	return out, nil
}
