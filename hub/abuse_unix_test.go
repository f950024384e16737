//go:build unix

package hub_test

import (
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestSlowClientMemory: a client that never reads is closed with 4008
// once the hub holds about SendQueueBytes for it, counting the kernel's
// send buffer: what the kernel still delivers to it after the close (the
// bytes it held) stays within a few SendBufferBytes, instead of the
// megabytes an auto-tuned send buffer takes. The slow-consumer log
// reports the bytes that were queued.
func TestSlowClientMemory(t *testing.T) {
	const queue, sndbuf = 64 << 10, 16 << 10
	logs := &testenv.Buffer{}
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.SendQueueBytes, c.SendBufferBytes = queue, sndbuf
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	// The client's receive buffer is made small, so that what is held is
	// on the hub's side.
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return errors.Join(err, serr)
		}}
		return nd.Dial(network, addr)
	}}
	ws, _, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &client{t: t, ws: ws}
	c.send(`{"type":"hello","token":"` + e.token("1", "a") + `"}`)
	c.expect("welcome")
	c.subscribe(1, "a", nil)

	published := 0
	for e.metric("telegraphy_hub_slow_consumer_closes_total") < 1 {
		if published > 64<<20 {
			t.Fatalf("published %d bytes to a client that never reads, and it is still open", published)
		}
		for range 32 {
			publishTo(t, e.broker, "a", 1, 1000)
			published += 1000
		}
	}
	received := 0
	for {
		_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4008 {
				t.Fatalf("connection ended with %v, want 4008", err)
			}
			break
		}
		received += len(data)
	}
	t.Logf("published %d bytes before the close; the kernel held %d bytes for the client", published, received)
	// The kernel doubles SO_SNDBUF; the client's small receive buffer
	// holds a few KiB more.
	if limit := 4*sndbuf + 16<<10; received > limit {
		t.Errorf("the client received %d bytes after it stopped reading: the kernel held more than %d", received, limit)
	}
	m := regexp.MustCompile(`slow consumer closed.* queued_bytes=(\d+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no slow-consumer log line in:\n%s", logs.String())
	}
	if q, _ := strconv.Atoi(m[1]); q <= 0 || q > queue {
		t.Errorf("slow-consumer log: queued_bytes=%s, want between 1 and %d", m[1], queue)
	}
}
