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

// rawWrite is a pool worker's state for writes that do not wait. Its fn
// is made once, so that a write allocates nothing.
type rawWrite struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newRawWrite() *rawWrite {
	w := &rawWrite{}
	w.fn = w.write
	return w
}

// write writes as much of w.b as the socket takes at once.
func (w *rawWrite) write(fd uintptr) bool {
	for w.n < len(w.b) {
		m, err := writeFD(fd, w.b[w.n:])
		if m > 0 {
			w.n += m
		}
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return true // full: the writer goroutine waits for the rest
		case err != nil:
			w.err = err
			return true
		case m <= 0:
			return true
		}
	}
	return true
}

// errCloseWriting: gorilla/websocket is writing a close frame from the
// reader goroutine, and no frame may follow it.
var errCloseWriting = errors.New("hub: a close frame is being written")

// writeNow writes the frame b as far as the socket takes it at once, and
// has the socket keep the rest, to write before anything else; inPart
// reports that it did. It holds the socket's write lock, so it never cuts
// into a write of gorilla/websocket's, nor one into it; when gorilla holds
// that lock (to write a close frame) it writes nothing and fails.
func (c *conn) writeNow(w *rawWrite, b []byte) (inPart bool, err error) {
	s := c.sock
	if !s.mu.TryLock() {
		return false, errCloseWriting
	}
	defer s.mu.Unlock()
	if s.err != nil {
		return false, s.err
	}
	w.b, w.n, w.err = b, 0, nil
	err = c.raw.Write(w.fn)
	w.b = nil
	if err == nil {
		err = w.err
	}
	if err != nil {
		s.err = err
		return false, err
	}
	s.keepLocked(b[w.n:])
	return w.n < len(b), nil
}
