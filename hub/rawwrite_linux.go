package hub

import (
	"syscall"
	"unsafe"
)

// writeFD writes b to the non-blocking socket fd with a raw system call:
// the pool's goroutine keeps its P through the write, which returns as
// soon as the socket has taken what fits. syscall.Write would tell the
// scheduler that the goroutine may block; at one write per delivery that
// costs more than the write itself: the runtime's monitor, finding a P
// in a system call on most of its checks, keeps waking every 20 µs and
// hands the P to another thread.
func writeFD(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
