package node

import (
	"context"
	"errors"
)

var errFilesStub = errors.New("files: not wired yet")

// SendFile sends a file to a contact as an attachment.
func (n *Node) SendFile(ctx context.Context, req SendFileRequest) (Message, error) {
	return Message{}, errFilesStub
}

// FetchFile starts (or continues) downloading a message's file and
// returns the message at once.
func (n *Node) FetchFile(ctx context.Context, id string) (Message, error) { return Message{}, errFilesStub }

// WaitFile waits until a message's file is done or failed, or ctx ends.
func (n *Node) WaitFile(ctx context.Context, id string) (Message, error) { return Message{}, errFilesStub }

// SaveFile decrypts a downloaded file to out (through out.hush-part).
func (n *Node) SaveFile(ctx context.Context, id, out string) error { return errFilesStub }

// Files lists a contact's messages that carry files, oldest first.
func (n *Node) Files(contact string) ([]Message, error) { return nil, errFilesStub }
