package bench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDirectWriterFrames checks the direct writer's frames against
// gorilla/websocket's reader, for each length encoding.
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		dt.s.(*directWriter).mu.Lock()
		n := len(dt.s.(*directWriter).subs["c"])
		dt.s.(*directWriter).mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the direct writer never registered the client")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, size := range []int{0, 125, 126, 65535, 65536, 200_000} {
		msg := bytes.Repeat([]byte{'x'}, size)
		dt.s.(*directWriter).publish("c", msg)
		dt.s.(*directWriter).publish("other", []byte("not for this client"))
		typ, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if typ != websocket.TextMessage || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: got a message of type %d and %d bytes, want text of %d", size, typ, len(got), size)
		}
	}
}
