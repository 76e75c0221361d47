package relay

import (
	"crypto/ed25519"

	"github.com/hushnet/hush/crypto/codec"
)

// The owner's signatures over the mailbox messages that need one
// (docs/RELAY.md "Messages"): each covers u16 length ‖ label ‖ the
// message's body as proto.go encodes it; and the input of a Create's
// proof of work.

// signed returns the bytes an owner signature covers.
func signed(label string, body []byte) []byte {
	out := make([]byte, 0, 2+len(label)+len(body))
	out = append(out, byte(len(label)>>8), byte(len(label)))
	out = append(out, label...)
	return append(out, body...)
}

// SignCreate signs c with the owner's private key.
func SignCreate(c *Create, owner ed25519.PrivateKey) {
	c.Owner = owner.Public().(ed25519.PublicKey)
	c.Sig = ed25519.Sign(owner, signed(labelCreate, c.createBody()))
}

// verifyOwner checks an owner signature over label and body.
func verifyOwner(owner ed25519.PublicKey, label string, body, sig []byte) bool {
	return len(owner) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
		ed25519.Verify(owner, signed(label, body), sig)
}

// VerifyCreate checks c's signature.
func VerifyCreate(c *Create) bool {
	return verifyOwner(c.Owner, labelCreate, c.createBody(), c.Sig)
}

// SignSubscribe signs s.
func SignSubscribe(s *Subscribe, owner ed25519.PrivateKey) {
	s.Sig = ed25519.Sign(owner, signed(labelSubscribe, s.subscribeBody()))
}

// VerifySubscribe checks s against the mailbox's owner key.
func VerifySubscribe(s *Subscribe, owner ed25519.PublicKey) bool {
	return verifyOwner(owner, labelSubscribe, s.subscribeBody(), s.Sig)
}

// SignPutPrekeys signs p.
func SignPutPrekeys(p *PutPrekeys, owner ed25519.PrivateKey) {
	p.Sig = ed25519.Sign(owner, signed(labelPrekeys, p.prekeysBody()))
}

// VerifyPutPrekeys checks p against the mailbox's owner key.
func VerifyPutPrekeys(p *PutPrekeys, owner ed25519.PublicKey) bool {
	return verifyOwner(owner, labelPrekeys, p.prekeysBody(), p.Sig)
}

// SignAddPrekeys signs p.
func SignAddPrekeys(p *AddPrekeys, owner ed25519.PrivateKey) {
	p.Sig = ed25519.Sign(owner, signed(labelAddPrekeys, p.prekeysBody()))
}

// VerifyAddPrekeys checks p against the mailbox's owner key.
func VerifyAddPrekeys(p *AddPrekeys, owner ed25519.PublicKey) bool {
	return verifyOwner(owner, labelAddPrekeys, p.prekeysBody(), p.Sig)
}

// SignDelete signs d.
func SignDelete(d *Delete, owner ed25519.PrivateKey) {
	d.Sig = ed25519.Sign(owner, signed(labelDelete, d.deleteBody()))
}

// VerifyDelete checks d against the mailbox's owner key.
func VerifyDelete(d *Delete, owner ed25519.PublicKey) bool {
	return verifyOwner(owner, labelDelete, d.deleteBody(), d.Sig)
}

// SignWatch signs w.
func SignWatch(w *Watch, owner ed25519.PrivateKey) {
	w.Sig = ed25519.Sign(owner, signed(labelWatch, w.watchBody()))
}

// SignSetWake signs w with the mailbox owner's private key.
func SignSetWake(w *SetWake, owner ed25519.PrivateKey) {
	w.Sig = ed25519.Sign(owner, signed(labelSetWake, w.setWakeBody()))
}

// VerifySetWake checks w against the mailbox's owner key.
func VerifySetWake(w *SetWake, owner ed25519.PublicKey) bool {
	return verifyOwner(owner, labelSetWake, w.setWakeBody(), w.Sig)
}

// VerifyWatch checks w against the mailbox's owner key.
func VerifyWatch(w *Watch, owner ed25519.PublicKey) bool {
	return verifyOwner(owner, labelWatch, w.watchBody(), w.Sig)
}

// PoWInput returns the bytes whose SHA-256 must start with the
// operator's number of zero bits (docs/RELAY.md "Create").
func PoWInput(c *Create) []byte {
	w := codec.NewWriter(96)
	w.Fixed([]byte(labelPoW))
	w.Fixed(c.Owner)
	w.U64(c.Time)
	w.U64(c.Nonce)
	return w.Bytes()
}
