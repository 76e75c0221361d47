package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hushnet/hush/api/apitypes"
	"github.com/hushnet/hush/crypto/identity"
)

// Missing messages (docs/protocol/messaging.md, "Missing messages"): each
// 1:1 text carries its place among the texts its sending device sent in
// the conversation (payload.Counter, kept in the text's msgRec). The
// receiver keeps, per sender
// device, the highest counter seen and the ranges below it that have not
// arrived (gapTrack); a range still open after the grace period is
// reported: a notice in the conversation and an EventMissing. A text that
// arrives after all fills its range and lowers the notice's count; at
// zero the notice is withdrawn.

// Gap tracking limits.
const (
	// defaultGapGrace is how long a gap may stay open before it is
	// reported: messages from several mailboxes arrive out of order,
	// and a relay that is down comes back.
	defaultGapGrace = 10 * time.Minute
	// maxGapRanges bounds the ranges kept per sender device; past it
	// the lowest are forgotten (a notice they belong to stays as it is).
	maxGapRanges = 64
	// MaxMissing is the largest count a notice gives ("N or more").
	MaxMissing = apitypes.MaxMissing
	// dirSystem is the direction of an entry the node wrote itself.
	dirSystem = "system"
)

// KindMissing is the kind of a missing-messages notice.
const KindMissing = apitypes.KindMissing

// EventMissing reports a missing-messages notice: new, changed, or
// withdrawn (Missing 0).
const EventMissing = apitypes.EventMissing

// gapGraceNS is the grace period in nanoseconds (tests shorten it).
var gapGraceNS atomic.Int64

func init() { gapGraceNS.Store(int64(defaultGapGrace)) }

func gapGrace() time.Duration { return time.Duration(gapGraceNS.Load()) }

// gapRange is a run of counters that have not arrived, From to To
// inclusive.
type gapRange struct {
	From  uint64 `json:"f"`
	To    uint64 `json:"t"`
	Since int64  `json:"s"` // when it opened, unix ms
	// Notice is the ID (hex) of the notice that reported it; empty while
	// the range is within its grace period.
	Notice string `json:"n,omitempty"`
}

func (r gapRange) size() uint64 { return r.To - r.From + 1 }

// gapTrack is what one sender device's counters told the receiver. It
// performs no I/O; the node stores it (counters table, "r" + device ID).
type gapTrack struct {
	Account  []byte     `json:"a"`           // the sender's account: the conversation
	High     uint64     `json:"h"`           // the highest counter seen; 0: none yet
	HighTime uint64     `json:"t"`           // the sender's time (ms) on the text with counter High
	Gaps     []gapRange `json:"g,omitempty"` // in counter order
}

func (g *gapTrack) clone() *gapTrack {
	c := *g
	c.Gaps = slices.Clone(g.Gaps)
	return &c
}

// observe records counter c on a newly stored text sent at senderMS (the
// sender's clock). It returns the ID of the notice whose count fell by
// one (when c filled a reported range) and whether a range opened.
//
//   - The first counter seen is where tracking starts: what came before
//     it (older versions, a new device) is not missing.
//   - Above High: the counters between are missing (a range opens).
//   - At or below High with a sender time after the text with counter
//     High: the sender's counter went back (its store came from an old
//     backup). Tracking starts again at c; open ranges are dropped (they
//     could no longer be told from new texts) and notices stay.
//   - Otherwise it was sent before that text: in a range it fills it;
//     in none it is a late text from before tracking started (or a
//     reset), ignored.
func (g *gapTrack) observe(c, senderMS uint64, now time.Time) (filled string, opened bool) {
	switch {
	case c == 0:
		return "", false
	case g.High == 0:
		g.High, g.HighTime = c, senderMS
		return "", false
	case c > g.High:
		if c > g.High+1 {
			g.Gaps = append(g.Gaps, gapRange{From: g.High + 1, To: c - 1, Since: now.UnixMilli()})
			opened = true
		}
		g.High, g.HighTime = c, senderMS
		g.capRanges()
		return "", opened
	case senderMS > g.HighTime:
		g.High, g.HighTime, g.Gaps = c, senderMS, nil
		return "", false
	}
	for i, r := range g.Gaps {
		if c < r.From || c > r.To {
			continue
		}
		switch {
		case r.From == r.To:
			g.Gaps = slices.Delete(g.Gaps, i, i+1)
		case c == r.From:
			g.Gaps[i].From++
		case c == r.To:
			g.Gaps[i].To--
		default:
			hi := r
			hi.From = c + 1
			g.Gaps[i].To = c - 1
			g.Gaps = slices.Insert(g.Gaps, i+1, hi)
			g.capRanges()
		}
		return r.Notice, false
	}
	return "", false
}

// capRanges forgets the lowest ranges past maxGapRanges.
func (g *gapTrack) capRanges() {
	if len(g.Gaps) > maxGapRanges {
		g.Gaps = slices.Delete(g.Gaps, 0, len(g.Gaps)-maxGapRanges)
	}
}

// nextDue returns when the earliest range in its grace period is due.
func (g *gapTrack) nextDue(grace time.Duration) (time.Time, bool) {
	var next time.Time
	for _, r := range g.Gaps {
		if r.Notice != "" {
			continue
		}
		at := time.UnixMilli(r.Since).Add(grace)
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// report gives the ranges whose grace period has ended by now to notice
// id and returns how many counters they cover (saturating); 0 if none
// was due.
func (g *gapTrack) report(id string, now time.Time, grace time.Duration) uint64 {
	var count uint64
	for i, r := range g.Gaps {
		if r.Notice != "" || now.Before(time.UnixMilli(r.Since).Add(grace)) {
			continue
		}
		g.Gaps[i].Notice = id
		if count += r.size(); count < r.size() {
			count = ^uint64(0)
		}
	}
	return count
}

// counters is the memory of the conversation counters: the last counter
// this device gave a text to each contact, and a gapTrack per sender
// device. It owns its fields and its lock; the node reads and writes the
// store and tells it what it wrote.
type counters struct {
	mu       sync.Mutex
	sent     map[identity.AccountID]uint64
	received map[identity.DeviceID]*gapTrack
	// unsaved are the gapTracks changed in memory and not yet written
	// into a batch, with what they were before (nil: not loaded).
	unsaved map[identity.DeviceID]*gapTrack
	looping bool          // a gapLoop runs
	wake    chan struct{} // wakes the gapLoop: a range opened
}

func newCounters() *counters {
	return &counters{
		sent:     make(map[identity.AccountID]uint64),
		received: make(map[identity.DeviceID]*gapTrack),
		unsaved:  make(map[identity.DeviceID]*gapTrack),
		wake:     make(chan struct{}, 1),
	}
}

// setTrack replaces a device's gapTrack in memory; saveTracksLocked
// writes it.
func (cs *counters) setTrack(dev identity.DeviceID, g *gapTrack) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.unsaved[dev]; !ok {
		cs.unsaved[dev] = cs.received[dev]
	}
	cs.received[dev] = g
}

// trackKey is a gapTrack's ID in the counters table.
func trackKey(dev identity.DeviceID) []byte { return append([]byte("r"), dev[:]...) }

// errFound stops a scan.
var errFound = errors.New("found")

// lastSentLocked returns the last counter given to a text to acc. The
// counter is kept in the text's own record (msgRec.Counter), so a send
// writes nothing more; after a start, the conversation is read backwards
// once, to the newest text that has one.
func (n *Node) lastSentLocked(acc identity.AccountID) uint64 {
	cs := n.counters
	cs.mu.Lock()
	last, ok := cs.sent[acc]
	cs.mu.Unlock()
	if ok {
		return last
	}
	n.tabs.messages.ScanSeqReverse(acc[:], 0, math.MaxUint64, 0, func(_ uint64, v []byte) error {
		var m msgRec
		if decodeMsgRec(v, &m) == nil && m.Dir == "out" && m.Counter != 0 {
			last = m.Counter
			return errFound
		}
		return nil
	})
	// An unreadable conversation starts counting again, which
	// receivers take as a reset, not as missing messages.
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.sent[acc] = last
	return last
}

// takeCounterLocked records that counter c went to a text to acc (the
// text's record holds it). A failed commit gives it back unless a later
// text took the next one.
func (n *Node) takeCounterLocked(t *txn, acc identity.AccountID, c uint64) {
	cs := n.counters
	cs.mu.Lock()
	cs.sent[acc] = c
	cs.mu.Unlock()
	t.undo(func() {
		cs.mu.Lock()
		if cs.sent[acc] == c {
			cs.sent[acc] = c - 1
		}
		cs.mu.Unlock()
	})
}

// trackLocked returns a copy of a sender device's gapTrack (a new one
// for a device never seen).
func (n *Node) trackLocked(dev identity.DeviceID, acc identity.AccountID) *gapTrack {
	cs := n.counters
	cs.mu.Lock()
	g := cs.received[dev]
	cs.mu.Unlock()
	if g == nil {
		g = &gapTrack{}
		if err := n.getJSON(n.tabs.counters, trackKey(dev), g); err != nil {
			g = &gapTrack{}
		}
	}
	g = g.clone()
	g.Account = acc[:]
	return g
}

// saveTracksLocked writes the gapTracks changed since the last call into
// t, once each however many texts changed them; a failed commit puts
// the previous ones back unless another change came after.
func (n *Node) saveTracksLocked(t *txn) {
	cs := n.counters
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for dev, prev := range cs.unsaved {
		g := cs.received[dev]
		putJSON(t.b, n.tabs.counters, trackKey(dev), g)
		t.undo(func() {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			if cs.received[dev] != g {
				return
			}
			if prev != nil {
				cs.received[dev] = prev
			} else {
				delete(cs.received, dev) // read again from the store
			}
		})
	}
	clear(cs.unsaved)
}

// countReceivedLocked records the counter of a newly stored text from
// contact c's device dev: a range may open (the gap loop reports it once
// its grace period ends) or fill (the notice that reported it changes).
// The caller writes the tracker with saveTracksLocked.
func (n *Node) countReceivedLocked(t *txn, c *contact, dev identity.DeviceID, p *payload, now time.Time) {
	g := n.trackLocked(dev, c.account())
	filled, opened := g.observe(p.Counter, p.TimeMS, now)
	n.counters.setTrack(dev, g)
	if filled != "" {
		n.noticeFilledLocked(t, c, filled)
	}
	if opened {
		n.armGapsLocked()
	}
}

// noticeFilledLocked lowers the count of a notice by one text that
// arrived after all, and withdraws it at zero.
func (n *Node) noticeFilledLocked(t *txn, c *contact, idHex string) {
	id, err := parseMsgID(idHex)
	if err != nil {
		return
	}
	m, ix, err := n.loadMsgLocked(id)
	if err != nil || m.Kind != KindMissing || m.Missing == 0 {
		return
	}
	m.Missing--
	name := c.rec.Name
	if m.Missing == 0 {
		n.deleteMsgLocked(t, id, ix)
		m.Deleted, m.Text = true, ""
	} else {
		m.Text = missingText(m.Missing, name)
		n.updateMsgLocked(t, id, ix, m)
	}
	v := m.view(name)
	t.events = append(t.events, Event{Type: EventUpdate, Message: &v},
		Event{Type: EventMissing, From: name, Missing: ptr(shownMissing(m.Missing)), Message: &v})
}

// deleteMsgLocked deletes a message record (and its index entry) in t;
// loadMsgLocked stops finding it at once.
func (n *Node) deleteMsgLocked(t *txn, id [msgIDSize]byte, ix indexRec) {
	t.b.DeleteSeq(n.tabs.messages, ix.Account, ix.Seq)
	n.tailChangedLocked(t, ix.Account)
	t.b.Delete(n.tabs.msgIndex, id[:])
	n.records.remove(id, ix)
	t.msgs = append(t.msgs, id)
	t.searchDelete(id)
}

// shownMissing caps a count for the API.
func shownMissing(count uint64) int { return int(min(count, MaxMissing)) }

// missingText is what a notice says.
func missingText(count uint64, name string) string {
	switch {
	case count == 1:
		return fmt.Sprintf("1 message from %s may be missing", name)
	case count >= MaxMissing:
		return fmt.Sprintf("%d or more messages from %s may be missing", MaxMissing, name)
	}
	return fmt.Sprintf("%d messages from %s may be missing", count, name)
}

// loadGapsLocked reads every gapTrack when Run starts and starts the gap
// loop if a range waits for its grace period to end.
func (n *Node) loadGapsLocked() error {
	cs := n.counters
	loaded := make(map[identity.DeviceID]*gapTrack)
	err := n.tabs.counters.Scan(func(id, v []byte) error {
		if len(id) != 1+identity.DeviceIDSize || id[0] != 'r' {
			return nil
		}
		g := &gapTrack{}
		if jsonUnmarshal(v, g) != nil {
			return nil // unreadable: tracking starts again with the next text
		}
		loaded[identity.DeviceID(id[1:])] = g
		return nil
	})
	if err != nil {
		return err
	}
	cs.mu.Lock()
	pending := false
	for dev, g := range loaded {
		if _, ok := cs.received[dev]; !ok {
			cs.received[dev] = g
		}
	}
	for _, g := range cs.received {
		_, due := g.nextDue(0)
		pending = pending || due
	}
	cs.looping = false // a loop of an earlier run has ended with it
	cs.mu.Unlock()
	if pending {
		n.armGapsLocked()
	}
	return nil
}

// armGapsLocked makes sure a gap loop runs (and looks again) while the
// node runs.
func (n *Node) armGapsLocked() {
	cs := n.counters
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.looping {
		select {
		case cs.wake <- struct{}{}:
		default:
		}
		return
	}
	if n.host != nil {
		cs.looping = n.loops.Go(n.gapLoop)
	}
}

// gapLoop reports ranges once their grace period ends, sleeping until
// the next one is due; it ends when none is waiting.
func (n *Node) gapLoop(ctx context.Context) {
	cs := n.counters
	for {
		n.mu.Lock()
		next, ok, err := n.reportGapsLocked(time.Now())
		if !ok {
			cs.mu.Lock()
			cs.looping = false
			cs.mu.Unlock()
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		wait := time.Until(next)
		if err != nil {
			wait = max(wait, backoffMax) // the store fails: try again later
		}
		select {
		case <-ctx.Done():
			return
		case <-cs.wake:
		case <-time.After(wait):
		}
	}
}

// reportGapsLocked writes a notice for each sender device with ranges
// whose grace period has ended, and returns when the next range is due
// (ok false: none waits).
func (n *Node) reportGapsLocked(now time.Time) (next time.Time, ok bool, err error) {
	grace := gapGrace()
	cs := n.counters
	cs.mu.Lock()
	type due struct {
		dev identity.DeviceID
		g   *gapTrack
	}
	var report []due
	for dev, g := range cs.received {
		at, waits := g.nextDue(grace)
		if !waits {
			continue
		}
		if !at.After(now) {
			report = append(report, due{dev, g})
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	cs.mu.Unlock()
	if len(report) == 0 {
		return next, !next.IsZero(), nil
	}
	t := n.newTxnLocked()
	for _, d := range report {
		acc, err := identity.ParseAccountID(d.g.Account)
		c := n.contacts[acc]
		if err != nil || c == nil {
			g := d.g.clone()
			g.Gaps = nil // the contact is gone: nothing to tell
			cs.setTrack(d.dev, g)
			continue
		}
		g := d.g.clone()
		id := newMessageID()
		count := g.report(hex.EncodeToString(id[:]), now, grace)
		cs.setTrack(d.dev, g)
		if count == 0 {
			continue
		}
		m := &msgRec{ID: hex.EncodeToString(id[:]), Dir: dirSystem, Kind: KindMissing, Text: missingText(count, c.rec.Name),
			State: StateReceived, Time: now.UTC(), Missing: count}
		n.putMsgLocked(t, id, indexRec{Account: acc[:], Seq: n.nextSeqLocked()}, m)
		v := m.view(c.rec.Name)
		t.events = append(t.events, Event{Type: EventMessage, Message: &v},
			Event{Type: EventMissing, From: c.rec.Name, Missing: ptr(shownMissing(count)), Message: &v})
	}
	n.saveTracksLocked(t)
	n.saveSeqLocked(t)
	if err = n.commitReleasingLock(t); err != nil {
		n.logStoreError("missing-messages notice not stored; it is written again later", err)
	}
	// The lock was released: look again at what is due next.
	return now, true, err
}
