package hub

import (
	"sync"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/wsframe"
)

// writePool writes the queued messages of connections whose own writer
// goroutine is idle, from one goroutine per CPU taking connections in the
// order their messages arrived. A fan-out to many connections then costs
// no goroutine wake-up per connection, and each connection's turn comes
// at the same point of every round, so none waits through two rounds.
//
// Its writes never block: a frame the socket cannot take at once is
// finished by the connection's writer goroutine (see conn.inPart), which
// also writes every ping, pong and close frame, and holds the connection
// from then until it parks. A connection is written by its writer or by
// the pool, never both (conn.pooled). The one write from elsewhere is a
// close frame gorilla/websocket writes from the reader goroutine; the
// socket writes the end of a frame written in part before it (see
// socket).
//
// With a delay (Config.WriteDelay), a worker writes a connection no
// sooner than delay after it was queued: the messages queued to it
// meanwhile go out in the same frame. The workers wait, not the
// connections: a fan-out to many connections costs a wait per worker.
type writePool struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []pooledConn // FIFO; a connection is in it at most once
	head    int
	stopped bool
	delay   time.Duration
	wg      sync.WaitGroup
}

// pooledConn is a connection in the pool's queue, and when it may be
// written (zero without a delay).
type pooledConn struct {
	c   *conn
	due time.Time
}

func newWritePool(workers int, delay time.Duration) *writePool {
	p := &writePool{delay: delay}
	p.cond.L = &p.mu
	p.wg.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

// push queues c, whose lock its caller holds and which it marks pooled
// when push reports true; false once the pool has stopped.
func (p *writePool) push(c *conn) bool {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return false
	}
	e := pooledConn{c: c}
	if p.delay > 0 {
		e.due = time.Now().Add(p.delay)
	}
	p.queue = append(p.queue, e)
	p.mu.Unlock()
	p.cond.Signal()
	return true
}

// pop waits for a connection; nil once the pool stops.
func (p *writePool) pop() pooledConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head == len(p.queue) && !p.stopped {
		p.cond.Wait()
	}
	if p.stopped {
		return pooledConn{}
	}
	c := p.queue[p.head]
	p.queue[p.head] = pooledConn{}
	p.head++
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	} else if p.head > 1024 && p.head*2 > len(p.queue) {
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return c
}

// stop ends the workers, waits for them, and hands the connections still
// queued back to their writer goroutines.
func (p *writePool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
	p.mu.Lock()
	left := p.queue[p.head:]
	p.queue, p.head = nil, 0
	p.mu.Unlock()
	for _, e := range left {
		c := e.c
		c.mu.Lock()
		c.pooled = false
		c.kickLocked()
		c.mu.Unlock()
	}
}

func (p *writePool) work() {
	defer p.wg.Done()
	var batch []outMsg
	var frame []byte
	w := newRawWrite()
	for {
		e := p.pop()
		c := e.c
		if c == nil {
			return
		}
		if !e.due.IsZero() {
			// Messages queued to c until then join its frame.
			if d := time.Until(e.due); d > 0 {
				time.Sleep(d)
			}
		}
		c.mu.Lock()
		if c.needsWriterLocked() {
			c.pooled = false
			c.kickLocked()
			c.mu.Unlock()
			continue
		}
		batch = c.takeLocked(batch[:0])
		if len(batch) == 0 {
			c.pooled = false
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()

		frame = appendFrame(frame[:0], batch)
		inPart, err := c.writeNow(w, frame)
		c.mu.Lock()
		c.pooled = false
		switch {
		case err != nil:
		case inPart:
			c.inPart = true
			c.kickLocked()
		case c.needsWriterLocked():
			c.kickLocked()
		case len(c.queue) > 0:
			if p.push(c) {
				c.pooled = true
			} else {
				c.kickLocked()
			}
		}
		c.mu.Unlock()
		if err != nil {
			c.writeFailed(err)
		} else {
			c.delivered(batch, time.Now().UnixNano())
		}
		clear(batch)
		if cap(frame) > maxPoolFrame {
			frame = nil // a rare large message keeps no buffer
		}
	}
}

// maxPoolFrame bounds the frame buffer a pool worker keeps between
// writes.
const maxPoolFrame = 256 << 10

// appendFrame appends one unmasked final text frame holding the batch's
// messages, a line each.
func appendFrame(dst []byte, batch []outMsg) []byte {
	size := len(batch) - 1
	for _, m := range batch {
		size += len(m.data)
	}
	dst = wsframe.AppendHeader(dst, wsframe.OpText, size)
	for i, m := range batch {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, m.data...)
	}
	return dst
}
