package bench

import (
	"encoding/binary"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"

	"github.com/gorilla/websocket"
)

// directWriter is the least a Go hub can do per delivery: after the
// WebSocket handshake it keeps nothing but each client's socket, and for
// each event one goroutine per core writes the event's frame, built once,
// straight to its share of the channel's sockets. No queue, no protocol,
// no writer per connection (each has only an idle reader, which notices
// when it closes), no slow-client handling: it is a yardstick for this
// machine, not a design.
type directWriter struct {
	upgrader websocket.Upgrader

	mu     sync.Mutex
	subs   map[string][]net.Conn
	ws     []*websocket.Conn
	closed bool

	work    []chan directJob
	wg      sync.WaitGroup // workers
	readers sync.WaitGroup
}

// directJob is one frame for one worker's share of a channel's sockets.
type directJob struct {
	frame []byte
	conns []net.Conn
}

// directQueue is how many frames a worker may have waiting; a publisher
// that finds it full waits.
const directQueue = 4096

func newDirectWriter() *directWriter {
	d := &directWriter{
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024},
		subs:     make(map[string][]net.Conn),
	}
	for range runtime.GOMAXPROCS(0) {
		ch := make(chan directJob, directQueue)
		d.work = append(d.work, ch)
		d.wg.Add(1)
		go d.worker(ch)
	}
	return d
}

func (d *directWriter) worker(jobs <-chan directJob) {
	defer d.wg.Done()
	for j := range jobs {
		for _, c := range j.conns {
			_, _ = c.Write(j.frame) // a failed client shows as lost events
		}
	}
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
	d.ws = append(d.ws, conn)
	d.subs[channel] = append(d.subs[channel], conn.NetConn())
	d.readers.Add(1)
	d.mu.Unlock()
	go d.read(channel, conn)
}

// read drains the client until its connection ends, then forgets it.
func (d *directWriter) read(channel string, conn *websocket.Conn) {
	defer d.readers.Done()
	discard(conn)
	conn.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	// A new slice: the workers may still hold the old one.
	d.subs[channel] = slices.DeleteFunc(slices.Clone(d.subs[channel]), func(c net.Conn) bool { return c == conn.NetConn() })
	d.ws = slices.DeleteFunc(d.ws, func(c *websocket.Conn) bool { return c == conn })
}

// publish queues msg, in one frame, for every client of channel. The
// workers' queues are sent to under mu, which close takes to close them.
func (d *directWriter) publish(channel string, msg []byte) {
	frame := make([]byte, 0, len(msg)+10)
	frame = append(frame, 0x81) // final text frame
	switch n := len(msg); {
	case n <= 125:
		frame = append(frame, byte(n))
	case n <= 0xffff:
		frame = append(frame, 126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	frame = append(frame, msg...)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	conns := d.subs[channel]
	share := (len(conns) + len(d.work) - 1) / len(d.work)
	for i, ch := range d.work {
		lo, hi := min(i*share, len(conns)), min((i+1)*share, len(conns))
		if lo < hi {
			ch <- directJob{frame: frame, conns: conns[lo:hi]}
		}
	}
}

// close stops the workers and disconnects every client (which also ends
// a write blocked on a client that stopped reading), then waits for the
// workers and readers.
func (d *directWriter) close() {
	d.mu.Lock()
	d.closed = true
	for _, ch := range d.work {
		close(ch)
	}
	for _, c := range d.ws {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.readers.Wait()
}
