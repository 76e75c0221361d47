package node

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/stream"
	"github.com/hushnet/hush/node/attach"
)

// phaseEvents collects the file events of one phase.
type phaseEvents []FileProgress

func (ps phaseEvents) last() FileProgress {
	if len(ps) == 0 {
		return FileProgress{}
	}
	return ps[len(ps)-1]
}

// check: the first event is at 0 (seal) or where the phase took up, the
// bytes never go back, each names the total, the last is done with all
// of it.
func (ps phaseEvents) check(t *testing.T, phase string, total int64) {
	t.Helper()
	if len(ps) < 2 {
		t.Fatalf("%s: %d events, want a start, progress and an end: %+v", phase, len(ps), ps)
	}
	for i, p := range ps {
		if p.Total != total || (i > 0 && p.Bytes < ps[i-1].Bytes) || p.Error != "" || p.Bytes > total {
			t.Fatalf("%s: event %d of %d is %+v (total %d)", phase, i, len(ps), p, total)
		}
		if p.Done != (i == len(ps)-1) {
			t.Fatalf("%s: event %d of %d done=%v", phase, i, len(ps), p.Done)
		}
	}
	if l := ps.last(); l.Bytes != total {
		t.Fatalf("%s ends at %d of %d", phase, l.Bytes, total)
	}
}

// A file sent with a relay: its progress comes as file events, sealing
// (named by the request's txnId, before the message exists), the upload
// to the relay and the recipient's download from this device (naming
// the recipient's device), each from its start to a last event that says
// it is done. The send's answer and the file list say where the upload
// is. The events are not kept in the event log.
func TestFileProgressEvents(t *testing.T) {
	cfg := relayCfg()
	cfg.BlobDir = t.TempDir()
	addr := startRelay(t, cfg)
	a := startNodeCfg(t, Config{Home: newHome(t, "alice"), Relays: []string{addr}})
	defer a.stop(t)
	b := startNodeCfg(t, Config{Home: newHome(t, "bob"), Relays: []string{addr}})
	defer b.stop(t)
	waitMailbox(t, a)
	befriend(t, a, b)
	events, cancel := a.n.Subscribe(0)
	defer cancel()
	first := a.n.events.Head() + 1

	const size = 5<<20 + 99
	path, _ := writeFile(t, size, "PROGRESS-MARKER")
	m, err := a.n.SendFile(context.Background(), SendFileRequest{To: "bob", Path: path, TxnID: "progress-txn"})
	if err != nil {
		t.Fatal(err)
	}
	if m.File.Upload != UploadPending {
		t.Fatalf("the send's answer shows upload %q, want %q", m.File.Upload, UploadPending)
	}
	blob := attach.BlobSize(stream.EncryptedSize(size))
	bd := b.n.cert.DeviceID()
	bobDevice := hex.EncodeToString(bd[:])
	var seal, upload, serve phaseEvents
	timeout := time.After(time.Minute)
	for !(seal.last().Done && upload.last().Done && serve.last().Done) {
		select {
		case ev := <-events:
			if ev.Type != EventFile {
				continue
			}
			if ev.File == nil {
				t.Fatal("a file event without its progress")
			}
			p := *ev.File
			switch p.Phase {
			case PhaseSeal:
				if p.TxnID != "progress-txn" || p.ID != "" {
					t.Fatalf("a seal event names %+v", p)
				}
				seal = append(seal, p)
			case PhaseUpload:
				if p.ID != m.ID || p.Hash != m.File.Hash {
					t.Fatalf("an upload event names %+v", p)
				}
				upload = append(upload, p)
			case PhaseServe:
				if p.ID != m.ID || p.Hash != m.File.Hash || p.Device != bobDevice {
					t.Fatalf("a serve event names %+v, want bob's device %s", p, bobDevice)
				}
				serve = append(serve, p)
			default:
				t.Fatalf("a file event of phase %q", p.Phase)
			}
		case <-timeout:
			t.Fatalf("timed out: %d seal, %d upload, %d serve events", len(seal), len(upload), len(serve))
		}
	}
	seal.check(t, PhaseSeal, size)
	if seal[0].Bytes != 0 {
		t.Fatalf("sealing starts at %d", seal[0].Bytes)
	}
	upload.check(t, PhaseUpload, blob)
	serve.check(t, PhaseServe, blob)
	// A step is at least 1 MiB: a 5 MiB file makes a handful, not one
	// per chunk.
	if len(seal) < 3 || len(seal) > 8 {
		t.Errorf("%d seal events for 5 MiB", len(seal))
	}
	waitFileDone(t, b, m.ID)
	waitUploaded(t, a, m)
	ms, err := a.n.Files("bob")
	if err != nil || len(ms) != 1 || ms[0].File.Upload != UploadDone {
		t.Fatalf("the file list: %+v, %v", ms, err)
	}
	if got, _ := b.n.Files("alice"); len(got) != 1 || got[0].File.Upload != "" {
		t.Fatalf("the recipient's list shows an upload: %+v", got)
	}
	// Not in the log.
	logged, err := a.n.evlog.Read(first, a.n.events.Head(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range logged {
		if ev.Type == EventFile {
			t.Fatalf("a file event is kept in the log: %+v", ev)
		}
	}
	if len(logged) == 0 {
		t.Fatal("nothing in the log at all")
	}
}
