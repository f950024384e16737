package hub

import (
	"runtime"
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
	metrics *metrics // where the workers add their deliveries
	wg      sync.WaitGroup
}

// pooledConn is a connection in the pool's queue, and when it may be
// written (zero without a delay).
type pooledConn struct {
	c   *conn
	due time.Time
}

func newWritePool(workers int, delay time.Duration, m *metrics) *writePool {
	p := &writePool{delay: delay, metrics: m}
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
	p.queue = append(p.queue, p.entry(c, time.Time{}))
	p.mu.Unlock()
	p.cond.Signal()
	return true
}

// pushAll queues the connections a fan-out marked pooled (see
// conn.scheduleLocked), under one lock. Once the pool has stopped it
// hands them to their writer goroutines instead.
func (p *writePool) pushAll(conns []*conn) {
	if len(conns) == 0 {
		return
	}
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		for _, c := range conns {
			c.mu.Lock()
			c.pooled = false
			c.kickLocked()
			c.mu.Unlock()
		}
		return
	}
	var now time.Time
	if p.delay > 0 {
		now = time.Now()
	}
	for _, c := range conns {
		p.queue = append(p.queue, p.entry(c, now))
	}
	p.mu.Unlock()
	if len(conns) == 1 {
		p.cond.Signal()
	} else {
		p.cond.Broadcast()
	}
}

// entry is c's place in the queue, due delay after now (the current time
// when now is zero).
func (p *writePool) entry(c *conn, now time.Time) pooledConn {
	e := pooledConn{c: c}
	if p.delay > 0 {
		if now.IsZero() {
			now = time.Now()
		}
		e.due = now.Add(p.delay)
	}
	return e
}

// popBatch is the most connections a worker takes from the queue at once.
const popBatch = 16

// pop moves up to popBatch connections from the queue to dst, waiting
// for one when the queue is empty; before it waits it adds t to the
// metrics, so that an idle pool holds no uncounted deliveries. It returns
// dst empty once the pool stops.
func (p *writePool) pop(dst []pooledConn, t *latencyTally) []pooledConn {
	p.mu.Lock()
	if p.head == len(p.queue) && !p.stopped {
		p.mu.Unlock()
		t.flush(p.metrics)
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	for p.head == len(p.queue) && !p.stopped {
		p.cond.Wait()
	}
	if p.stopped {
		return dst
	}
	n := min(popBatch, len(p.queue)-p.head)
	dst = append(dst, p.queue[p.head:p.head+n]...)
	clear(p.queue[p.head : p.head+n])
	p.head += n
	if p.head == len(p.queue) {
		p.queue, p.head = p.queue[:0], 0
	} else if p.head > 1024 && p.head*2 > len(p.queue) {
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	return dst
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
	var taken []pooledConn
	var tally latencyTally
	defer func() { tally.flush(p.metrics) }()
	w := newRawWrite()
	for {
		taken = p.pop(taken[:0], &tally)
		if len(taken) == 0 {
			return
		}
		for i, e := range taken {
			taken[i] = pooledConn{}
			batch, frame = p.write(e, w, batch, frame, &tally)
		}
		if tally.seen >= tallyFlushEvery {
			tally.flush(p.metrics)
		}
		// The raw writes keep the worker's P (see writeFD): let the
		// goroutines waiting for one, the dispatcher reading the next
		// publication among them, run between takes, rather than at the
		// scheduler's next preemption (10 ms).
		runtime.Gosched()
	}
}

// write writes the queued messages of one connection the worker took,
// counting them in tally. It reuses and returns batch and frame.
func (p *writePool) write(e pooledConn, w *rawWrite, batch []outMsg, frame []byte, tally *latencyTally) ([]outMsg, []byte) {
	c := e.c
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
		return batch, frame
	}
	batch = c.takeLocked(batch[:0])
	if len(batch) == 0 {
		c.pooled = false
		c.mu.Unlock()
		return batch, frame
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
		delivered(tally, batch, time.Now().UnixNano())
	}
	clear(batch)
	if cap(frame) > maxPoolFrame {
		frame = nil // a rare large message keeps no buffer
	}
	return batch, frame
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
