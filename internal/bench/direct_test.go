package bench

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDirectWriterFrames checks the direct writer's frames against
// gorilla/websocket's reader, for each length encoding, and that a burst
// of events arrives whole and in order, several to a frame.
func TestDirectWriterFrames(t *testing.T) {
	dt, err := newDirectTarget()
	if err != nil {
		t.Fatal(err)
	}
	defer dt.close(context.Background())
	ep, err := dt.endpoint(0, "c")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := connect(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The connection is registered when the upgrade returns; wait for it.
	d := dt.s.(*directWriter)
	deadline := time.Now().Add(5 * time.Second)
	for d.sockets() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the direct writer never registered the client")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, size := range []int{0, 125, 126, 65535, 65536, 200_000} {
		msg := bytes.Repeat([]byte{'x'}, size)
		d.publish("c", msg)
		d.publish("other", []byte("not for this client"))
		typ, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if typ != websocket.TextMessage || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: got a message of type %d and %d bytes, want text of %d", size, typ, len(got), size)
		}
	}
	const burst = 2000
	for i := range burst {
		d.publish("c", []byte(strconv.Itoa(i)))
	}
	next, frames := 0, 0
	for next < burst {
		_, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("burst, after %d events: %v", next, err)
		}
		frames++
		for _, line := range strings.Split(string(got), "\n") {
			if line != strconv.Itoa(next) {
				t.Fatalf("burst: got event %q, want %d", line, next)
			}
			next++
		}
	}
	if frames == burst {
		t.Errorf("burst: %d events came in as many frames, want several to a frame", burst)
	}
}
