package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
)

// seqWrite is one PutSeq or DeleteSeq of a test workload.
type seqWrite struct {
	id  string
	seq uint64
	val string // "" for a delete
}

// seqWorkload returns n commits to six ids: appends with sparse seqs
// from one counter (as the node numbers messages), inserts in the
// middle, overwrites, deletes and commits touching several ids.
func seqWorkload(n int) [][]seqWrite {
	rng := rand.New(rand.NewPCG(3, 4))
	ids := []string{"a", "b", "c", "d", "e", ""}
	m := model{}
	next := uint64(1)
	var out [][]seqWrite
	for c := range n {
		var ops []seqWrite
		for range 1 + rng.IntN(3)/2 {
			id := ids[rng.IntN(len(ids))]
			seqs := m.seqs(id)
			var op seqWrite
			switch r := rng.IntN(10); {
			case r < 6 || len(seqs) < 2: // append
				next += 1 + rng.Uint64N(3)
				op = seqWrite{id, next, ""}
			case r < 8: // insert before the last, or overwrite
				op = seqWrite{id, seqs[len(seqs)-1] - 1 - rng.Uint64N(2), ""}
			default:
				op = seqWrite{id: id, seq: seqs[rng.IntN(len(seqs))]}
				ops = append(ops, op)
				m.del(op.id, op.seq)
				continue
			}
			op.val = fmt.Sprintf("%s/%d/c%d/%s", op.id, op.seq, c, strings.Repeat("v", 40))
			ops = append(ops, op)
			m.put(op.id, op.seq, op.val)
		}
		out = append(out, ops)
	}
	return out
}

// apply returns the model after commits, leaving out the one at skip
// (-1: none).
func applyWrites(commits [][]seqWrite, skip int) model {
	m := model{}
	for i, ops := range commits {
		if i == skip {
			continue
		}
		for _, op := range ops {
			if op.val == "" {
				m.del(op.id, op.seq)
			} else {
				m.put(op.id, op.seq, op.val)
			}
		}
	}
	for id, recs := range m {
		if len(recs) == 0 {
			delete(m, id)
		}
	}
	return m
}

// writeSeqStore commits each of commits to table "log" in a store of its
// own and closes it: they are in the journal only, one batch each after
// the batch that created the store.
func writeSeqStore(t *testing.T, dir string, commits [][]seqWrite) {
	t.Helper()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("log")
	for _, ops := range commits {
		b := db.Batch()
		for _, op := range ops {
			if op.val == "" {
				b.DeleteSeq(tb, []byte(op.id), op.seq)
			} else {
				b.PutSeq(tb, []byte(op.id), op.seq, []byte(op.val))
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// journalChunk is one chunk of a journal file.
type journalChunk struct {
	off, length int
	typ         byte
	record      int // the journal record (write batch) it belongs to
}

func journalChunks(t *testing.T, data []byte) []journalChunk {
	t.Helper()
	var chunks []journalChunk
	record := -1
	for off := 0; off+journalHeaderSize <= len(data); {
		blockEnd := (off/journalBlockSize + 1) * journalBlockSize
		if blockEnd-off < journalHeaderSize {
			off = blockEnd
			continue
		}
		length := int(binary.LittleEndian.Uint16(data[off+4:]))
		typ := data[off+6]
		if typ == 0 {
			break
		}
		if typ == chunkFull || typ == chunkFirst {
			record++
		}
		chunks = append(chunks, journalChunk{off, length, typ, record})
		off += journalHeaderSize + length
	}
	return chunks
}

// damageOneBatch flips a byte in the payload of the last chunk of a
// journal block near the middle of the journal, the whole of a write
// batch or its first part: goleveldb's reader drops a damaged chunk with
// the rest of its block and the parts of that batch in the next, so only
// that batch is lost, and the batches after it are kept. It damages the
// first batch so placed that pick accepts (nil: any), and returns its
// number in the journal (0 is the store's first write).
func damageOneBatch(t *testing.T, path string, pick func(batch int) bool) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	chunks := journalChunks(t, data)
	blocks := (len(data) + journalBlockSize - 1) / journalBlockSize
	if blocks < 3 {
		t.Fatalf("journal of %d bytes: too short to damage in the middle", len(data))
	}
	for d := range blocks - 2 {
		b := blocks/2 + (d+1)/2*(1-2*(d%2)) // the middle, then outwards
		var last *journalChunk
		for i := range chunks {
			if chunks[i].off/journalBlockSize == b {
				last = &chunks[i]
			}
		}
		if last != nil && (last.typ == chunkFull || last.typ == chunkFirst) && b > 0 && b < blocks-1 &&
			(pick == nil || pick(last.record)) {
			data[last.off+journalHeaderSize+last.length/2] ^= 0x08
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return last.record
		}
	}
	t.Fatal("no block in the middle of the journal ends with the start of a batch to damage")
	return 0
}

// presentRecords reads the data records stored in tb, bypassing the
// index, and counts the link and head records.
func presentRecords(t *testing.T, tb *Table) (m model, links, heads int) {
	t.Helper()
	m = model{}
	err := tb.scanAll(func(key, raw []byte) error {
		if raw[0] != formatSeq {
			return nil
		}
		rec, err := tb.keys.decodeSeqRecord(key, raw)
		if err != nil {
			return err
		}
		switch rec.kind {
		case kindData:
			m.put(string(rec.id), rec.seq, string(rec.value))
		case kindLink:
			links++
		case kindHead:
			heads++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, links, heads
}

// checkRebuilt checks that every read of table "log" agrees with the
// data records it holds, that no index record is left over, and returns
// those records.
func checkRebuilt(t *testing.T, db *DB) model {
	t.Helper()
	tb := db.Table("log")
	present, links, heads := presentRecords(t, tb)
	n := 0
	for _, recs := range present {
		n += len(recs)
	}
	present.verify(t, nil, tb)
	for _, id := range []string{"a", "b", "c", "d", "e", "", "never"} {
		// Ids without records too: nothing is reported corrupt.
		if err := tb.ScanSeqReverse([]byte(id), 0, math.MaxUint64, 3, func(uint64, []byte) error { return nil }); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
	}
	if links != n || heads != len(present) {
		t.Fatalf("%d links and %d heads for %d records of %d ids", links, heads, n, len(present))
	}
	return present
}

// Writes after the repair (appends, inserts, deletes on every id) keep
// the rebuilt lists well formed.
func writeAfterRepair(t *testing.T, db *DB, m model) {
	t.Helper()
	tb := db.Table("log")
	b := db.Batch()
	for _, id := range []string{"a", "b", "c", "d", "e", "", "new"} {
		seqs := m.seqs(id)
		b.PutSeq(tb, []byte(id), 5000, []byte("appended"))
		m.put(id, 5000, "appended")
		if len(seqs) > 2 {
			s := seqs[len(seqs)/2]
			b.DeleteSeq(tb, []byte(id), s)
			m.del(id, s)
			if seqs[1] > seqs[0]+1 {
				b.PutSeq(tb, []byte(id), seqs[0]+1, []byte("inserted"))
				m.put(id, seqs[0]+1, "inserted")
			}
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	m.verify(t, nil, tb)
}

// appendWorkload returns n commits, each appending one record to six
// ids in turn.
func appendWorkload(n int) [][]seqWrite {
	ids := []string{"a", "b", "c", "d", "e", ""}
	var out [][]seqWrite
	for c := range n {
		seq := uint64(3*c + c%2)
		out = append(out, []seqWrite{{ids[c%len(ids)], seq, fmt.Sprintf("%d/%s", seq, strings.Repeat("v", 40))}})
	}
	return out
}

// A damaged journal loses one write batch from the middle; later batches
// changed the skip lists the lost one had changed. Repair rebuilds every
// id's index from the records present: every scan, LastSeq and GetSeq
// agrees with them, nothing is reported corrupt, and the store takes
// writes again. With appends only, the next append to the lost record's
// id linked the lost record: its link stays without it unless rebuilt.
func TestRepairRebuildsSeqIndex(t *testing.T) {
	for _, tc := range []struct {
		name    string
		commits [][]seqWrite
	}{
		{"appends", appendWorkload(400)},
		{"mixed", seqWorkload(400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			commits := tc.commits
			writeSeqStore(t, dir, commits)
			lost := damageOneBatch(t, journalPath(t, dir), func(batch int) bool {
				return batch < len(commits)-6 // another append to its id follows
			}) - 1 // batch 0 created the store

			rep, err := Repair(dir, cfg(""), []string{"log"})
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if j := rep.Journals[0]; !rep.Damaged || j.Batches != len(commits) {
				t.Fatalf("report %+v, want one of %d batches dropped", j, len(commits)+1)
			}
			db := mustOpen(t, dir, cfg(""))
			present := checkRebuilt(t, db)
			if want := applyWrites(commits, lost); !modelsEqual(present, want) {
				t.Fatalf("records present are not every write but commit %d", lost)
			}
			ix := rep.Index["log"]
			n := 0
			for _, recs := range present {
				n += len(recs)
			}
			if ix.IDs != len(present) || ix.Records != n || ix.Unreadable != 0 {
				t.Errorf("index report %+v, want %d ids and %d records", ix, len(present), n)
			}
			if tc.name == "appends" && (ix.Stale != 1 || ix.Wrong == 0) {
				t.Errorf("index report %+v, want the lost record's link stale and its id's head wrong", ix)
			}
			if rep.Records["log"] != n {
				t.Errorf("report counts %d records, %d present", rep.Records["log"], n)
			}
			if !slices.ContainsFunc(rep.Lines(), func(l string) bool { return strings.Contains(l, "index rebuilt") }) {
				t.Errorf("report lines %q do not say the index was rebuilt", rep.Lines())
			}
			writeAfterRepair(t, db, present)
		})
	}
}

func modelsEqual(a, b model) bool {
	if len(a) != len(b) {
		return false
	}
	for id := range a {
		if !maps2Equal(a[id], b[id]) {
			return false
		}
	}
	return true
}

// Repair run again on a repaired store finds nothing to fix and leaves
// the same records, each in order.
func TestRepairRebuildIdempotent(t *testing.T) {
	dir := t.TempDir()
	writeSeqStore(t, dir, seqWorkload(300))
	damageOneBatch(t, journalPath(t, dir), nil)
	first, err := Repair(dir, cfg(""), []string{"log"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Repair(dir, cfg(""), []string{"log"})
	if err != nil {
		t.Fatalf("second Repair: %v", err)
	}
	a, b := first.Index["log"], second.Index["log"]
	if second.Damaged || b.Stale != 0 || b.Wrong != 0 || b.Unreadable != 0 || b.Records != a.Records || b.IDs != a.IDs {
		t.Fatalf("second repair %+v (index %+v), first %+v: want nothing found and the same records", second, b, a)
	}
	db := mustOpen(t, dir, cfg(""))
	checkRebuilt(t, db)
}

// A rebuild killed half-way is finished by the next Repair, or, if the
// program opens the store instead, before the table's first use.
func TestRepairRebuildResumes(t *testing.T) {
	for _, then := range []string{"repair again", "open"} {
		t.Run(then, func(t *testing.T) {
			dir := t.TempDir()
			writeSeqStore(t, dir, seqWorkload(300))
			damageOneBatch(t, journalPath(t, dir), nil)
			batches := 0
			reindexBatchRecords, testReindexBatch = 64, func() error {
				if batches++; batches == 3 {
					return errors.New("killed")
				}
				return nil
			}
			_, err := Repair(dir, cfg(""), []string{"log"})
			reindexBatchRecords, testReindexBatch = migrateBatchRecords, nil
			if err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("Repair with a rebuild stopped half-way: %v", err)
			}
			if then == "repair again" {
				rep, err := Repair(dir, cfg(""), []string{"log"})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Damaged || rep.Index["log"].Records == 0 {
					t.Fatalf("second repair %+v", rep)
				}
			}
			db := mustOpen(t, dir, cfg(""))
			writeAfterRepair(t, db, checkRebuilt(t, db))
		})
	}
}

// A sequenced record that does not open is deleted and counted, and the
// index is built from the others.
func TestRepairDropsUnreadableSeqRecords(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, cfg(""))
	tb := db.Table("log")
	for s := range uint64(20) {
		if err := tb.PutSeq([]byte("conv"), s, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	data := tb.keys.dataKey([]byte("conv"), 7)
	db.Close()
	ldb := rawDB(t, dir)
	raw, err := ldb.Get(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	if err := ldb.Put(data, raw, nil); err != nil {
		t.Fatal(err)
	}
	ldb.Close()

	rep, err := Repair(dir, cfg(""), []string{"log"})
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	// Its link is stale; its neighbours' links and the head are wrong.
	if ix := rep.Index["log"]; ix.Unreadable != 1 || ix.Records != 19 || ix.IDs != 1 || ix.Stale != 1 || ix.Wrong != 3 {
		t.Fatalf("index report %+v, want 1 unreadable record dropped, its link stale, 3 wrong, 19 kept", ix)
	}
	if !slices.ContainsFunc(rep.Lines(), func(l string) bool { return strings.Contains(l, "did not open") }) {
		t.Errorf("report lines %q do not mention the dropped record", rep.Lines())
	}
	db = mustOpen(t, dir, cfg(""))
	present := checkRebuilt(t, db)
	if got := present.seqs("conv"); len(got) != 19 || slices.Contains(got, 7) {
		t.Fatalf("records after repair %v", got)
	}
}
