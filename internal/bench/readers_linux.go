//go:build linux

package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"syscall"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/internal/wsframe"
)

// startReaders reads every client's connection from a few goroutines, each
// waiting on its own epoll set and reading the sockets straight, rather
// than from a goroutine per client. The clients share the machine with
// the hub they measure: a goroutine per client costs a wake-up, a read and
// a second read that finds nothing for every delivery, and under load its
// readiness waits behind the hub's own goroutines in the Go scheduler,
// which the measured latency would count. The handshake is done already
// (by gorilla/websocket); from then on the readers parse frames
// themselves: text and continuation frames, pings (answered with a
// masked pong) and close frames. They read the socket, not gorilla's
// buffer, so the server must have sent nothing past the handshake's
// last reply when they take over: a hub sends nothing after
// "subscribed" until the first publication, which the bench makes only
// once every client is read here. A stream joined mid-frame would show
// as errors and disconnected clients in the report, not as silent loss.
//
// stop ends the readers and closes the clients' done channels; the caller
// closes the connections after it.
func startReaders(clients []*client, stopping *atomic.Bool) (stop func(), err error) {
	n := min(runtime.GOMAXPROCS(0), 4, max(len(clients), 1))
	readers := make([]*epollReader, 0, n)
	// fail undoes the setup; the readers have not started yet.
	fail := func(err error) (func(), error) {
		for _, r := range readers {
			_ = syscall.Close(r.epfd)
		}
		return nil, err
	}
	for i := 0; i < n; i++ {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return fail(fmt.Errorf("epoll: %w", err))
		}
		readers = append(readers, &epollReader{epfd: epfd, stopping: stopping, conns: make(map[int32]*rawConn), done: make(chan struct{})})
	}
	for i, c := range clients {
		fd, err := socketFD(c.conn)
		if err != nil {
			return fail(err)
		}
		r := readers[i%n]
		rc := &rawConn{c: c, fd: fd}
		r.conns[int32(fd)] = rc
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
		if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail(fmt.Errorf("epoll add: %w", err))
		}
	}
	for _, r := range readers {
		go r.run()
	}
	return func() {
		for _, r := range readers {
			r.quit.Store(true)
		}
		for _, r := range readers {
			<-r.done
		}
	}, nil
}

// socketFD returns the file descriptor of a client's TCP connection.
func socketFD(conn *websocket.Conn) (int, error) {
	sc, ok := conn.NetConn().(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("client connection %T has no file descriptor", conn.NetConn())
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return 0, err
	}
	return fd, nil
}

// epollReader reads the connections registered in its epoll set.
type epollReader struct {
	epfd     int
	stopping *atomic.Bool
	conns    map[int32]*rawConn // owned by run
	quit     atomic.Bool
	done     chan struct{}
}

// rawConn is one client's read state.
type rawConn struct {
	c       *client
	fd      int
	pending []byte // bytes of an incomplete frame
	message []byte // fragments of an incomplete message
	ended   bool
}

func (r *epollReader) run() {
	defer close(r.done)
	defer syscall.Close(r.epfd)
	buf := make([]byte, 64<<10)
	events := make([]syscall.EpollEvent, 256)
	for !r.quit.Load() {
		n, err := syscall.EpollWait(r.epfd, events, 20)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			break
		}
		for _, ev := range events[:n] {
			if rc := r.conns[ev.Fd]; rc != nil && !rc.ended {
				r.read(rc, buf)
			}
		}
	}
	for _, rc := range r.conns {
		if !rc.ended {
			rc.ended = true
			close(rc.c.done)
		}
	}
}

// read drains the socket and handles the complete frames.
func (r *epollReader) read(rc *rawConn, buf []byte) {
	for {
		n, err := syscall.Read(rc.fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			r.end(rc, err)
			return
		case n == 0:
			r.end(rc, io.ErrUnexpectedEOF)
			return
		}
		now := clock()
		data := buf[:n]
		if len(rc.pending) > 0 {
			rc.pending = append(rc.pending, data...)
			data = rc.pending
		}
		rest, err := r.frames(rc, data, now)
		if err != nil {
			r.end(rc, err)
			return
		}
		if rc.ended {
			return
		}
		rc.pending = append(rc.pending[:0], rest...)
		if n < len(buf) {
			return // the socket is drained: no second read to find EAGAIN
		}
	}
}

// frames handles the complete frames at the start of data and returns
// what is left of an incomplete one.
func (r *epollReader) frames(rc *rawConn, data []byte, now int64) ([]byte, error) {
	for len(data) >= 2 {
		h, err := wsframe.ParseHeader(data)
		switch {
		case errors.Is(err, wsframe.ErrShort):
			return data, nil
		case err != nil:
			return nil, err
		case h.Masked:
			return nil, errors.New("masked frame from the server")
		case h.Size > 64<<20:
			return nil, fmt.Errorf("frame of %d bytes", h.Size)
		}
		fin, op, size, head := h.Fin, h.Op, h.Size, h.Len
		if uint64(len(data)-head) < size {
			return data, nil
		}
		payload := data[head : head+int(size)]
		data = data[head+int(size):]
		switch op {
		case wsframe.OpText, wsframe.OpContinuation:
			if fin && len(rc.message) == 0 {
				rc.c.handleFrame(payload, now)
				continue
			}
			rc.message = append(rc.message, payload...)
			if fin {
				rc.c.handleFrame(rc.message, now)
				rc.message = rc.message[:0]
			}
		case wsframe.OpClose:
			code := websocket.CloseNoStatusReceived
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			r.end(rc, &websocket.CloseError{Code: code, Text: string(payload[min(2, len(payload)):])})
			return nil, nil
		case wsframe.OpPing:
			if err := writePong(rc.fd, payload); err != nil {
				return nil, err
			}
		}
	}
	return data, nil
}

// end stops reading rc; err is why, unless the run is stopping.
func (r *epollReader) end(rc *rawConn, err error) {
	if rc.ended {
		return
	}
	rc.ended = true
	_ = syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, rc.fd, nil)
	if !r.stopping.Load() {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			rc.c.closeCode = ce.Code
		}
		rc.c.readErr = err
	}
	close(rc.c.done)
}

// pongMask masks the pongs the readers send (a client's frames are masked;
// the key need not be secret here).
var pongMask = [4]byte{0x5a, 0x17, 0xc3, 0x8e}

// writePong answers a ping with a masked pong carrying its payload (at
// most 125 bytes, as the protocol allows for control frames).
func writePong(fd int, payload []byte) error {
	if len(payload) > wsframe.MaxControlPayload {
		return errors.New("ping payload over 125 bytes")
	}
	frame := wsframe.AppendMasked(make([]byte, 0, 6+len(payload)), wsframe.OpPong, pongMask, payload)
	for len(frame) > 0 {
		n, err := syscall.Write(fd, frame)
		if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil {
			return err
		}
		frame = frame[n:]
	}
	return nil
}
