//go:build linux

package hub_test

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
)

// sendQueue returns the bytes in the send queue of the TCP socket from
// local to remote port on 127.0.0.1, as /proc/net/tcp reports them
// (tx_queue: written by the process, not yet acknowledged by the peer).
func sendQueue(t *testing.T, local, remote int) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	want := func(port int) string { return strings.ToUpper(strconv.FormatInt(int64(port), 16)) }
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		port := func(addr string) string {
			_, p, _ := strings.Cut(addr, ":")
			return strings.TrimLeft(p, "0")
		}
		if port(fields[1]) != want(local) || port(fields[2]) != want(remote) {
			continue
		}
		tx, _, _ := strings.Cut(fields[4], ":")
		n, err := strconv.ParseInt(tx, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	return -1
}

// TestSlowClientSendBuffer: a client that read at full speed and then
// stops reading cannot make the kernel hold more than about twice
// SendBufferBytes for it on the hub's side (Linux doubles SO_SNDBUF),
// however far the system would have grown an auto-tuned buffer while the
// client read: the hub closes it with 4008 once SendQueueBytes is queued
// on top.
func TestSlowClientSendBuffer(t *testing.T) {
	const sndbuf = 16 << 10
	e := newEnv(t, func(c *hub.Config, b *broker.MemoryConfig) {
		c.SendQueueBytes, c.SendBufferBytes = 256<<10, sndbuf
		b.SubscriberBuffer = 1 << 16
	})
	c := e.connect("1", "a")
	c.subscribe(1, "a", nil)
	local := e.srv.Listener.Addr().(*net.TCPAddr).Port
	remote := c.ws.LocalAddr().(*net.TCPAddr).Port

	// Warm up: 4 MB that the client reads as fast as it can, so that an
	// auto-tuned send buffer grows.
	const warm = 4000
	var read atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for read.Load() < warm {
			_, data, err := c.ws.ReadMessage()
			if err != nil {
				return
			}
			read.Add(int64(strings.Count(string(data), "\n") + 1))
		}
	}()
	for i := 0; i < warm; i += 100 {
		publishTo(t, e.broker, "a", 100, 1000)
		// Paced by the reader, so that the hub's queue stays short.
		for read.Load() < int64(i) {
			select {
			case <-done:
				if read.Load() < int64(i) {
					t.Fatalf("the client stopped after %d events", read.Load())
				}
			case <-time.After(time.Millisecond):
			}
		}
	}
	<-done
	if read.Load() < warm {
		t.Fatalf("the client read %d events, want %d", read.Load(), warm)
	}

	// The client stops reading; events go on until the hub gives up.
	most := 0
	for i := 0; e.metric("telegraphy_hub_slow_consumer_closes_total") < 1; i++ {
		if i > 4000 {
			t.Fatal("the client that stopped reading was never closed with 4008")
		}
		publishTo(t, e.broker, "a", 16, 1000)
		most = max(most, sendQueue(t, local, remote))
	}
	most = max(most, sendQueue(t, local, remote))
	t.Logf("the hub's socket held at most %d bytes for the client that stopped reading", most)
	if most < 0 {
		t.Fatal("the hub's socket is not in /proc/net/tcp")
	}
	// Beyond the buffer, the queue holds at most one segment in flight:
	// up to 64 KiB on loopback.
	if limit := 2*sndbuf + 64<<10; most > limit {
		t.Errorf("the hub's socket held %d bytes for a client that stopped reading, want at most %d", most, limit)
	}
}
