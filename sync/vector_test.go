package sync

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/curve25519"
)

var update = flag.Bool("update", false, "rewrite the known-answer vectors in testdata")

// linkTranscript is the known-answer vector of one link: every byte on the
// wire from fixed keys, ephemerals and secret.
type linkTranscript struct {
	Description   string   `json:"description"`
	Generator     string   `json:"generator"`
	Protocol      string   `json:"protocol"`
	Prologue      string   `json:"prologue"`
	Code          string   `json:"code"`
	Secret        string   `json:"secret"`
	Now           int64    `json:"now_unix"`
	AccountKey    string   `json:"account_private"`
	ResponderKey  string   `json:"responder_device_private"`
	InitiatorKey  string   `json:"initiator_device_private"`
	ResponderEph  string   `json:"responder_ephemeral_private"`
	InitiatorEph  string   `json:"initiator_ephemeral_private"`
	PSK           string   `json:"psk"`
	AccountID     string   `json:"account_id"`
	ResponderID   string   `json:"responder_device_id"`
	InitiatorID   string   `json:"initiator_device_id"`
	Handshake     []string `json:"handshake_frames"`
	HandshakeHash string   `json:"handshake_hash"`
	TicketID      string   `json:"ticket_id"`
	TicketKey     string   `json:"ticket_key"`
	Records       []vecRec `json:"records"`
}

type vecRec struct {
	Name   string   `json:"name"`
	Record string   `json:"record"`
	Frames []string `json:"frames"`
}

func hexes(bs [][]byte) []string {
	var out []string
	for _, b := range bs {
		out = append(out, hex.EncodeToString(b))
	}
	return out
}

// TestLinkTranscript pins the link channel's wire: the code, the three
// handshake frames, the handshake hash, the ticket, and the grant, enroll
// and welcome records with their transport frames.
func TestLinkTranscript(t *testing.T) {
	w := newLinkWorld(t, "vector")
	i, r := w.initiator(t, w.offer.Code()), w.responder(t)
	w.handshake(t, i, r)
	records, _ := w.enroll(t, i, r)
	ticket, err := i.Ticket()
	if err != nil {
		t.Fatal(err)
	}
	code, _ := w.offer.Code().Text()
	rid, iid, acct := w.rDev.ID(), w.iDev.ID(), w.acct.Public()
	ak, _ := w.acct.MarshalBinary()
	rk, _ := w.rDev.MarshalBinary()
	ik, _ := w.iDev.MarshalBinary()
	secret := w.offer.Code().Secret
	got := linkTranscript{
		Description:   "hush sync link channel: link code, Noise XXpsk0 handshake, grant/enroll/welcome records (docs/protocol/sync.md §18.2)",
		Generator:     "go test ./sync -run TestLinkTranscript -update",
		Protocol:      ProtocolName,
		Prologue:      hex.EncodeToString(prologue(modeLink)),
		Code:          code,
		Secret:        hex.EncodeToString(secret[:]),
		Now:           w.now.Unix(),
		AccountKey:    hex.EncodeToString(ak),
		ResponderKey:  hex.EncodeToString(rk),
		InitiatorKey:  hex.EncodeToString(ik),
		ResponderEph:  hex.EncodeToString(readN(newDetRand("vector responder ephemeral"), 32)),
		InitiatorEph:  hex.EncodeToString(readN(newDetRand("vector initiator ephemeral"), 32)),
		PSK:           hex.EncodeToString(w.offer.Code().psk()),
		AccountID:     acct.Hex(),
		ResponderID:   rid.Hex(),
		InitiatorID:   iid.Hex(),
		Handshake:     hexes(w.frames),
		HandshakeHash: hex.EncodeToString(i.Binding()),
		TicketID:      hex.EncodeToString(ticket.ID[:]),
		TicketKey:     hex.EncodeToString(ticket.Key[:]),
	}
	// Seal the records again on fresh channels with the same inputs, to
	// record their frames (sealing consumes nonces).
	w2 := newLinkWorld(t, "vector")
	i2, r2 := w2.initiator(t, w2.offer.Code()), w2.responder(t)
	w2.handshake(t, i2, r2)
	for k, rec := range records {
		from, to := r2, i2
		if k == 1 {
			from, to = i2, r2
		}
		frames, err := from.Seal(rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if _, err := to.Open(f); err != nil {
				t.Fatal(err)
			}
		}
		got.Records = append(got.Records, vecRec{Name: []string{"grant", "enroll", "welcome"}[k],
			Record: hex.EncodeToString(rec), Frames: hexes(frames)})
	}

	// The ephemeral private keys recorded are the ones on the wire.
	for k, eph := range []string{got.InitiatorEph, got.ResponderEph} {
		priv, _ := hex.DecodeString(eph)
		pub, err := curve25519.X25519(priv, curve25519.Basepoint)
		if err != nil || hex.EncodeToString(w.frames[k][1:33]) != hex.EncodeToString(pub) {
			t.Fatalf("ephemeral key %d is not the one in handshake frame %d", k, k+1)
		}
	}

	path := filepath.Join("testdata", "link_transcript.json")
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate with -update)", err)
	}
	var want linkTranscript
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		for k := range min(len(want.Handshake), len(got.Handshake)) {
			if want.Handshake[k] != got.Handshake[k] {
				t.Errorf("handshake frame %d differs", k+1)
			}
		}
		t.Fatalf("the link transcript differs from %s", path)
	}
}
