package node

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/hushnet/hush/crypto/ratchet"
	"github.com/hushnet/hush/crypto/x25519"
	"github.com/hushnet/hush/internal/store"
)

// The throughput floor: what docs/ARCHITECTURE.md requires of a durable
// 1:1 message and nothing else, between two processes, measured the way
// BenchmarkNodeThroughput256 measures hush. The sender encrypts with the
// Double Ratchet and writes, sealed, the message into its history and
// the ciphertext into its outbox (one batch, synced, commits grouped: "a
// send is durable once send returns"); it sends the frame once that
// write is done; when the receiver acknowledges it, it deletes the
// outbox record and records the state "delivered" (a small record, one
// lazy batch per acknowledgement: a lost one costs only a resend). The
// receiver decrypts each frame of a burst and writes it, sealed, into
// its history under its message ID (which is what a dedupe by ID
// reads), writes its ratchet state once per burst ("state is committed
// only after a successful decrypt"), syncs, and acknowledges the burst.
// The sender's ratchet state is written with a reservation (ratchet.md
// §6.10) every 128 messages. No payload encoding, no index by
// conversation, no events, no search: hush's work beyond this is its
// own. The hosts are built as the nodes' are (newHost: Noise, yamux).

const floorProto = "/hush-bench/floor/1"

// BenchmarkFloorThroughput256 is the floor under
// BenchmarkNodeThroughput256: 64 concurrent senders, 256 B, fsync on; it
// reports msgs/s (until the receiver acknowledged every message, which
// it does once they are durable) and both processes' CPU a message.
//
// Arm "contract" is the floor described above. Arm "records" adds the
// small records hush writes for what its users get on top (the API's
// durable event log: an event for the message sent, one for its
// delivery, one for the message received; the index from message ID to
// conversation position; the link that keeps a conversation's history in
// order), one each of about their size, in the same batches: what those
// records cost, without the code that makes them.
func BenchmarkFloorThroughput256(b *testing.B) {
	b.Run("contract", func(b *testing.B) { benchFloor(b, false) })
	b.Run("records", func(b *testing.B) { benchFloor(b, true) })
}

func benchFloor(b *testing.B, records bool) {
	alice, bob := floorSessions(b)
	bobState, err := bob.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	env := []string{"HUSH_FLOOR_HOME=" + b.TempDir(), "HUSH_FLOOR_SESSION=" + hex.EncodeToString(bobState)}
	if records {
		env = append(env, "HUSH_FLOOR_RECORDS=1")
	}
	line, _, stop := child(b, "floor-recv", env...)
	defer stop()
	pid := lastChildPID
	s := dialChild(b, loopbackHost(b), line, floorProto)
	defer s.Close()
	db, err := store.Open(b.TempDir(), store.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	f := &floorSender{db: db, outbox: db.Table("outbox"), history: db.Table("messages"), states: db.Table("states"), sessions: db.Table("sessions"), sess: alice, wake: make(chan struct{}, 1)}
	if records {
		f.extra = floorExtra(db)
	}
	total := b.N
	acked := make(chan error, 1)
	go func() { acked <- f.readAcks(s, total) }()
	go f.writeFrames(s)
	text := []byte(strings.Repeat("y", 256))
	b.ResetTimer()
	t0, cpu0 := time.Now(), cpuTime(pid)
	var wg sync.WaitGroup
	next := make(chan int, total)
	for i := range total {
		next <- i
	}
	close(next)
	for range 64 {
		wg.Go(func() {
			for i := range next {
				if err := f.send(i, text); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-acked:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		b.Fatal("the receiver never acknowledged every message")
	}
	elapsed := time.Since(t0)
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime(pid)-cpu0).Microseconds())/float64(total), "cpu-µs/msg")
	close(f.wake)
}

// floorSessions returns a Double Ratchet pair (the receiver's handed to
// the child as its state).
func floorSessions(b *testing.B) (alice, bob *ratchet.Session) {
	sk := make([]byte, 32)
	rand.Read(sk)
	spk := x25519.GenerateKey()
	ad := []byte("hush floor benchmark")
	alice, err := ratchet.NewInitiator(sk, spk.PublicKey(), ad)
	if err != nil {
		b.Fatal(err)
	}
	bob, err = ratchet.NewResponder(sk, spk, ad)
	if err != nil {
		b.Fatal(err)
	}
	return alice, bob
}

// floorSender is the floor's sending side.
type floorSender struct {
	db                                *store.DB
	outbox, history, states, sessions *store.Table
	extra                             *floorRecords // arm "records"
	wake                              chan struct{}

	mu      sync.Mutex
	sess    *ratchet.Session
	seq     uint64
	pending []*floorFrame // in encryption order; written once done
	sent    uint64        // frames written
}

type floorFrame struct {
	ct   []byte
	done bool
}

// send encrypts message i, writes it to the outbox and returns once
// that write is durable; its frame leaves then, in encryption order.
func (f *floorSender) send(i int, text []byte) error {
	pt := make([]byte, len(text))
	copy(pt, text)
	binary.BigEndian.PutUint64(pt, uint64(i))
	f.mu.Lock()
	ct, err := f.sess.Encrypt(pt)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	batch := f.db.Batch()
	if f.seq%128 == 0 {
		// Covers the next ratchet.ReserveAhead indices; ordered commits
		// make it durable before any frame under it leaves.
		f.sess.Reserve()
		st, err := f.sess.MarshalBinary()
		if err != nil {
			f.mu.Unlock()
			return err
		}
		batch.Put(f.sessions, []byte("peer"), st)
	}
	batch.Put(f.history, pt[:8], pt)
	batch.Put(f.outbox, binary.BigEndian.AppendUint64(nil, f.seq), ct)
	if f.extra != nil {
		f.extra.put(batch, pt[:8], 3) // event, ID index, history link
	}
	f.seq++
	fr := &floorFrame{ct: ct}
	f.pending = append(f.pending, fr)
	wait := f.db.CommitGroupedAsync(batch)
	f.mu.Unlock()
	if err := wait(); err != nil {
		return err
	}
	f.mu.Lock()
	fr.done = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// writeFrames writes the done prefix of the pending frames (u32 length
// ‖ ciphertext) each time a send wakes it.
func (f *floorSender) writeFrames(s network.Stream) {
	w := bufio.NewWriterSize(s, 64<<10)
	var hdr [4]byte
	for range f.wake {
		f.mu.Lock()
		n := 0
		for n < len(f.pending) && f.pending[n].done {
			n++
		}
		out := f.pending[:n]
		f.pending = f.pending[n:]
		f.mu.Unlock()
		for _, fr := range out {
			binary.BigEndian.PutUint32(hdr[:], uint32(len(fr.ct)))
			w.Write(hdr[:])
			w.Write(fr.ct)
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// readAcks reads the receiver's acknowledgements (u32: how many more
// frames are durable) and deletes their outbox records, lazily (a lost
// delete costs only a resend), until total are acknowledged.
func (f *floorSender) readAcks(s network.Stream, total int) error {
	var hdr [4]byte
	next := uint64(0)
	for next < uint64(total) {
		if _, err := io.ReadFull(s, hdr[:]); err != nil {
			return fmt.Errorf("after %d acknowledgements: %w", next, err)
		}
		batch := f.db.Batch()
		batch.Lazy()
		f.mu.Lock() // f.extra's numbering is shared with send
		for range binary.BigEndian.Uint32(hdr[:]) {
			// Keyed by the outbox sequence, which stands for the message
			// ID here (keys are keyed hashes: the same cost).
			id := binary.BigEndian.AppendUint64(nil, next)
			batch.Delete(f.outbox, id)
			batch.Put(f.states, id, []byte{1}) // delivered
			if f.extra != nil {
				f.extra.put(batch, id, 1) // the delivery's event
			}
			next++
		}
		f.mu.Unlock()
		if err := batch.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// childFloorRecv is the floor's receiving process: it prints its address
// and acknowledges bursts of frames once durable, until stdin closes.
func childFloorRecv() {
	raw, err := hex.DecodeString(os.Getenv("HUSH_FLOOR_SESSION"))
	if err != nil {
		panic(err)
	}
	sess, err := ratchet.Unmarshal(raw)
	if err != nil {
		panic(err)
	}
	db, err := store.Open(os.Getenv("HUSH_FLOOR_HOME"), store.Config{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	msgs, sessions := db.Table("messages"), db.Table("sessions")
	var extra *floorRecords
	if os.Getenv("HUSH_FLOOR_RECORDS") != "" {
		extra = floorExtra(db)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		panic(err)
	}
	h, err := newHost(HostConfig{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	h.SetStreamHandler(floorProto, func(s network.Stream) {
		defer s.Close()
		r := bufio.NewReaderSize(s, 64<<10)
		var hdr [4]byte
		for {
			batch := db.Batch()
			n := uint32(0)
			for {
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					return
				}
				ct := make([]byte, binary.BigEndian.Uint32(hdr[:]))
				if _, err := io.ReadFull(r, ct); err != nil {
					return
				}
				pt, err := sess.Decrypt(ct)
				if err != nil {
					panic(err)
				}
				batch.Put(msgs, pt[:8], pt)
				if extra != nil {
					extra.put(batch, pt[:8], 3) // event, ID index, history link
				}
				n++
				if r.Buffered() == 0 {
					break // the burst read so far: store and acknowledge it
				}
			}
			st, err := sess.MarshalBinary()
			if err != nil {
				panic(err)
			}
			batch.Put(sessions, []byte("peer"), st)
			if err := batch.Commit(); err != nil { // synced
				panic(err)
			}
			binary.BigEndian.PutUint32(hdr[:], n)
			if _, err := s.Write(hdr[:]); err != nil {
				return
			}
		}
	})
	fmt.Printf("%s/p2p/%s\n", h.Addrs()[0], h.ID())
	waitStdin()
}

// floorRecords writes the arm "records" small records: an event (48
// bytes), an ID index entry (43) and a history link (80), as hush's
// are, each under a key of its own.
type floorRecords struct {
	tabs [3]*store.Table
	seq  uint64
}

func floorExtra(db *store.DB) *floorRecords {
	return &floorRecords{tabs: [3]*store.Table{db.Table("events"), db.Table("msgindex"), db.Table("links")}}
}

var floorRecordSizes = [3]int{48, 43, 80}

// put adds the first n of the three records for message id to batch (the
// caller serialises calls).
func (r *floorRecords) put(batch *store.Batch, id []byte, n int) {
	for k := range n {
		r.seq++
		v := make([]byte, floorRecordSizes[k])
		copy(v, id)
		batch.Put(r.tabs[k], binary.BigEndian.AppendUint64(nil, r.seq), v)
	}
}
