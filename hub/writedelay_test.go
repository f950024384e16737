package hub_test

import (
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
)

// TestWriteDelay: with Config.WriteDelay, events published one after the
// other within the delay reach each client in one frame, and every client
// gets every event once, in order.
func TestWriteDelay(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.WriteDelay = time.Second })
	clients := make([]*client, 3)
	for i := range clients {
		clients[i] = e.connect(string(rune('a'+i)), "a")
		clients[i].subscribe(1, "a", nil)
	}
	const n = 20
	ids := e.publish("a", n)
	for i, c := range clients {
		before := c.frames
		c.expectEvents("a", 0, ids)
		if frames := c.frames - before; frames != 1 {
			t.Errorf("client %d: %d events arrived in %d frames, want 1 frame", i, n, frames)
		}
		c.alive(2)
	}
	// Later events go out too, again held together.
	more := e.publish("a", n)
	for _, c := range clients {
		c.expectEvents("a", n, more)
	}
}
