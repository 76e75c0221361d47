//go:build !linux

package webui

import (
	"errors"
	"os"
)

// memFile: uploads need Linux's memfd, so that no plaintext reaches the
// disk; elsewhere the web UI does not take uploads (send with `hush
// file send`).
func memFile(string) (*os.File, string, error) {
	return nil, "", errors.New("uploads from the web UI need Linux (memfd); use `hush file send`")
}
