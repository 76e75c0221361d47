package node

import (
	"bytes"
	"testing"
	"time"

	"github.com/hushnet/hush/crypto/envelope"
	"github.com/hushnet/hush/crypto/identity"
)

func FuzzParsePayload(f *testing.F) {
	f.Add((&payload{Type: ptText, Text: "hello 😀"}).marshal())
	f.Add((&payload{Type: ptRead, IDs: [][msgIDSize]byte{{1}, {2}}}).marshal())
	f.Add((&payload{Type: ptReaction, Text: "👍", Flags: flagRemove}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePayload(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.marshal(), b) {
			t.Fatal("accepted payload re-encodes differently")
		}
	})
}

func FuzzDecodeDirect(f *testing.F) {
	a, _ := identity.NewAccount()
	d, _ := identity.NewDevice()
	cert, _ := a.Certify(d, time.Now())
	f.Add(encodeDirect(cert, &outEntry{outRec: outRec{Kind: uint8(envelope.KindMessage), Body: []byte("body")}}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeDirect(b)
		if err != nil {
			return
		}
		if len(in.Body) > envelope.MaxBody {
			t.Fatal("body over the cap accepted")
		}
	})
}
