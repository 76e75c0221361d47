//go:build windows

package store

import (
	"errors"
	"syscall"
)

// errSharingViolation is ERROR_SHARING_VIOLATION: goleveldb opens LOCK
// with no sharing, so a second opener gets it.
const errSharingViolation syscall.Errno = 32

func isLockHeld(err error) bool { return errors.Is(err, errSharingViolation) }
