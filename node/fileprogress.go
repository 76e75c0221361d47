package node

import (
	"io"
	"sync"
)

// Progress of the files this device sends, as file events (docs/API.md
// "Files"): sealing a file into the spool, its upload to the relay, and
// a recipient device's download from here (/hush/file/1). Like presence,
// the events are volatile: numbered like every event, never kept in the
// event log (a client catching up has the message's state instead).

// fileProgressStep is the least progress between two events of one
// phase; a phase of more than 100 steps reports every hundredth.
const fileProgressStep = 1 << 20

// progress reports one phase of one file. It is safe for concurrent use
// (an upload's answers and its end come from one goroutine, but a served
// file's streams each have their own).
type progress struct {
	n    *Node
	mu   sync.Mutex
	base FileProgress
	step int64
	next int64 // the next report is due at this many bytes
	over bool  // done or failed: nothing more is reported
}

// newProgress returns the reporter of a phase; base names it (Phase,
// ID or TxnID, Hash, Total). Nothing is published until report.
func (n *Node) newProgress(base FileProgress) *progress {
	return &progress{n: n, base: base, step: max(fileProgressStep, base.Total/100)}
}

// report publishes bytes of the total if it is the first report, or a
// step past the last one.
func (p *progress) report(bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.over || (bytes < p.next && p.next > 0) {
		return
	}
	p.next = max(bytes+p.step, 1)
	ev := p.base
	ev.Bytes = bytes
	p.n.publishFileProgress(ev)
}

// done publishes the end of the phase: all of the total.
func (p *progress) done() {
	p.end(FileProgress{Bytes: p.base.Total, Done: true})
}

// fail publishes that the phase stopped at bytes, and why.
func (p *progress) fail(bytes int64, err error) {
	p.end(FileProgress{Bytes: bytes, Error: err.Error()})
}

func (p *progress) end(last FileProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.over {
		return
	}
	p.over = true
	ev := p.base
	ev.Bytes, ev.Done, ev.Error = last.Bytes, last.Done, last.Error
	p.n.publishFileProgress(ev)
}

// publishFileProgress publishes one file event (in a commit of its own
// that writes nothing but the event counter).
func (n *Node) publishFileProgress(ev FileProgress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.publishLocked([]Event{{Type: EventFile, File: &ev}})
}

// countingReader calls report with the bytes read so far after each
// read, and keeps the first read error other than io.EOF (the file's
// own: a file that cannot be read, not the spool that cannot be
// written).
type countingReader struct {
	r      io.Reader
	n      int64
	report func(int64)
	err    error
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n += int64(k)
	c.report(c.n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return k, err
}
