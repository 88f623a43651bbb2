//go:build unix

package journal

import (
	"os"
	"syscall"
)

// mapFile maps the first size bytes of f, shared: what is copied into the
// mapping is in the page cache, as a write(2) would put it.
func mapFile(f *os.File, size int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
}

func unmap(b []byte) error { return syscall.Munmap(b) }
