package node

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/internal/wire"
)

// directStream is a queue's delivery stream to its device, with the
// frames written on it whose statuses have not come back yet
// (messaging.md "Pipelined rounds"). A goroutine reads the status frames
// and hands them to the queue's deliverLoop, which owns everything else:
// it writes the next round while earlier ones wait for their statuses.
type directStream struct {
	s    network.Stream
	acks chan statusFrame // status frames in order; one with an error ends them
	stop chan struct{}    // closed when the loop leaves the stream
	// inflight are the entries written and not yet answered, in the
	// order written (a prefix of the queue's pending entries, minus any
	// dropped from it meanwhile); since is when the oldest of them was
	// written, or when the last statuses came.
	inflight []*outEntry
	since    time.Time
	// ends holds, for each round in flight, how many of inflight it
	// ends with (so len(ends) is the number of rounds in flight).
	ends []int
}

// roundsInFlight is how many rounds a direct stream has unanswered at
// most. Two let the next message go while the last one is being synced
// at the receiver; more would only cut a fast sender's traffic into
// smaller rounds, each with its own commit at both ends.
const roundsInFlight = 2

type statusFrame struct {
	statuses []byte
	err      error
}

func newDirectStream(s network.Stream) *directStream {
	d := &directStream{s: s, acks: make(chan statusFrame, 4), stop: make(chan struct{})}
	go d.readStatuses()
	return d
}

// readStatuses reads status frames until the stream fails or the loop
// leaves it.
func (d *directStream) readStatuses() {
	for {
		f, err := wire.ReadFrame(d.s, deliverWindow)
		switch {
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF // io.EOF: closed by the peer, between frames
		case err != nil:
			err = fmt.Errorf("read acks: %w", err)
		case len(f) == 0:
			err = errors.New("read acks: an empty status frame")
		}
		select {
		case d.acks <- statusFrame{f, err}:
		case <-d.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// leave resets the stream and gives its unanswered entries back to the
// queue: they go again on the next round, whichever way it goes (the
// receiver drops those it already has). Only the queue's loop calls it.
func (d *directStream) leave() {
	close(d.stop)
	d.s.Reset()
	for _, e := range d.inflight {
		e.inflight = false
	}
	d.inflight, d.ends = nil, nil
}

// room is how many more frames may be written before statuses come.
func (d *directStream) room() int {
	switch {
	case d == nil:
		return deliverWindow
	case len(d.ends) >= roundsInFlight:
		return 0
	}
	return deliverWindow - len(d.inflight)
}

// deadline fires when the oldest unanswered frame has waited
// streamDeadline without any status coming back; nil with none waiting.
func (d *directStream) deadline() <-chan time.Time {
	if d == nil || len(d.inflight) == 0 {
		return nil
	}
	return time.After(streamDeadline - time.Since(d.since))
}

// writeRound writes batch as frames after those already in flight.
func (n *Node) writeRound(d *directStream, batch []*outEntry) error {
	buf := make([]byte, 0, 64*len(batch))
	for _, e := range batch {
		var err error
		buf, err = wire.AppendFrame(buf, encodeDirect(n.cert, e))
		if err != nil {
			return err
		}
	}
	d.s.SetWriteDeadline(time.Now().Add(streamDeadline))
	if _, err := d.s.Write(buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if len(d.inflight) == 0 {
		d.since = time.Now()
	}
	for _, e := range batch {
		e.inflight = true
	}
	d.inflight = append(d.inflight, batch...)
	d.ends = append(d.ends, len(d.inflight))
	return nil
}

// takeStatuses records the outcome of the oldest in-flight entries, one
// status each, in order. A "try again" ends the stream's use (errNotStored):
// the entries from it on stay queued.
func (n *Node) takeStatuses(d *directStream, statuses []byte) error {
	if len(statuses) > len(d.inflight) {
		return errors.New("peer acknowledged more frames than were sent")
	}
	batch := d.inflight[:len(statuses):len(statuses)]
	d.inflight = d.inflight[len(statuses):]
	d.since = time.Now()
	ends := d.ends[:0]
	for _, end := range d.ends {
		if end -= len(statuses); end > 0 {
			ends = append(ends, end)
		}
	}
	d.ends = ends
	for _, e := range batch {
		e.inflight = false
	}
	if tap := taps.Load(); tap != nil && tap.acked != nil {
		tap.acked(n, batch)
	}
	for _, e := range batch {
		if e.commitDone != nil {
			<-e.commitDone // record the outcome after the entry itself
		}
	}
	n.settle(batch, statuses, StateDelivered)
	for _, st := range statuses {
		if st == ackRetry {
			// Nothing from here on was taken (the receiver could not
			// store it now): back off instead of sending the same
			// frames again at once.
			return errNotStored
		}
	}
	return nil
}

var errNotStored = errors.New("the receiving device could not store the messages now")

// deliverOnce delivers batch on s outside any queue's loop (the offline
// status a stopping node sends): one round, its statuses waited for. It
// leaves s reset.
func (n *Node) deliverOnce(s network.Stream, batch []*outEntry) error {
	d := newDirectStream(s)
	defer d.leave()
	if err := n.writeRound(d, batch); err != nil {
		return err
	}
	deadline := d.deadline()
	for len(d.inflight) > 0 {
		select {
		case f := <-d.acks:
			if f.err != nil {
				return f.err
			}
			if err := n.takeStatuses(d, f.statuses); err != nil {
				return err
			}
		case <-deadline:
			return errRoundDeadline
		}
	}
	return nil
}

var errRoundDeadline = errors.New("no status within the round deadline")
