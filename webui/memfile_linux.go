package webui

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memFile returns a file held in memory (memfd) and a path by which the
// daemon, this process, opens it: an upload never reaches the disk.
// Closing f frees it.
func memFile(name string) (f *os.File, path string, err error) {
	fd, err := unix.MemfdCreate("hush-upload", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, "", err
	}
	f = os.NewFile(uintptr(fd), "hush-upload")
	return f, fmt.Sprintf("/proc/self/fd/%d", fd), nil
}
