//go:build unix

package store

import (
	"errors"
	"syscall"
)

// isLockHeld reports whether err is goleveldb failing to flock its LOCK
// file because another open store holds it.
func isLockHeld(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN)
}
