package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/wire"
	msync "github.com/hushnet/hush/sync"
)

// ProtocolSync is the link channel between a new device and an existing
// one (docs/protocol/sync.md §18.2).
const ProtocolSync = "/hush/sync/1"

// Link channel limits on this side.
const (
	linkHandshakeTime = 30 * time.Second // the three handshake messages
	linkIdle          = 2 * time.Minute  // between records once linked
)

// historyChunkItems bounds the items of one history chunk (0: the
// package default); tests make it small to interrupt a transfer half-way.
var historyChunkItems = 0

// frameRefusal is the type byte of a refusal frame (sync.md §18.2).
const frameRefusal = 0x05

// LinkDevice makes a one-time link code (valid msync.CodeTTL, one use)
// for a new device, replacing any earlier code of this device. The code
// names this device's peer and up to four of its addresses, relay
// circuit addresses first.
func (n *Node) LinkDevice(ctx context.Context) (LinkOffer, error) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return LinkOffer{}, ErrClosed
	}
	if n.host == nil {
		return LinkOffer{}, ErrNotRunning
	}
	if err := n.canChangeListLocked(); err != nil {
		return LinkOffer{}, err
	}
	if n.list.Len() >= identity.MaxDevices {
		return LinkOffer{}, fmt.Errorf("%w (%d); revoke one first", msync.ErrDeviceListFull, identity.MaxDevices)
	}
	o, err := msync.NewOffer(msync.OfferConfig{PeerID: []byte(n.host.ID()), Addrs: codeAddrs(n.host.Addrs()), Now: now})
	if err != nil {
		return LinkOffer{}, err
	}
	text, err := o.Code().Text()
	if err != nil {
		return LinkOffer{}, err
	}
	n.own.offer = o
	return LinkOffer{Code: text, Expires: o.Code().Expires.UTC()}, nil
}

// codeAddrs picks the addresses a link code carries: relay circuits
// first, then public or LAN ones, then loopback (a second home on the
// same machine), at most msync.MaxCodeAddrs.
func codeAddrs(addrs []ma.Multiaddr) [][]byte {
	rank := func(a ma.Multiaddr) int {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			return 0
		}
		if isLoopback(a) {
			return 2
		}
		return 1
	}
	var out [][]byte
	for r := 0; r <= 2; r++ {
		for _, a := range addrs {
			if rank(a) == r && len(out) < msync.MaxCodeAddrs && len(a.Bytes()) <= msync.MaxAddrSize {
				out = append(out, a.Bytes())
			}
		}
	}
	return out
}

func isLoopback(a ma.Multiaddr) bool {
	if v, err := a.ValueForProtocol(ma.P_IP4); err == nil {
		return len(v) >= 4 && v[:4] == "127."
	}
	if v, err := a.ValueForProtocol(ma.P_IP6); err == nil {
		return v == "::1"
	}
	return false
}

// linkConn is one end of the link channel on a stream: frames in and
// out, records sealed and opened by the channel.
type linkConn struct {
	s  network.Stream
	br *bufio.Reader
	ch *msync.Channel
}

func newLinkConn(s network.Stream) *linkConn {
	return &linkConn{s: s, br: bufio.NewReaderSize(s, 64<<10)}
}

func (c *linkConn) readFrame() ([]byte, error) {
	f, err := wire.ReadFrame(c.br, msync.MaxFrameSize)
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the other device closed the link")
	}
	return f, err
}

func (c *linkConn) writeFrame(f []byte) error { return wire.WriteFrame(c.s, f) }

// send seals and writes one record.
func (c *linkConn) send(record []byte) error {
	frames, err := c.ch.Seal(record)
	if err != nil {
		return err
	}
	for _, f := range frames {
		if err := c.writeFrame(f); err != nil {
			return err
		}
	}
	return nil
}

// recv reads frames until a whole record is open.
func (c *linkConn) recv(deadline time.Duration) ([]byte, error) {
	c.s.SetReadDeadline(time.Now().Add(deadline))
	for {
		f, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		if len(f) > 0 && f[0] == frameRefusal {
			return nil, refusalError(f)
		}
		rec, err := c.ch.Open(f)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			return rec, nil
		}
	}
}

// refusalError turns a refusal frame into the error the user reads.
func refusalError(f []byte) error {
	if len(f) >= 2 {
		switch f[1] {
		case msync.RefuseCode:
			return fmt.Errorf("%w: the code is wrong, expired or already used (run `hush device link` again)", msync.ErrRefused)
		case msync.RefuseBusy:
			return fmt.Errorf("%w: the other device is linking another device; try again in a minute", msync.ErrRefused)
		case msync.RefuseFull:
			return fmt.Errorf("%w: %w", msync.ErrRefused, msync.ErrDeviceListFull)
		}
	}
	return msync.ErrRefused
}

// handleSyncStream serves /hush/sync/1: a new device linking with this
// device's code, or resuming its history transfer with a ticket.
func (n *Node) handleSyncStream(s network.Stream) {
	defer s.Close()
	c := newLinkConn(s)
	s.SetDeadline(time.Now().Add(linkHandshakeTime))
	first, err := c.readFrame()
	if err != nil || len(first) == 0 {
		s.Reset()
		return
	}
	remote := s.Conn().RemotePeer()
	n.mu.Lock()
	offer, busy := n.own.offer, n.own.linking
	cfg := msync.ResponderConfig{Device: n.device, List: n.list}
	refuse := n.canChangeListLocked() != nil || !n.own.linkFails.allow(remote, time.Now())
	if !busy && !refuse {
		n.own.linking = true
	}
	n.mu.Unlock()
	switch {
	case refuse:
		c.writeFrame([]byte{frameRefusal, msync.RefuseCode})
		return
	case busy:
		c.writeFrame([]byte{frameRefusal, msync.RefuseBusy})
		return
	}
	defer func() {
		n.mu.Lock()
		n.own.linking = false
		n.mu.Unlock()
	}()
	switch first[0] {
	case 0x01:
		if offer == nil {
			c.writeFrame([]byte{frameRefusal, msync.RefuseCode})
			return
		}
		c.ch, err = msync.NewResponder(offer, cfg)
	case 0x02:
		c.ch, err = msync.NewResumeResponder(n.lookupTicket, cfg)
	default:
		s.Reset()
		return
	}
	if err != nil {
		s.Reset()
		return
	}
	in := first
	for {
		out, done, err := c.ch.Step(in)
		if out != nil {
			if werr := c.writeFrame(out); werr != nil {
				return
			}
		}
		if err != nil {
			n.log.Info("link handshake refused", "err", err)
			n.mu.Lock()
			n.own.linkFails.failed(remote, time.Now())
			n.mu.Unlock()
			return
		}
		if done {
			break
		}
		if in, err = c.readFrame(); err != nil {
			return
		}
	}
	s.SetDeadline(time.Time{})
	var peerDev identity.DeviceID
	var name string
	if p := c.ch.Proposal(); p != nil {
		if peerDev, name, err = n.serveLink(c); err != nil {
			n.log.Warn("link failed", "err", err)
			n.publishDeviceEvent(DeviceEvent{Phase: "failed", ID: peerDev.Hex(), Name: name, Error: err.Error()})
			c.send(msync.MarshalClose(msync.CloseError))
			return
		}
	} else {
		t, _ := c.ch.Ticket()
		peerDev = t.Peer
		n.mu.Lock()
		name = n.nameOfDeviceLocked(peerDev)
		n.mu.Unlock()
	}
	if err := n.serveHistory(c, peerDev, name); err != nil {
		n.log.Info("history transfer interrupted; the new device resumes it", "err", err)
		n.publishDeviceEvent(DeviceEvent{Phase: "failed", ID: peerDev.Hex(), Name: name, Error: "history transfer interrupted: " + err.Error() + " (the new device resumes it)"})
	}
}

// linkFailures counts failed link handshakes per peer, so that a peer
// guessing codes (or tickets) is refused for a while: at most
// maxLinkFailures in linkFailWindow. Node.mu guards it.
type linkFailures map[peer.ID][]time.Time

// Limits on failed link handshakes.
const (
	maxLinkFailures = 5
	linkFailWindow  = 10 * time.Minute
	maxLinkPeers    = 1024 // peers tracked; beyond, the oldest records go
)

func (f *linkFailures) recent(p peer.ID, now time.Time) []time.Time {
	var keep []time.Time
	for _, at := range (*f)[p] {
		if now.Sub(at) < linkFailWindow {
			keep = append(keep, at)
		}
	}
	return keep
}

// allow reports whether p may try a handshake now.
func (f *linkFailures) allow(p peer.ID, now time.Time) bool {
	return len(f.recent(p, now)) < maxLinkFailures
}

// failed records a failed handshake of p.
func (f *linkFailures) failed(p peer.ID, now time.Time) {
	if *f == nil {
		*f = make(linkFailures)
	}
	if len(*f) >= maxLinkPeers {
		for q := range *f { // a flood of peers: forget some
			delete(*f, q)
			if len(*f) < maxLinkPeers/2 {
				break
			}
		}
	}
	(*f)[p] = append(f.recent(p, now), now)
}

// lookupTicket finds a resume ticket this device keeps.
func (n *Node) lookupTicket(id [msync.TicketIDSize]byte) (msync.Ticket, bool) {
	b, err := n.tabs.linkTickets.Get(id[:])
	if err != nil {
		return msync.Ticket{}, false
	}
	t, err := msync.ParseTicket(b)
	if err != nil || (!t.Expires.IsZero() && time.Now().After(t.Expires)) {
		return msync.Ticket{}, false
	}
	return *t, true
}

// serveLink is the existing device's side of a link after the handshake
// (sync.md §18.2 steps 1–3): grant the account key, check the new
// device's certificate, sign and commit the new list with the resume
// ticket, welcome.
func (n *Node) serveLink(c *linkConn) (identity.DeviceID, string, error) {
	p := c.ch.Proposal()
	dev, name := p.Device(), p.Name
	n.mu.Lock()
	acct := n.account
	n.mu.Unlock()
	grant, err := msync.MarshalGrant(acct)
	if err != nil {
		return dev, name, err
	}
	if err := c.send(grant); err != nil {
		return dev, name, err
	}
	rec, err := c.recv(linkHandshakeTime)
	if err != nil {
		return dev, name, err
	}
	cert, err := msync.ParseEnroll(rec)
	if err != nil {
		return dev, name, err
	}
	ticket, err := c.ch.Ticket()
	if err != nil {
		return dev, name, err
	}
	now := n.now()
	n.mu.Lock()
	if err := c.ch.CheckEnroll(cert, n.list); err != nil {
		n.mu.Unlock()
		if errors.Is(err, msync.ErrDeviceListFull) {
			c.send(msync.MarshalClose(msync.CloseFull))
		}
		return dev, name, err
	}
	list, err := msync.NextList(n.account, n.list, cert, now)
	if err != nil {
		n.mu.Unlock()
		return dev, name, err
	}
	t := n.newTxnLocked()
	n.applyDeviceListLocked(t, list, now)
	// The name it proposed shows at once; its own entry replaces it.
	n.applyDeviceInfoLocked(t, &msync.DeviceInfo{Device: dev, Clock: msync.Clock{Lamport: 1, Device: dev}, Name: name}, now)
	t.b.Put(n.tabs.linkTickets, ticket.ID[:], ticket.Marshal())
	n.syncOutLocked(t, &msync.DeviceList{List: list}, now)
	// Its groups follow once its entry arrives (the Welcomes need it).
	t.b.Put(n.tabs.identity, groupAddKey(dev), []byte{1})
	n.saveSeqLocked(t)
	if err := n.commitReleasingLockUnlock(t); err != nil {
		return dev, name, err
	}
	if err := c.send(msync.MarshalWelcome(list)); err != nil {
		return dev, name, err
	}
	n.log.Info("device linked")
	return dev, name, nil
}

// serveHistory answers the new device's wants with chunks of a snapshot
// of this device's store, until it closes the channel.
func (n *Node) serveHistory(c *linkConn, dev identity.DeviceID, name string) error {
	var prod *msync.Producer
	var sent uint64 // items sent on this connection (a resume counts from its cursor)
	for {
		rec, err := c.recv(linkIdle)
		if err != nil {
			return err
		}
		typ, err := msync.TypeOf(rec)
		if err != nil {
			return err
		}
		switch typ {
		case msync.RecordClose:
			reason, err := msync.ParseClose(rec)
			if err != nil {
				return err
			}
			if reason != msync.CloseComplete {
				return fmt.Errorf("the new device closed the link (reason %d)", reason)
			}
			n.finishTicket(c)
			n.publishDeviceEvent(DeviceEvent{Phase: "complete", ID: dev.Hex(), Name: name, Done: sent, Total: sent})
			return nil
		case msync.RecordWant:
			w, err := msync.ParseWant(rec)
			if err != nil {
				return err
			}
			if prod == nil {
				src, err := n.historySource()
				if err != nil {
					return err
				}
				prod = msync.NewProducer(src, msync.ProducerConfig{MaxItems: historyChunkItems})
			}
			ch, err := prod.Next(*w)
			if err != nil {
				return err
			}
			enc, err := ch.Marshal()
			if err != nil {
				return err
			}
			if err := c.send(enc); err != nil {
				return err
			}
			sent += uint64(len(ch.Items))
			n.publishDeviceEvent(DeviceEvent{Phase: "transfer", ID: dev.Hex(), Name: name, Done: sent, Total: sent + ch.Remaining})
		default:
			return fmt.Errorf("unexpected link record %d", typ)
		}
	}
}

// finishTicket forgets the resume ticket once the transfer completed.
func (n *Node) finishTicket(c *linkConn) {
	if t, err := c.ch.Ticket(); err == nil {
		n.tabs.linkTickets.Delete(t.ID[:])
	}
}

// historySource is a snapshot of what this device shows, for the history
// transfer: everything syncstate.go converts, plus the device entries
// and the account's display name.
func (n *Node) historySource() (msync.Source, error) {
	now := n.now()
	n.mu.Lock()
	rep, err := n.snapshotLocked(0)
	if err != nil {
		n.mu.Unlock()
		return nil, err
	}
	rep.Apply(&msync.DeviceList{List: n.list})
	t := n.newTxnLocked()
	if info, err := n.ownInfoLocked(t, now); err == nil {
		rep.Apply(info)
	}
	for _, info := range n.own.infos {
		if n.list.Contains(info.Device) {
			rep.Apply(info)
		}
	}
	rep.Apply(&msync.Setting{Key: settingProfileName, Clock: n.tickLocked(t, now), Value: []byte(n.profile.Name)})
	err = n.commitReleasingLockUnlock(t) // the clock ticks
	return rep, err
}

// settingProfileName is the synced setting of the account's display name.
const settingProfileName = "profile/name"

// publishDeviceEvent streams a device event to API subscribers.
func (n *Node) publishDeviceEvent(e DeviceEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.publishLocked([]Event{{Type: EventDevice, Device: &e}})
}
