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
