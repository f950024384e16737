package bench

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestReaders runs the load clients' readers against a gorilla/websocket
// server that sends a message fragmented over several frames, a ping, a
// message over 64 KiB, two messages in one frame and a close frame: every
// message is counted once, the ping is answered and the close code kept.
func TestReaders(t *testing.T) {
	pong := make(chan string, 1)
	upgrader := websocket.Upgrader{WriteBufferSize: 4096}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ws.SetPongHandler(func(s string) error { pong <- s; return nil })
		// Like a hub, the server sends nothing until the client speaks:
		// here, once its readers have taken the connection over.
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Errorf("read: %v", err)
			return
		}
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}()
		msg := func(seq int, pad int) string {
			return `{"type":"event","event":{"data":{"seq":` + strconv.Itoa(seq) + `,"sent_ns":` +
				strconv.FormatInt(clock(), 10) + `,"pad":"` + strings.Repeat("x", pad) + `"}}}`
		}
		send := func(s string) {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
				t.Errorf("write: %v", err)
			}
		}
		send(msg(0, 20_000)) // over the 4 KiB write buffer: several frames
		if err := ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
			t.Errorf("ping: %v", err)
		}
		select {
		case <-pong:
		case <-time.After(5 * time.Second):
			t.Error("no pong")
		}
		send(msg(1, 70_000)) // a 64-bit payload length
		send(msg(2, 10) + "\n" + msg(3, 10))
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "slow consumer"), time.Now().Add(time.Second))
		// Keep the connection open until the client has closed it, so
		// that it reads the close frame rather than a reset.
		select {
		case <-readDone:
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()

	conn, _, err := dialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{conn: conn, hist: new(histogram), done: make(chan struct{})}
	var stopping atomic.Bool
	stop, err := startReaders([]*client{c}, &stopping)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("ready")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not end at the close frame")
	}
	if got := c.unique.Load(); got != 4 || c.dups != 0 {
		t.Errorf("messages counted %d (duplicates %d), want 4", got, c.dups)
	}
	if c.closeCode != 4008 {
		t.Errorf("close code %d (%v), want 4008", c.closeCode, c.readErr)
	}
	if c.hist.Count() != 4 {
		t.Errorf("latencies recorded %d, want 4", c.hist.Count())
	}
}
