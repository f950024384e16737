package bench

import (
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/internal/wsframe"
)

// directWriter is the least a Go hub can do per delivery: after the
// WebSocket handshake it keeps nothing but each client's socket and a
// ring of each channel's recent events. One goroutine per core goes round
// its share of the sockets, and writes to each, in one frame, every event
// published to its channel since its last write: an event waits at most
// one round for its client's turn, and a round costs one write per socket
// however many events it carries. No queue per connection, no protocol,
// no writer per connection (each has only an idle reader, which notices
// when it closes), no slow-client handling: it is a yardstick for this
// machine, not a design.
type directWriter struct {
	upgrader websocket.Upgrader

	mu      sync.Mutex
	logs    map[string]*directLog
	ws      []*websocket.Conn
	workers []*directWorker
	next    int // the worker the next socket goes to
	closed  bool

	quit    chan struct{}
	wg      sync.WaitGroup // workers
	readers sync.WaitGroup
}

// directRing is how many of a channel's latest events the direct writer
// keeps; a socket further behind than that loses the older ones.
const directRing = 1 << 14

// directLog is a channel's latest events, as messages.
type directLog struct {
	mu sync.Mutex
	// ring grows to directRing messages, then is overwritten in place.
	ring [][]byte
	head int64 // events published; the latest is ring[(head-1)%directRing]
}

// appendFrame appends one final text frame holding the events from (a
// count of events published) to the head, a line each, and returns it
// with the head; from is moved up past events the ring no longer holds.
func (l *directLog) appendFrame(dst []byte, from int64) ([]byte, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	from = max(from, l.head-directRing)
	if from >= l.head {
		return dst, l.head
	}
	size := int(l.head-from) - 1
	for i := from; i < l.head; i++ {
		size += len(l.ring[i%directRing])
	}
	dst = appendFrameHeader(dst, size)
	for i := from; i < l.head; i++ {
		if i > from {
			dst = append(dst, '\n')
		}
		dst = append(dst, l.ring[i%directRing]...)
	}
	return dst, l.head
}

// appendRing adds msg, the head-th event, to ring: appended until the
// ring holds directRing events, then in place of the oldest.
func appendRing(ring [][]byte, head int64, msg []byte) ([][]byte, int64) {
	if len(ring) < directRing {
		ring = append(ring, msg)
	} else {
		ring[head%directRing] = msg
	}
	return ring, head + 1
}

// appendFrameHeader appends the header of an unmasked final text frame of
// size payload bytes.
func appendFrameHeader(dst []byte, size int) []byte {
	return wsframe.AppendHeader(dst, wsframe.OpText, size)
}

// directSocket is one client: its socket, its channel's log, and how many
// of the channel's events it has been written (owned by its worker).
type directSocket struct {
	conn   net.Conn
	log    *directLog
	cursor int64
	dead   atomic.Bool
}

// directWorker goes round its sockets.
type directWorker struct {
	mu      sync.Mutex
	sockets []*directSocket // appended to under mu
	wake    chan struct{}
}

func newDirectWriter() *directWriter {
	d := &directWriter{
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024},
		logs:     make(map[string]*directLog),
		quit:     make(chan struct{}),
	}
	for range runtime.GOMAXPROCS(0) {
		w := &directWorker{wake: make(chan struct{}, 1)}
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		go d.work(w)
	}
	return d
}

// work writes each of w's sockets, in turn, the events it has not been
// written, and waits for a publication when a round found none.
func (d *directWriter) work(w *directWorker) {
	defer d.wg.Done()
	var frame []byte
	// frame holds the events of built from from up to to, for the
	// sockets at the same point of the same channel.
	var built *directLog
	var from, to int64
	for {
		w.mu.Lock()
		sockets := w.sockets
		w.mu.Unlock()
		wrote := false
		for _, s := range sockets {
			if s.dead.Load() {
				continue
			}
			head := s.log.headNow()
			if head <= s.cursor {
				continue
			}
			if built != s.log || from != s.cursor || to != head {
				built, from = s.log, s.cursor
				frame, to = s.log.appendFrame(frame[:0], s.cursor)
			}
			if _, err := s.conn.Write(frame); err != nil {
				s.dead.Store(true) // a failed client shows as lost events
			}
			s.cursor = to
			wrote = true
		}
		if wrote {
			continue
		}
		select {
		case <-w.wake:
		case <-d.quit:
			return
		}
	}
}

// headNow returns how many events the log has had.
func (l *directLog) headNow() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

func (d *directWriter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, channel, ok := upgrade(&d.upgrader, w, r)
	if !ok {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		conn.Close()
		return
	}
	l := d.logLocked(channel)
	s := &directSocket{conn: conn.NetConn(), log: l, cursor: l.headNow()}
	wk := d.workers[d.next%len(d.workers)]
	d.next++
	wk.mu.Lock()
	wk.sockets = append(wk.sockets, s)
	wk.mu.Unlock()
	d.ws = append(d.ws, conn)
	d.readers.Add(1)
	d.mu.Unlock()
	go d.read(s, conn)
}

// sockets returns how many clients are registered.
func (d *directWriter) sockets() int {
	n := 0
	for _, w := range d.workers {
		w.mu.Lock()
		n += len(w.sockets)
		w.mu.Unlock()
	}
	return n
}

func (d *directWriter) logLocked(channel string) *directLog {
	l := d.logs[channel]
	if l == nil {
		l = &directLog{}
		d.logs[channel] = l
	}
	return l
}

// read drains the client until its connection ends, then marks it dead.
func (d *directWriter) read(s *directSocket, conn *websocket.Conn) {
	defer d.readers.Done()
	discard(conn)
	s.dead.Store(true)
	conn.Close()
}

// publish appends msg to the channel's log and wakes the workers.
func (d *directWriter) publish(channel string, msg []byte) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	l := d.logLocked(channel)
	d.mu.Unlock()
	l.mu.Lock()
	l.ring, l.head = appendRing(l.ring, l.head, msg)
	l.mu.Unlock()
	for _, w := range d.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// close stops the workers and disconnects every client (which also ends
// a write blocked on a client that stopped reading), then waits for the
// workers and readers.
func (d *directWriter) close() {
	d.mu.Lock()
	d.closed = true
	close(d.quit)
	for _, c := range d.ws {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.readers.Wait()
}
