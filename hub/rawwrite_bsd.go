//go:build unix && !linux

package hub

import "syscall"

// writeFD writes b to the non-blocking socket fd.
func writeFD(fd uintptr, b []byte) (int, error) { return syscall.Write(int(fd), b) }
