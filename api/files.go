package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/node"
)

// The file methods: attachments (docs/protocol/files.md). sendFile
// sends a file the daemon reads from an absolute path; getFile starts a
// download, or with out waits for it and writes the decrypted file
// there; waitFile waits for a download; listFiles lists a contact's
// messages with files. Progress comes as update events of the message,
// whose file.bytes grows.
//
// Paths are absolute: the daemon runs in a working directory of its own
// that means nothing to the client, so it resolves nothing relative.

// Limits on waitFile and on getFile with out; those of waitMessage.
const (
	DefaultFileTimeout = DefaultWaitTimeout
	MaxFileTimeout     = MaxWaitTimeout
)

// mSendFile is sendFile: path must be absolute and name a regular file
// (checked here, for a clear error; the node checks again as it reads).
func mSendFile(ctx context.Context, b Backend, p apitypes.SendFileRequest) (node.Message, error) {
	if err := required("to", p.To, "path", p.Path); err != nil {
		return node.Message{}, err
	}
	if err := sendable(p.Path, p.Caption); err != nil {
		return node.Message{}, err
	}
	return b.SendFile(ctx, node.SendFileRequest{To: p.To, Path: p.Path, Name: p.Name, Caption: p.Caption, TxnID: p.TxnID})
}

// mSendGroupFile is sendGroupFile: sendFile for a group (one upload to
// the sender's relay, however many members).
func mSendGroupFile(ctx context.Context, b Backend, p apitypes.GroupFileRequest) (node.Message, error) {
	if err := required("group", p.Group, "path", p.Path); err != nil {
		return node.Message{}, err
	}
	if err := sendable(p.Path, p.Caption); err != nil {
		return node.Message{}, err
	}
	return b.SendGroupFile(ctx, node.GroupFileRequest{Group: p.Group, Path: p.Path, Name: p.Name, Caption: p.Caption, TxnID: p.TxnID})
}

// sendable checks a file to send and its caption: an absolute path to a
// regular file, a caption within the text limit.
func sendable(path, caption string) error {
	if err := absolute("path", path); err != nil {
		return err
	}
	if len(caption) > apitypes.MaxTextSize {
		return &Error{
			Code:    CodeBadMessage,
			Message: fmt.Sprintf("caption: %v (%d bytes; the limit is %d)", node.ErrMessageTooLarge, len(caption), apitypes.MaxTextSize),
			Data:    &ErrorData{Reason: "message_too_large"},
		}
	}
	return regularFile(path)
}

// absolute refuses a path that is not absolute, as invalid params.
func absolute(field, path string) error {
	if !filepath.IsAbs(path) {
		return invalidParams("%q must be an absolute path (the daemon resolves nothing relative to its own directory)", field)
	}
	return nil
}

// regularFile says, as an application error, why path is not a regular
// file the daemon can send.
func regularFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Code: CodeInvalidInput, Message: "no such file: " + path, Data: &ErrorData{Reason: "no_such_file"}}
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &Error{Code: CodeInvalidInput, Message: "cannot read " + path + ": " + err.Error(), Data: &ErrorData{Reason: "unreadable"}}
	case fi.IsDir():
		return &Error{Code: CodeInvalidInput, Message: path + " is a directory; send a file", Data: &ErrorData{Reason: "not_a_file"}}
	case !fi.Mode().IsRegular():
		return &Error{Code: CodeInvalidInput, Message: path + " is not a regular file", Data: &ErrorData{Reason: "not_a_file"}}
	}
	return nil
}

// writable refuses, as an application error, an out that is a
// directory, or an existing file unless replace: a caller holding the
// API token must ask before the daemon writes over a file.
func writable(out string, replace bool) error {
	fi, err := os.Lstat(out)
	switch {
	case err == nil && fi.IsDir():
		return &Error{Code: CodeInvalidInput, Message: out + " is a directory; give a file name", Data: &ErrorData{Reason: "not_a_file"}}
	case err == nil && !replace:
		return &Error{Code: CodeInvalidInput, Message: out + " already exists (pass replace to write over it)", Data: &ErrorData{Reason: "file_exists"}}
	}
	return nil
}

// fileTimeout parses FileParams.Timeout: a Go duration ("30s", "5m"),
// default DefaultFileTimeout, at most MaxFileTimeout.
func fileTimeout(s string) (time.Duration, error) {
	if s == "" {
		return DefaultFileTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxFileTimeout {
		return 0, invalidParams("%q must be a duration such as \"30s\", more than 0 and at most %v", "timeout", MaxFileTimeout)
	}
	return d, nil
}

// mGetFile is getFile. Without out it starts (or continues) the
// download and returns the message at once. With out it also waits
// until the file is downloaded (timeout, as for waitFile) and then
// writes it, decrypted, to out.
func mGetFile(ctx context.Context, b Backend, p apitypes.FileParams) (node.Message, error) {
	if err := required("id", p.ID); err != nil {
		return node.Message{}, err
	}
	if p.Out == "" {
		if p.Timeout != "" || p.Replace {
			return node.Message{}, invalidParams("%q and %q are only used with %q", "timeout", "replace", "out")
		}
		return b.FetchFile(ctx, p.ID)
	}
	if err := absolute("out", p.Out); err != nil {
		return node.Message{}, err
	}
	if err := writable(p.Out, p.Replace); err != nil {
		return node.Message{}, err
	}
	timeout, err := fileTimeout(p.Timeout)
	if err != nil {
		return node.Message{}, err
	}
	m, err := b.FetchFile(ctx, p.ID)
	if err != nil {
		return node.Message{}, err
	}
	if err := fileEnded(m); err != nil {
		return node.Message{}, err
	}
	if m, err = waitFile(ctx, b, p.ID, timeout); err != nil {
		return node.Message{}, err
	}
	if err := fileEnded(m); err != nil {
		return node.Message{}, err
	}
	if err := b.SaveFile(ctx, p.ID, p.Out); err != nil {
		return node.Message{}, err
	}
	return m, nil
}

// fileEnded is the error for a message whose file can no longer be
// downloaded (failed or expired), nil otherwise.
func fileEnded(m node.Message) error {
	if m.File == nil {
		return nil // the node says what it makes of that
	}
	switch m.File.State {
	case apitypes.FileFailed:
		msg := "the download of " + m.File.Name + " failed"
		if m.File.Error != "" {
			msg += ": " + m.File.Error
		}
		return &Error{Code: CodeFile, Message: msg, Data: &ErrorData{Reason: "file_failed"}}
	case apitypes.FileExpired:
		return &Error{Code: CodeFile, Message: m.File.Name + " expired: no source has it any more; ask the sender to send it again",
			Data: &ErrorData{Reason: "file_expired"}}
	}
	return nil
}

// mWaitFile is waitFile: the message once its file is done, failed or
// expired. It starts no download (getFile does).
func mWaitFile(ctx context.Context, b Backend, p apitypes.FileParams) (node.Message, error) {
	if err := required("id", p.ID); err != nil {
		return node.Message{}, err
	}
	if p.Out != "" || p.Replace {
		return node.Message{}, invalidParams("%q and %q are not used with waitFile (see getFile)", "out", "replace")
	}
	timeout, err := fileTimeout(p.Timeout)
	if err != nil {
		return node.Message{}, err
	}
	return waitFile(ctx, b, p.ID, timeout)
}

// waitFile waits up to timeout for id's file; running out of time is a
// CodeTimeout error (the download goes on).
func waitFile(ctx context.Context, b Backend, id string, timeout time.Duration) (node.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := b.WaitFile(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) {
		return node.Message{}, &Error{
			Code:    CodeTimeout,
			Message: fmt.Sprintf("the file of message %s did not finish downloading within %v; the download goes on", id, timeout),
			Data:    &ErrorData{Reason: "timeout"},
		}
	}
	return m, err
}

// mAutoDownload is autoDownload: a conversation's auto-download policy,
// set first when limit is given.
func mAutoDownload(_ context.Context, b Backend, p apitypes.AutoDownloadParams) (node.AutoDownload, error) {
	if (p.Contact == "") == (p.Group == "") {
		return node.AutoDownload{}, invalidParams("give one of %q and %q", "contact", "group")
	}
	if p.Limit == nil {
		return b.AutoDownloadOf(p.Contact, p.Group)
	}
	if *p.Limit < -1 {
		return node.AutoDownload{}, invalidParams("%q must be a number of bytes, 0 (off) or -1 (the default)", "limit")
	}
	return b.SetAutoDownload(p.Contact, p.Group, *p.Limit)
}

// mListFiles is listFiles: the contact's messages with files, oldest
// first, [] rather than null.
func mListFiles(_ context.Context, b Backend, p apitypes.ContactParams) ([]node.Message, error) {
	if err := required("contact", p.Contact); err != nil {
		return nil, err
	}
	return orEmpty(b.Files(p.Contact))
}
