package hub

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// socket is the connection under gorilla/websocket. It keeps the end of a
// frame the write pool wrote in part, and writes it before anything else,
// so that no frame lands inside another. gorilla/websocket writes from the
// reader goroutine too: the close frame that answers a client's, and the
// one that ends a connection over the read limit or breaking the protocol.
type socket struct {
	net.Conn
	mu   sync.Mutex // held across every write
	rest []byte     // the end of a frame written in part
	err  error      // a write failed: the stream is cut, nothing more goes out
}

// Write writes b after the end of a frame written in part.
func (s *socket) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.finishLocked(); err != nil {
		return 0, err
	}
	n, err := s.Conn.Write(b)
	if err != nil {
		s.err = err
	}
	return n, err
}

// finish writes the end of a frame written in part, if any.
func (s *socket) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.finishLocked()
}

func (s *socket) finishLocked() error {
	if s.err != nil {
		return s.err
	}
	for len(s.rest) > 0 {
		n, err := s.Conn.Write(s.rest)
		s.rest = s.rest[n:]
		if err != nil {
			s.err = err
			return err
		}
	}
	s.rest = nil
	return nil
}

// keepLocked keeps rest, the end of a frame whose start is written, to
// write before anything else.
func (s *socket) keepLocked(rest []byte) {
	if len(rest) > 0 {
		s.rest = append([]byte(nil), rest...)
	}
}

// hijacker hands gorilla/websocket's upgrader the connection as a socket.
type hijacker struct {
	http.ResponseWriter
	sock *socket
}

func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.sock = &socket{Conn: nc}
	return w.sock, brw, nil
}
