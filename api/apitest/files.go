package apitest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// The double's attachments. A sent file is read whole into memory; a
// received one (ReceiveFile) is offered until FetchFile, then
// downloading until the test calls FileProgress, CompleteFile or
// FailFile: nothing downloads by itself. Every change is an update event
// of the message, as node publishes them.

// errNoFile is the double's error for a message without a file. Node
// has no sentinel for it yet, so the API reports it as internal.
var errNoFile = errors.New("the message carries no file")

// errNotDownloaded is SaveFile's error for a file not yet done.
var errNotDownloaded = errors.New("the file is not downloaded yet")

// SendFile implements api.Backend: it reads the file at req.Path and
// stores an outgoing message (queued) whose file is "sent".
func (b *Backend) SendFile(_ context.Context, req node.SendFileRequest) (node.Message, error) {
	b.seal(req.TxnID, req.Path)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[req.To]; !ok {
		return node.Message{}, node.ErrUnknownContact
	}
	if req.TxnID != "" {
		if id, ok := b.txns[req.TxnID]; ok {
			return *b.byID[id], nil
		}
	}
	data, err := os.ReadFile(req.Path)
	if err != nil {
		return node.Message{}, err
	}
	b.nextMsg++
	m := &node.Message{
		ID: fmt.Sprintf("m%04d", b.nextMsg), Contact: req.To, Direction: "out",
		Text: req.Caption, State: node.StateQueued, Time: b.Now(),
		File: fileInfo(cmp.Or(req.Name, filepath.Base(req.Path)), data, apitypes.FileSent),
	}
	b.fileData()[m.ID] = data
	b.sentPaths = append(b.sentPaths, req.Path)
	b.addLocked(m)
	if req.TxnID != "" {
		b.txns[req.TxnID] = m.ID
	}
	return b.uploadingLocked(*m), nil
}

// seal publishes the file events of sealing the file at path, as the
// node does while it seals: at the start, half-way and at the end; with
// HoldSeals, it waits between half-way and the end.
func (b *Backend) seal(txnID, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	size := fi.Size()
	for _, p := range []apitypes.FileProgress{{Bytes: 0}, {Bytes: size / 2}, {Bytes: size, Done: true}} {
		if p.Done {
			b.mu.Lock()
			hold := b.holdSeal
			b.mu.Unlock()
			if hold != nil {
				<-hold
			}
		}
		p.Phase, p.TxnID, p.Total = apitypes.PhaseSeal, txnID, size
		b.Publish(node.Event{Type: apitypes.EventFile, File: &p})
	}
}

// HoldSeals makes the sends from now on wait half-way through their
// seal until release is closed (nil: no more waiting).
func (b *Backend) HoldSeals(release chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holdSeal = release
}

// uploadingLocked is the answer to a send: with uploads on, the file
// shows its upload pending.
func (b *Backend) uploadingLocked(m node.Message) node.Message {
	if b.uploads && m.File != nil {
		f := *m.File
		f.Upload = apitypes.UploadPending
		m.File = &f
	}
	return m
}

// SetUploads makes the files sent from now on go to a relay too: their
// answer shows the upload pending, which UploadProgress drives.
func (b *Backend) SetUploads(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.uploads = on
}

// UploadProgress publishes an upload event of message id's file: bytes
// of its size so far, done, or stopped with errText.
func (b *Backend) UploadProgress(id string, bytes int64, done bool, errText string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.fileLocked(id)
	if err != nil {
		return err
	}
	p := apitypes.FileProgress{Phase: apitypes.PhaseUpload, ID: id, Hash: m.File.Hash, Bytes: bytes, Total: m.File.Size, Done: done, Error: errText}
	b.publishLocked(node.Event{Type: apitypes.EventFile, File: &p})
	return nil
}

// fileInfo describes data as a file named name in state.
func fileInfo(name string, data []byte, state string) *node.FileInfo {
	sum := sha256.Sum256(data)
	return &node.FileInfo{
		Name: name, MIME: http.DetectContentType(data), Size: int64(len(data)),
		Hash: hex.EncodeToString(sum[:]), State: state,
	}
}

// fileData returns the contents by message ID, making the map.
func (b *Backend) fileData() map[string][]byte {
	if b.files == nil {
		b.files = map[string][]byte{}
	}
	return b.files
}

// SentPaths returns the paths SendFile was given, in order.
func (b *Backend) SentPaths() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.sentPaths...)
}

// ReceiveFile adds an incoming message from contact carrying a file
// named name with contents data, offered (not downloaded).
func (b *Backend) ReceiveFile(contact, name, caption string, data []byte) node.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextMsg++
	m := &node.Message{
		ID: fmt.Sprintf("m%04d", b.nextMsg), Contact: contact, Direction: "in",
		Text: caption, State: node.StateReceived, Time: b.Now(),
		File: fileInfo(name, data, apitypes.FileOffered),
	}
	b.fileData()[m.ID] = data
	b.addLocked(m)
	return *m
}

// fileLocked returns the message id and its file.
func (b *Backend) fileLocked(id string) (*node.Message, error) {
	m, ok := b.byID[id]
	if !ok {
		return nil, node.ErrUnknownMessage
	}
	if m.File == nil {
		return nil, errNoFile
	}
	return m, nil
}

// updateFileLocked changes m's file with fn and publishes the update.
func (b *Backend) updateFileLocked(m *node.Message, fn func(f *node.FileInfo)) {
	f := *m.File
	fn(&f)
	m.File = &f
	cp := *m
	b.publishLocked(node.Event{Type: node.EventUpdate, Message: &cp})
}

// FetchFile implements api.Backend: an offered (or failed) file starts
// downloading; others are returned as they are.
func (b *Backend) FetchFile(_ context.Context, id string) (node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.fileLocked(id)
	if err != nil {
		return node.Message{}, err
	}
	b.fetches++
	if s := m.File.State; s == apitypes.FileOffered || s == apitypes.FileFailed {
		b.updateFileLocked(m, func(f *node.FileInfo) { f.State, f.Error = apitypes.FileDownloading, "" })
	}
	return *m, nil
}

// Fetches reports how many times FetchFile was called.
func (b *Backend) Fetches() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fetches
}

// FileProgress sets the bytes downloaded of id's file.
func (b *Backend) FileProgress(id string, bytes int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.fileLocked(id)
	if err != nil {
		return err
	}
	b.updateFileLocked(m, func(f *node.FileInfo) { f.State, f.Bytes = apitypes.FileDownloading, bytes })
	return nil
}

// CompleteFile finishes id's download.
func (b *Backend) CompleteFile(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.fileLocked(id)
	if err != nil {
		return err
	}
	b.updateFileLocked(m, func(f *node.FileInfo) { f.State, f.Bytes = apitypes.FileDone, f.Size })
	return nil
}

// FailFile ends id's download in state (failed or expired) with reason.
func (b *Backend) FailFile(id, state, reason string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.fileLocked(id)
	if err != nil {
		return err
	}
	b.updateFileLocked(m, func(f *node.FileInfo) { f.State, f.Error = state, reason })
	return nil
}

// fileSettled reports whether WaitFile returns for a file in state s.
func fileSettled(s string) bool {
	return s != apitypes.FileOffered && s != apitypes.FileDownloading
}

// WaitFile implements api.Backend: it returns once id's file is neither
// offered nor downloading.
func (b *Backend) WaitFile(ctx context.Context, id string) (node.Message, error) {
	for {
		b.mu.Lock()
		m, err := b.fileLocked(id)
		if err != nil {
			b.mu.Unlock()
			return node.Message{}, err
		}
		if fileSettled(m.File.State) {
			b.mu.Unlock()
			return *m, nil
		}
		w := make(chan struct{})
		b.waiters = append(b.waiters, w)
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return node.Message{}, ctx.Err()
		case <-w:
		}
	}
}

// SaveFile implements api.Backend: a done (or this device's sent) file
// is written to out through out.hush-part, as node does.
func (b *Backend) SaveFile(_ context.Context, id, out string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, err := b.fileLocked(id)
	if err != nil {
		return err
	}
	if s := m.File.State; s != apitypes.FileDone && s != apitypes.FileSent {
		return errNotDownloaded
	}
	part := out + ".hush-part"
	if err := os.WriteFile(part, b.files[id], 0o600); err != nil {
		return err
	}
	return os.Rename(part, out)
}

// CopyFile writes a downloaded or sent file to w, as node's does (the
// web UI serves files with it).
func (b *Backend) CopyFile(_ context.Context, id string, w io.Writer) error {
	b.mu.Lock()
	m, err := b.fileLocked(id)
	var data []byte
	if err == nil {
		if s := m.File.State; s != apitypes.FileDone && s != apitypes.FileSent {
			err = errNotDownloaded
		}
		data = b.files[id]
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// Files implements api.Backend: contact's messages with files, oldest
// first; nil when there are none.
func (b *Backend) Files(contact string) ([]node.Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.contacts[contact]; !ok {
		return nil, node.ErrUnknownContact
	}
	var out []node.Message
	for _, m := range b.msgs[contact] {
		if m.File != nil {
			out = append(out, *m)
		}
	}
	return out, nil
}

// SendGroupFile sends a file to a group: a group message carrying it.
func (b *Backend) SendGroupFile(_ context.Context, req node.GroupFileRequest) (node.Message, error) {
	b.seal(req.TxnID, req.Path)
	data, err := os.ReadFile(req.Path)
	if err != nil {
		return node.Message{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.groupLocked(req.Group)
	if err != nil {
		return node.Message{}, err
	}
	if g.view.Pending {
		return node.Message{}, errors.New("accept the invitation first")
	}
	m := b.addGroupLocked(g, "out", "me", req.Caption, node.StateSent)
	m.File = fileInfo(filepath.Base(req.Path), data, apitypes.FileSent)
	b.fileData()[m.ID] = data
	b.publishLocked(node.Event{Type: node.EventMessage, Message: ptr(*m)})
	return b.uploadingLocked(*m), nil
}

// convLocked is the key of the conversation with a contact or a group.
func (b *Backend) convLocked(contact, group string) (string, error) {
	switch {
	case (contact == "") == (group == ""):
		return "", errors.New("name a contact or a group")
	case group != "":
		g, err := b.groupLocked(group)
		if err != nil {
			return "", err
		}
		return "g:" + g.view.ID, nil
	}
	if _, ok := b.contacts[contact]; !ok {
		return "", node.ErrUnknownContact
	}
	return "c:" + contact, nil
}

// AutoDownloadOf implements api.Backend.
func (b *Backend) AutoDownloadOf(contact, group string) (node.AutoDownload, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, err := b.convLocked(contact, group)
	if err != nil {
		return node.AutoDownload{}, err
	}
	if l, ok := b.autoDL[k]; ok {
		return node.AutoDownload{Limit: l}, nil
	}
	return node.AutoDownload{Limit: node.AutoFetchSize, Default: true}, nil
}

// SetAutoDownload implements api.Backend.
func (b *Backend) SetAutoDownload(contact, group string, limit int64) (node.AutoDownload, error) {
	b.mu.Lock()
	k, err := b.convLocked(contact, group)
	if err == nil {
		if b.autoDL == nil {
			b.autoDL = map[string]int64{}
		}
		if limit < 0 {
			delete(b.autoDL, k)
		} else {
			b.autoDL[k] = limit
		}
	}
	b.mu.Unlock()
	if err != nil {
		return node.AutoDownload{}, err
	}
	return b.AutoDownloadOf(contact, group)
}
