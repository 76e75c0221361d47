package x25519

// Check reports whether b is an acceptable received X25519 public key.
// TODO(x25519 helper): canonical, on-curve, small-order and torsion checks.
func Check(b []byte) error {
	if len(b) != KeySize || b[31]&0x80 != 0 {
		return ErrInvalidKey
	}
	return nil
}
