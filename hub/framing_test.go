package hub_test

import (
	"testing"
)

// TestFramingErrors: a frame that breaks RFC 6455 framing closes the
// connection with 1002, before hello and after, and leaves other
// connections alone.
func TestFramingErrors(t *testing.T) {
	// masked builds a masked client frame with a payload under 126 bytes.
	masked := func(b0 byte, payload string) []byte {
		out := []byte{b0, 0x80 | byte(len(payload)), 1, 2, 3, 4}
		for i := range len(payload) {
			out = append(out, payload[i]^byte(i%4+1))
		}
		return out
	}
	cases := []struct {
		name  string
		frame []byte
	}{
		{"unmasked", []byte{0x81, 0x02, '{', '}'}},
		{"reserved bit", masked(0x81|0x40, "{}")},
		{"reserved opcode", masked(0x83, "x")},
		{"stray continuation", masked(0x80, "x")},
		{"fragmented ping", masked(0x09, "x")},
		{"bad close code", masked(0x88, "\x03\xe7")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			other := e.connect("2", "a")
			for _, hello := range []bool{false, true} {
				var c *client
				if hello {
					c = e.connect("1", "a")
				} else {
					c = e.mustDial()
				}
				if _, err := c.ws.NetConn().Write(tc.frame); err != nil {
					t.Fatal(err)
				}
				c.expectClose(1002)
			}
			other.alive(1)
		})
	}
}
