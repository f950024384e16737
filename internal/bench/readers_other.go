//go:build !linux

package bench

import (
	"bytes"
	"errors"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

// startReaders reads every client's connection from a goroutine of its
// own. (On Linux the clients are read from a few epoll loops instead; see
// readers_linux.go.) stop returns at once: the clients' goroutines end
// when the caller closes the connections.
func startReaders(clients []*client, stopping *atomic.Bool) (stop func(), err error) {
	for _, c := range clients {
		go c.run(stopping)
	}
	return func() {}, nil
}

// run reads until the connection ends; it records each measured event's
// latency and whether it was seen before.
func (c *client) run(stopping *atomic.Bool) {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			if stopping.Load() {
				return
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.closeCode = ce.Code
			}
			c.readErr = err
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			if !stopping.Load() {
				c.readErr = err
			}
			return
		}
		c.handleFrame(buf.Bytes(), clock())
	}
}
