package apitest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hushnet/hush/node"
)

// ReceiveRequest stores a first message from a stranger called name: a
// message request (made on its first message).
func (b *Backend) ReceiveRequest(name, text string) node.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.requests == nil {
		b.requests = map[string]*node.Request{}
	}
	r := b.requests[name]
	if r == nil {
		r = &node.Request{Name: name, Account: fmt.Sprintf("%016x", len(b.requests)+1), Added: b.Now()}
		b.requests[name] = r
	}
	b.nextMsg++
	m := node.Message{ID: fmt.Sprintf("m%04d", b.nextMsg), Contact: name, Direction: "in", Text: text,
		State: node.StateReceived, Time: b.Now()}
	r.Messages = append(r.Messages, m)
	b.publishLocked(node.Event{Type: node.EventRequest, Contact: &node.Contact{Name: name, Account: r.Account, Request: true}, Message: &m})
	return m
}

// Requests implements api.Backend.
func (b *Backend) Requests() ([]node.Request, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []node.Request
	for _, r := range b.requests {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(x, y node.Request) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// AcceptRequest implements api.Backend: the request becomes a contact
// with its messages.
func (b *Backend) AcceptRequest(name string) (node.Contact, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.requests[name]
	if r == nil {
		if _, ok := b.contacts[name]; ok {
			return node.Contact{}, fmt.Errorf("%w: %s", node.ErrNotRequest, name)
		}
		return node.Contact{}, node.ErrUnknownContact
	}
	delete(b.requests, name)
	c := &node.Contact{Name: name, Account: r.Account, Devices: 1, Added: r.Added}
	b.contacts[name] = c
	for _, m := range r.Messages {
		b.addLocked(&m)
	}
	b.publishLocked(node.Event{Type: node.EventContact, Contact: ptr(*c)})
	return *c, nil
}

// DeclineRequest implements api.Backend.
func (b *Backend) DeclineRequest(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.requests[name]
	if r == nil {
		if _, ok := b.contacts[name]; ok {
			return fmt.Errorf("%w: %s", node.ErrNotRequest, name)
		}
		return node.ErrUnknownContact
	}
	delete(b.requests, name)
	b.publishLocked(node.Event{Type: node.EventRequest, Contact: &node.Contact{Name: name, Account: r.Account, Request: true}})
	return nil
}

// BlockRequest implements api.Backend: the request goes, its account
// blocked.
func (b *Backend) BlockRequest(name string) error {
	b.mu.Lock()
	r := b.requests[name]
	b.mu.Unlock()
	if r == nil {
		return b.DeclineRequest(name) // the same errors
	}
	if err := b.DeclineRequest(name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.blockedReq == nil {
		b.blockedReq = map[string]bool{}
	}
	b.blockedReq[name] = true
	return nil
}
