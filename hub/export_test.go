package hub

import "time"

// HoldAgainstStaleWake waits for the writer goroutine of subject's one
// connection to park, then holds the connection as the write pool
// does while writing it, queues m, and sends the writer the wake that a
// kick seen by the idle tick leaves behind. After wait it reports whether
// the writer stayed parked and left m queued, then lets the pool write m.
func HoldAgainstStaleWake(h *Hub, subject string, m []byte, wait time.Duration) (parked, untouched bool) {
	h.mu.Lock()
	var c *conn
	for c = range h.subjects[subject] {
	}
	h.mu.Unlock()
	if c == nil {
		return false, false
	}
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		if c.writing && c.parked && !c.pooled {
			break
		}
		c.mu.Unlock()
		if time.Since(start) > time.Second {
			return false, false
		}
	}
	c.pooled = true
	c.queue = append(c.queue, outMsg{data: m})
	c.queued += len(m)
	c.wake <- struct{}{}
	c.mu.Unlock()

	time.Sleep(wait)

	c.mu.Lock()
	defer c.mu.Unlock()
	parked, untouched = c.parked, len(c.queue) == 1
	c.pooled = false
	c.scheduleLocked()
	return parked, untouched
}

// HeldInPart is a connection whose socket holds a frame written in part,
// held from its writer goroutine as the write pool holds it.
type HeldInPart struct{ c *conn }

// WriteInPart writes the first n bytes of frame to the socket of
// subject's one connection, as the write pool does when the socket takes
// no more, and holds the connection until Release.
func WriteInPart(h *Hub, subject string, frame []byte, n int) (*HeldInPart, error) {
	h.mu.Lock()
	var c *conn
	for c = range h.subjects[subject] {
	}
	h.mu.Unlock()
	c.mu.Lock()
	for c.pooled || (c.writing && !c.parked) {
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
		c.mu.Lock()
	}
	c.pooled = true
	c.mu.Unlock()
	c.sock.mu.Lock()
	defer c.sock.mu.Unlock()
	if _, err := c.sock.Conn.Write(frame[:n]); err != nil {
		return nil, err
	}
	c.sock.keepLocked(frame[n:])
	return &HeldInPart{c}, nil
}

// WaitClosing waits until the connection is closing.
func (p *HeldInPart) WaitClosing() {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	for !p.c.closing {
		p.c.mu.Unlock()
		time.Sleep(time.Millisecond)
		p.c.mu.Lock()
	}
}

// Release hands the connection to its writer goroutine, which finishes
// the frame.
func (p *HeldInPart) Release() {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	p.c.pooled = false
	p.c.inPart = true
	p.c.kickLocked()
}

// StopPresenceHeartbeat stops h's presence heartbeat, as if its process
// had died: the broker keeps its members until their lease ends.
func StopPresenceHeartbeat(h *Hub) { h.presence.stopHeartbeat() }
