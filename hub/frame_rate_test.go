package hub_test

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
)

// TestRequestlessFrameRate: frames that carry no request, empty or blank
// text frames and pong frames, count toward the request rate as ping
// frames do: a client that floods them, making the hub read, allocate
// and reset its deadline for each, is closed with 1008 like one that
// floods requests.
func TestRequestlessFrameRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(c *client) error
	}{
		{"empty text frame", func(c *client) error { return c.ws.WriteMessage(websocket.TextMessage, nil) }},
		{"blank text frame", func(c *client) error { return c.ws.WriteMessage(websocket.TextMessage, []byte(" \n\n \n")) }},
		{"pong frame", func(c *client) error {
			return c.ws.WriteControl(websocket.PongMessage, []byte("x"), time.Now().Add(5*time.Second))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
				c.RequestRate, c.RequestBurst = 0.01, 5
			})
			c := e.connect("1", "a")
			for i := 0; i < 20; i++ {
				if tc.send(c) != nil {
					break // the hub has closed
				}
			}
			c.expectClose(1008)
		})
	}
}

// TestRequestlessFramesWithinRate: a few such frames, within the burst,
// leave the connection open.
func TestRequestlessFramesWithinRate(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.RequestRate, c.RequestBurst = 0.01, 5
	})
	c := e.connect("1", "a")
	if err := c.ws.WriteMessage(websocket.TextMessage, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	c.alive(1)
}
