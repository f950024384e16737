package hub_test

import (
	"testing"
)

// TestBeforeHelloWrongFieldType: before welcome, a message whose type can
// be read but another field of which has the wrong type is judged by its
// type, as docs/protocol.md says: a hello is refused (unauthorized, 4001
// malformed), any other type asks for hello first (4001); only a line
// without a readable type is a bad request closed with 1008.
func TestBeforeHelloWrongFieldType(t *testing.T) {
	cases := []struct {
		send, code string
		close      int
	}{
		{`{"type":"hello","token":123}`, "unauthorized", 4001},
		{`{"type":"hello","token":["a"]}`, "unauthorized", 4001},
		{`{"type":"subscribe","id":"1","channel":"a"}`, "unauthorized", 4001},
		{`{"type":"ping","id":-1}`, "unauthorized", 4001},
		{`{"type":7}`, "bad_request", 1008},
		{`{"type":"hello","token":`, "bad_request", 1008},
	}
	for _, tc := range cases {
		t.Run(tc.send, func(t *testing.T) {
			e := newEnv(t)
			c := e.mustDial()
			c.send(tc.send)
			if m := c.expect("error"); m.Code != tc.code {
				t.Fatalf("got %s, want error %s", m, tc.code)
			}
			c.expectClose(tc.close)
		})
	}
}
