//go:build unix

package hub

import (
	"errors"
	"net"
	"syscall"
)

// rawWriter writes to a socket without waiting for it.
type rawWriter = syscall.RawConn

// newRawWriter returns nc's raw connection, or nil when it has none.
func newRawWriter(nc net.Conn) rawWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// writeNow writes as much of b as the socket takes at once, and reports
// how much. It holds the descriptor's write lock, so it never cuts into a
// write of gorilla/websocket's, nor one into it.
func (c *conn) writeNow(b []byte) (int, error) {
	n := 0
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				return true // full: the writer goroutine waits for the rest
			case err != nil:
				werr = err
				return true
			case m <= 0:
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}
