package bench

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// broadcaster is the bare baseline: the simplest correct gorilla/websocket
// fan-out, after gorilla's chat example. No authentication, no history, no
// protocol: a client names its channel in the URL (?channel=...) and gets
// every message published to it, one message per frame, written by one
// goroutine per connection. A client whose queue is full is closed rather
// than waited on.
type broadcaster struct {
	upgrader websocket.Upgrader

	mu     sync.Mutex
	subs   map[string]map[*peer]struct{}
	closed bool
	wg     sync.WaitGroup
}

type peer struct {
	conn *websocket.Conn
	send chan []byte
}

// peerQueue is how many messages a baseline connection may have queued.
const peerQueue = 256

func newBroadcaster() *broadcaster {
	return &broadcaster{
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096},
		subs:     make(map[string]map[*peer]struct{}),
	}
}

func (b *broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, channel, ok := upgrade(&b.upgrader, w, r)
	if !ok {
		return
	}
	p := &peer{conn: conn, send: make(chan []byte, peerQueue)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		conn.Close()
		return
	}
	set := b.subs[channel]
	if set == nil {
		set = make(map[*peer]struct{})
		b.subs[channel] = set
	}
	set[p] = struct{}{}
	b.wg.Add(2)
	b.mu.Unlock()
	go b.write(p)
	go b.read(channel, p)
}

// read drains the client (answering control frames) and unregisters it
// when the connection ends.
func (b *broadcaster) read(channel string, p *peer) {
	defer b.wg.Done()
	discard(p.conn)
	b.mu.Lock()
	if set := b.subs[channel]; set != nil {
		if _, ok := set[p]; ok {
			delete(set, p)
			close(p.send)
		}
	}
	b.mu.Unlock()
}

func (b *broadcaster) write(p *peer) {
	defer b.wg.Done()
	defer p.conn.Close()
	for msg := range p.send {
		_ = p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := p.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
	_ = p.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
}

// publish queues msg for every client of channel; a client with a full
// queue is dropped.
func (b *broadcaster) publish(channel string, msg []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.subs[channel]
	for p := range set {
		select {
		case p.send <- msg:
		default:
			delete(set, p)
			close(p.send)
		}
	}
}

// close disconnects every client and waits for their goroutines.
func (b *broadcaster) close() {
	b.mu.Lock()
	b.closed = true
	for _, set := range b.subs {
		for p := range set {
			close(p.send)
		}
	}
	b.subs = make(map[string]map[*peer]struct{})
	b.mu.Unlock()
	b.wg.Wait()
}
