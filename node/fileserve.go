package node

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/hushnet/hush/crypto/codec"
	"github.com/hushnet/hush/crypto/identity"
	"github.com/hushnet/hush/internal/wire"
	"github.com/hushnet/hush/node/attach"
	"github.com/hushnet/hush/node/group"
)

// ProtocolFile is direct download of an attachment from the device that
// sent it (docs/protocol/files.md §19.3).
const ProtocolFile = "/hush/file/1"

// /hush/file/1 limits and statuses.
const (
	fileReqVersion  byte = 1
	fileReqSize          = 1 + attach.HashSize + 8 + 8
	fileFrameData        = 64 << 10 // bytes of blob per data frame
	fileMaxRequest       = 1 << 20  // bytes one request may ask for
	fileStreamIdle       = 2 * time.Minute
	fileStatusOK    byte = 0
	fileStatusNone  byte = 1 // unknown blob
	fileStatusDeny  byte = 2 // not a device it was sent to
	fileStatusRange byte = 3 // bad range
)

// fileFrameSend is how many bytes of blob the data frames this device
// sends hold: with the frame's length prefix and yamux's 12-byte header,
// a frame is one yamux message (at most 64 KiB) and one Noise transport
// message (at most 65,519 bytes of plaintext), so it is encrypted once
// and written in one system call; a frame of 64 KiB took three of each.
const fileFrameSend = 65535 - 16 - 12 - wire.HeaderSize

// fileRequest is one request on /hush/file/1.
type fileRequest struct {
	hash           [attach.HashSize]byte
	offset, length uint64
}

func (q *fileRequest) marshal() []byte {
	w := codec.NewWriter(fileReqSize)
	w.U8(fileReqVersion)
	w.Fixed(q.hash[:])
	w.U64(q.offset)
	w.U64(q.length)
	return w.Bytes()
}

func parseFileRequest(b []byte) (*fileRequest, error) {
	r := codec.NewReader(b)
	if v := r.U8(); r.Err() == nil && v != fileReqVersion {
		return nil, fmt.Errorf("file request version %d", v)
	}
	q := &fileRequest{}
	copy(q.hash[:], r.Fixed(attach.HashSize))
	q.offset, q.length = r.U64(), r.U64()
	if err := r.Done(); err != nil {
		return nil, err
	}
	return q, nil
}

// handleFileStream serves /hush/file/1: ranges of blobs this device sent,
// to the devices it sent them to, one request at a time. When the stream
// ends it logs (debug) the blob bytes it wrote, a request cut short
// included: what the process tests count as sent again after a restart.
func (n *Node) handleFileStream(s network.Stream) {
	defer s.Close()
	var written int64
	defer func() { n.log.Debug("file stream ended", "bytes", written) }()
	var reps serveReports
	br := bufio.NewReaderSize(s, 4<<10)
	frame := make([]byte, wire.HeaderSize+fileFrameSend)
	for {
		s.SetReadDeadline(time.Now().Add(fileStreamIdle))
		b, err := wire.ReadFrame(br, fileReqSize)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.Reset()
			}
			return
		}
		q, err := parseFileRequest(b)
		if err != nil {
			s.Reset()
			return
		}
		status, f, size, who := n.openServedBlob(q.hash, s.Conn().RemotePeer())
		if status == fileStatusOK && (q.length == 0 || q.length > fileMaxRequest || q.offset > uint64(size) || q.length > uint64(size)-q.offset) {
			status = fileStatusRange
		}
		s.SetWriteDeadline(time.Now().Add(streamDeadline))
		if err := wire.WriteFrame(s, []byte{status}); err != nil || status != fileStatusOK {
			if f != nil {
				f.Close()
			}
			if err != nil {
				s.Reset()
				return
			}
			continue
		}
		k, err := serveRange(s, f, int64(q.offset), int64(q.length), frame)
		written += k
		f.Close()
		if err != nil {
			s.Reset()
			return
		}
		n.fileServed.Add(int64(q.length))
		reps.served(n, q.hash, who, int64(q.offset+q.length), size)
	}
}

// serveReports are a stream's serve progress reporters, by blob.
type serveReports map[[attach.HashSize]byte]*progress

// served reports that a range ending at end of a blob of size bytes went
// to the device who: how far that device has fetched it from here.
func (r *serveReports) served(n *Node, hash [attach.HashSize]byte, who servedTo, end, size int64) {
	if *r == nil {
		*r = make(serveReports)
	}
	rep := (*r)[hash]
	if rep == nil {
		rep = n.newProgress(FileProgress{Phase: PhaseServe, ID: who.msgID, Hash: hex.EncodeToString(hash[:]), Device: who.device, Total: size})
		(*r)[hash] = rep
	}
	if end >= size {
		rep.done()
	} else {
		rep.report(end)
	}
}

// servedTo is who a served blob goes to: its message and the device
// fetching it (hex; "" if the peer is not a device known here).
type servedTo struct{ msgID, device string }

// serveRange writes length bytes of f from offset as data frames of up
// to len(frame)-wire.HeaderSize bytes and returns the bytes of the frames
// written. Each frame's data is read from f straight into frame, after
// its length prefix: nothing is copied or allocated per frame.
func serveRange(w io.Writer, f *os.File, offset, length int64, frame []byte) (int64, error) {
	var written int64
	for length > 0 {
		m := min(int64(len(frame)-wire.HeaderSize), length)
		if _, err := f.ReadAt(frame[wire.HeaderSize:wire.HeaderSize+m], offset); err != nil {
			return written, err
		}
		if err := wire.PutHeader(frame, int(m)); err != nil {
			return written, err
		}
		if _, err := w.Write(frame[:wire.HeaderSize+m]); err != nil {
			return written, err
		}
		written += m
		offset += m
		length -= m
	}
	return written, nil
}

// openServedBlob opens a blob this device sent, for a peer that is one
// of the devices it was sent to, a device its conversation has now (a
// contact's device linked since), or one of this account's devices.
func (n *Node) openServedBlob(hash [attach.HashSize]byte, remote peer.ID) (byte, *os.File, int64, servedTo) {
	n.mu.Lock()
	var rec fileRec
	err := n.getJSON(n.tabs.files, hash[:], &rec)
	if pending := n.filesPending[hash]; err != nil && pending != nil {
		// Sent, its commit not landed yet: wait for it.
		if tap := taps.Load(); tap != nil && tap.fileWait != nil {
			tap.fileWait(n)
		}
		n.mu.Unlock()
		<-pending
		n.mu.Lock()
		err = n.getJSON(n.tabs.files, hash[:], &rec)
	}
	allowed := false
	who := servedTo{msgID: rec.MsgID}
	if err == nil && rec.Own {
		// The devices it was sent to, and the account's own devices (one
		// linked later has it in its history).
		is := func(d identity.DeviceID) bool {
			pid, ok := n.peerOfLocked(d)
			if ok && pid == remote {
				who.device = hex.EncodeToString(d[:])
			}
			return ok && pid == remote
		}
		allowed = slices.ContainsFunc(rec.Allowed, func(d []byte) bool {
			return len(d) == identity.DeviceIDSize && is(identity.DeviceID(d))
		}) || slices.ContainsFunc(n.list.Devices(), func(c *identity.DeviceCert) bool {
			return c.DeviceID() != n.cert.DeviceID() && is(c.DeviceID())
		}) || slices.ContainsFunc(n.convDevicesLocked(rec.Conv), is)
	}
	n.mu.Unlock()
	switch {
	case err != nil || !rec.Own:
		return fileStatusNone, nil, 0, who
	case !allowed:
		return fileStatusDeny, nil, 0, who
	}
	f, err := os.Open(n.blobPath(hash, ".blob"))
	if err != nil {
		n.log.Warn("a sent file's blob is gone")
		return fileStatusNone, nil, 0, who
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fileStatusNone, nil, 0, who
	}
	return fileStatusOK, f, st.Size(), who
}

// convDevicesLocked lists the devices a conversation has now: the
// contact's, or a group's members'.
func (n *Node) convDevicesLocked(conv []byte) []identity.DeviceID {
	var out []identity.DeviceID
	if acc, err := identity.ParseAccountID(conv); err == nil {
		if c := n.contacts[acc]; c != nil {
			for _, d := range c.card.List.Devices() {
				out = append(out, d.DeviceID())
			}
		}
		return out
	}
	if isGroupConv(conv) {
		if gs := n.groups[group.GroupID(conv[1:])]; gs != nil {
			for _, m := range gs.eng.State().Members {
				out = append(out, m.Devices...)
			}
		}
	}
	return out
}
