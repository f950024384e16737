package bench

import (
	"bytes"
	"context"
	"encoding/binary"
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

// TestDirectLogRing: a channel's ring grows to directRing events, then
// keeps the latest; a socket further behind gets those, in order.
func TestDirectLogRing(t *testing.T) {
	var l directLog
	for i := range directRing + 10 {
		l.ring, l.head = appendRing(l.ring, l.head, []byte(strconv.Itoa(i)))
	}
	if len(l.ring) != directRing {
		t.Fatalf("ring of %d messages, want %d", len(l.ring), directRing)
	}
	frame, head := l.appendFrame(nil, 0)
	if head != directRing+10 {
		t.Fatalf("head %d, want %d", head, directRing+10)
	}
	// Over 64 KiB of events: the header's length is 8 bytes.
	if frame[0] != 0x81 || frame[1] != 127 || binary.BigEndian.Uint64(frame[2:10]) != uint64(len(frame)-10) {
		t.Fatalf("frame header % x for %d bytes", frame[:10], len(frame))
	}
	lines := strings.Split(string(frame[10:]), "\n")
	if len(lines) != directRing || lines[0] != "10" || lines[len(lines)-1] != strconv.Itoa(directRing+9) {
		t.Fatalf("frame holds %d events from %q to %q, want %d from 10 to %d", len(lines), lines[0], lines[len(lines)-1], directRing, directRing+9)
	}
}
