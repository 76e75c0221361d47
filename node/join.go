package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/store"
	msync "github.com/hushnet/hush/sync"
)

// The new device's side of a link (docs/protocol/sync.md §18.2, §18.4):
// JoinDevice links and transfers history in a home with no daemon; a
// linked home whose transfer was interrupted resumes it (JoinDevice
// again, or the daemon: resumeHistory).

// linkDialTime bounds reaching the existing device; closeWait how long
// the new device waits for it to end the stream after the last record.
const (
	linkDialTime = 30 * time.Second
	closeWait    = 5 * time.Second
)

// ErrHistoryIncomplete is returned by JoinDevice when the link worked but
// the history transfer stopped before its end: the home is a device of
// the account, and `hush daemon` (or join again) resumes the transfer.
var ErrHistoryIncomplete = errors.New("history transfer incomplete")

// JoinDevice links a new device to an existing account with a code, in
// an empty home, and transfers history; the home then runs with `hush
// daemon`. On a home that was linked but whose transfer was interrupted
// it resumes the transfer (the code is not needed). A home that holds
// any other identity is refused with ErrIdentityExists.
func JoinDevice(ctx context.Context, home string, opts JoinOptions) (*Self, error) {
	if _, err := os.Stat(storeDir(home)); err == nil {
		return resumeJoin(ctx, home, opts)
	}
	name, err := checkName(cmp.Or(opts.Name, DefaultDeviceName()))
	if err != nil {
		return nil, fmt.Errorf("device name: %w", err)
	}
	code, err := msync.ParseCode(opts.Code, time.Now())
	if err != nil {
		return nil, err
	}
	device, err := identity.NewDevice()
	if err != nil {
		return nil, err
	}
	ch, err := msync.NewInitiator(code, msync.InitiatorConfig{Device: device, Name: name, HistoryDays: opts.HistoryDays})
	if err != nil {
		return nil, err
	}
	h, err := newJoinHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	c, err := dialLink(ctx, h, code.PeerID, code.Addrs)
	if err != nil {
		return nil, err
	}
	defer c.s.Close()
	c.ch = ch
	if err := c.handshake(); err != nil {
		return nil, err
	}
	offered, _ := ch.Offered()
	rec, err := c.recv(linkHandshakeTime)
	if err != nil {
		return nil, err
	}
	account, err := msync.ParseGrant(rec, offered.Account())
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cert, err := account.Certify(device, now)
	if err != nil {
		return nil, err
	}
	if err := c.send(msync.MarshalEnroll(cert)); err != nil {
		return nil, err
	}
	if rec, err = c.recv(linkHandshakeTime); err != nil {
		return nil, err
	}
	if typ, _ := msync.TypeOf(rec); typ == msync.RecordClose {
		if reason, _ := msync.ParseClose(rec); reason == msync.CloseFull {
			return nil, msync.ErrDeviceListFull
		}
		return nil, msync.ErrRefused
	}
	list, err := msync.ParseWelcome(rec)
	if err != nil {
		return nil, err
	}
	if err := ch.CheckWelcome(list, cert); err != nil {
		return nil, err
	}
	ticket, err := ch.Ticket()
	if err != nil {
		return nil, err
	}
	// From this commit on the home is a device of the account, its
	// history marked incomplete.
	db, err := openStore(home, opts.Passphrase, opts.KDF, false, nil)
	if err != nil {
		return nil, err
	}
	var since uint64
	if opts.HistoryDays > 0 {
		clock := time.Now
		if opts.Now != nil {
			clock = opts.Now
		}
		since = uint64(clock().Add(-time.Duration(opts.HistoryDays) * 24 * time.Hour).UnixMilli())
	}
	where := &msync.LinkCode{Expires: code.Expires, PeerID: code.PeerID, Addrs: code.Addrs} // no secret
	whereBytes, err := where.Marshal()
	if err != nil {
		db.Close()
		return nil, err
	}
	state := msync.TransferState{SinceMS: since}
	_, err = writeIdentity(db, account, device, cert, list, profileRec{Name: name, Created: now.UTC(), DeviceName: name},
		func(b *store.Batch, t tables) {
			b.Put(t.identity, idLinkTicket, ticket.Marshal())
			b.Put(t.identity, idLinkCode, whereBytes)
			b.Put(t.identity, idTransfer, state.Marshal())
		}, now)
	db.Close()
	if err != nil {
		return nil, err
	}
	n, err := New(Config{Home: home, Passphrase: opts.Passphrase, KDF: opts.KDF})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	if err := n.receiveHistory(c, opts.Progress); err != nil {
		return nil, fmt.Errorf("%w: %w; run `hush daemon` (or this command again) to resume it", ErrHistoryIncomplete, err)
	}
	return n.selfOffline()
}

// resumeJoin resumes the history transfer of a linked home, or refuses a
// home that is not one.
func resumeJoin(ctx context.Context, home string, opts JoinOptions) (*Self, error) {
	n, err := New(Config{Home: home, Passphrase: opts.Passphrase, KDF: opts.KDF})
	if err != nil {
		if errors.Is(err, ErrNoIdentity) {
			return nil, ErrIdentityExists // a store without an identity: not ours to touch
		}
		return nil, err
	}
	defer n.Close()
	if p := n.historyProgress(); p == nil {
		return nil, ErrIdentityExists
	}
	h, err := newJoinHost()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := n.resumeHistory(ctx, h, opts.Progress); err != nil {
		return nil, fmt.Errorf("%w: %w; run `hush daemon` (or this command again) to resume it", ErrHistoryIncomplete, err)
	}
	return n.selfOffline()
}

// resumeHistory reaches the existing device with the stored ticket and
// continues the transfer from the stored cursor.
func (n *Node) resumeHistory(ctx context.Context, h host.Host, progress func(HistoryProgress)) error {
	n.mu.Lock()
	tb, err := n.tabs.identity.Get(idLinkTicket)
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("no resume ticket: %w", err)
	}
	ticket, err := msync.ParseTicket(tb)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	var pid []byte
	var addrs [][]byte
	if cb, err := n.tabs.identity.Get(idLinkCode); err == nil {
		if where, err := msync.ParseCodeBytes(cb); err == nil {
			pid, addrs = where.PeerID, where.Addrs
		}
	}
	// The existing device's own entry (transferred early) is fresher.
	if e := entryOf(n.own.infos[ticket.Peer]); e != nil && len(e.PeerID) > 0 {
		pid = e.PeerID
		addrs = append(append([][]byte(nil), e.Addrs...), addrs...)
	}
	device := n.device
	n.mu.Unlock()
	ch, err := msync.NewResumeInitiator(*ticket, msync.InitiatorConfig{Device: device})
	if err != nil {
		return err
	}
	c, err := dialLink(ctx, h, pid, addrs)
	if err != nil {
		return err
	}
	defer c.s.Close()
	c.ch = ch
	if err := c.handshake(); err != nil {
		return err
	}
	return n.receiveHistory(c, progress)
}

// dialLink opens /hush/sync/1 to the existing device. The stream is
// reset when ctx ends.
func dialLink(ctx context.Context, h host.Host, pidBytes []byte, addrs [][]byte) (*linkConn, error) {
	pid, err := peer.IDFromBytes(pidBytes)
	if err != nil {
		return nil, fmt.Errorf("link code: the device's peer ID: %w", err)
	}
	ai := peer.AddrInfo{ID: pid}
	for _, a := range addrs {
		if m, err := ma.NewMultiaddrBytes(a); err == nil {
			ai.Addrs = append(ai.Addrs, m)
		}
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, linkDialTime)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("cannot reach the device that showed the code (is its daemon running?): %w", err)
	}
	// Through a relay's circuit the connection is limited (libp2p's
	// default: 2 minutes, 128 KiB each way) until a hole punch makes a
	// direct one: enough for the handshake and a small history; a larger
	// transfer is cut there and resumes.
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "hush device link"), pid, protocol.ID(ProtocolSync))
	if err != nil {
		return nil, fmt.Errorf("the device that showed the code does not answer links: %w", err)
	}
	context.AfterFunc(outer, func() { s.Reset() })
	return newLinkConn(s), nil
}

// handshake runs the initiator's side of the Noise handshake (the
// channel makes the first frame: hello for a link, resume with a ticket).
func (c *linkConn) handshake() error {
	c.s.SetDeadline(time.Now().Add(linkHandshakeTime))
	defer c.s.SetDeadline(time.Time{})
	out, done, err := c.ch.Step(nil)
	for {
		if err != nil {
			return err
		}
		if out != nil {
			if err := c.writeFrame(out); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		in, err := c.readFrame()
		if err != nil {
			return err
		}
		if len(in) > 0 && in[0] == frameRefusal {
			return refusalError(in)
		}
		out, done, err = c.ch.Step(in)
	}
}

// receiveHistory asks for chunks from the stored cursor and commits each
// with the new cursor, until the chunk that ends the transfer.
func (n *Node) receiveHistory(c *linkConn, progress func(HistoryProgress)) error {
	n.mu.Lock()
	st, err := n.transferStateLocked()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if st == nil || st.Complete {
		return nil
	}
	target := &syncTarget{n: n}
	cons := msync.NewConsumer(target, *st)
	for !cons.Complete() {
		w := cons.Want()
		if err := c.send(w.Marshal()); err != nil {
			return err
		}
		rec, err := c.recv(linkIdle)
		if err != nil {
			return err
		}
		chunk, err := msync.ParseChunk(rec)
		if err != nil {
			return err
		}
		n.mu.Lock()
		target.t, target.now = n.newTxnLocked(), n.now()
		_, err = cons.Apply(chunk)
		if err != nil {
			n.abortLocked(target.t)
			n.mu.Unlock()
			if errors.Is(err, msync.ErrTransferGap) {
				continue // ask again from the cursor
			}
			return err
		}
		s := cons.State()
		target.t.b.Put(n.tabs.identity, idTransfer, s.Marshal())
		if s.Complete {
			target.t.b.Delete(n.tabs.identity, idLinkTicket)
		}
		n.saveSeqLocked(target.t)
		if err := n.commitReleasingLockUnlock(target.t); err != nil {
			return err
		}
		if progress != nil {
			progress(HistoryProgress{Done: s.Done, Total: s.Total, Complete: s.Complete})
		}
	}
	// The existing device forgets the ticket when it reads the close;
	// wait for it to end the stream, so the close is not lost with the
	// connection.
	if err := c.send(msync.MarshalClose(msync.CloseComplete)); err == nil {
		c.s.CloseWrite()
		c.s.SetReadDeadline(time.Now().Add(closeWait))
		io.Copy(io.Discard, c.br)
	}
	return nil
}

// abortLocked undoes what an uncommitted transaction did in memory.
func (n *Node) abortLocked(t *txn) {
	n.records.committed(t.msgs, false)
	if t.onFail != nil {
		t.onFail()
	}
	n.dropQueuedLocked(t.queued)
}

// transferStateLocked reads the history transfer's state (nil: this
// device was not linked by a transfer, or it completed long ago).
func (n *Node) transferStateLocked() (*msync.TransferState, error) {
	b, err := n.tabs.identity.Get(idTransfer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return msync.ParseTransferState(b)
}

// historyProgress says how far an unfinished history transfer got (nil
// when there is none).
func (n *Node) historyProgress() *HistoryProgress {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.historyProgressLocked()
}

func (n *Node) historyProgressLocked() *HistoryProgress {
	st, err := n.transferStateLocked()
	if err != nil || st == nil || st.Complete {
		return nil
	}
	return &HistoryProgress{Done: st.Done, Total: st.Total}
}

// resumeLoop resumes an unfinished history transfer while the daemon
// runs: at once, then every resumeEvery until it completes.
func (n *Node) resumeLoop(ctx context.Context) {
	for n.historyProgress() != nil {
		n.mu.Lock()
		h := n.host
		n.mu.Unlock()
		if h == nil {
			return
		}
		if err := n.resumeHistory(ctx, h, nil); err != nil {
			n.log.Info("history transfer not resumed yet", "err", err)
		} else {
			n.log.Info("history transfer complete")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(resumeEvery):
		}
	}
}

// resumeEvery is how often the daemon tries to resume a transfer.
const resumeEvery = 30 * time.Second

// selfOffline describes the device without a running host (no link).
func (n *Node) selfOffline() (*Self, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &Self{
		Name:        n.profile.Name,
		Account:     n.cert.Account().Hex(),
		Device:      n.cert.DeviceID().Hex(),
		Fingerprint: fingerprint(n.cert.Account()),
		Protected:   n.db.Protected(),
	}, nil
}
