package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
)

// BenchmarkFanout measures deliveries per second from one publisher to
// many clients of one channel over loopback, through the hub and, in the
// same run, through a bare gorilla/websocket broadcaster built like
// gorilla's chat example (one goroutine fanning out to per-client channels,
// queued messages joined into one frame). It reports both rates and their
// ratio. The publisher keeps at most 64 events ahead of the slowest
// client, so neither side drops anything.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			event := encodedEvent(b)
			hubRate := fanoutHub(b, n, event)
			baseRate := fanoutBaseline(b, n, event)
			b.ReportMetric(hubRate, "deliveries/s")
			b.ReportMetric(baseRate, "baseline_deliveries/s")
			b.ReportMetric(hubRate/baseRate, "ratio")
		})
	}
}

const fanoutWindow = 64

func encodedEvent(b *testing.B) []byte {
	_, data, err := eventData(1, 200)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// countingClient counts the messages it receives.
type countingClient struct {
	ws *websocket.Conn
	n  atomic.Int64
}

func (c *countingClient) run(wg *sync.WaitGroup) {
	defer wg.Done()
	_ = c.ws.SetReadDeadline(time.Time{}) // no deadline left from the handshake
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.n.Add(int64(bytes.Count(data, []byte("\n")) + 1))
	}
}

// pace publishes count events with publish, never more than fanoutWindow
// ahead of the slowest client, and waits until every client has them all.
func pace(b *testing.B, what string, clients []*countingClient, base int64, count int, publish func(i int)) time.Duration {
	stuck := func() {
		low, at := int64(1<<62), 0
		for _, c := range clients {
			if v := c.n.Load() - base; v < low {
				low, at = v, 0
			}
			if c.n.Load()-base == low {
				at++
			}
		}
		b.Fatalf("%s: clients stopped receiving: %d clients at %d of %d events", what, at, low, count)
	}
	slowest := func() int64 {
		m := int64(1 << 62)
		for _, c := range clients {
			if v := c.n.Load() - base; v < m {
				m = v
			}
		}
		return m
	}
	start := time.Now()
	deadline := start.Add(time.Minute)
	for i := 0; i < count; i++ {
		for int64(i)-slowest() >= fanoutWindow {
			if time.Now().After(deadline) {
				stuck()
			}
			time.Sleep(20 * time.Microsecond)
		}
		publish(i)
	}
	for slowest() < int64(count) {
		if time.Now().After(deadline) {
			stuck()
		}
		time.Sleep(20 * time.Microsecond)
	}
	return time.Since(start)
}

func fanoutHub(b *testing.B, n int, event []byte) float64 {
	e := newEnv(b)
	var wg sync.WaitGroup
	clients := make([]*countingClient, n)
	for i := range clients {
		c := e.connect(fmt.Sprint(i), "bench")
		c.subscribe(1, "bench", nil)
		clients[i] = &countingClient{ws: c.ws}
		wg.Add(1)
		go clients[i].run(&wg)
	}
	b.ResetTimer()
	d := pace(b, "hub", clients, 0, b.N, func(i int) {
		// Distinct ids: the broker keeps one copy of an id per channel.
		msg := broker.Message{EventID: strconv.Itoa(i), Channels: []string{"bench"}, Data: event}
		if err := e.broker.Publish(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
	})
	b.StopTimer()
	for _, c := range clients {
		_ = c.ws.Close()
	}
	wg.Wait()
	return float64(n) * float64(b.N) / d.Seconds()
}

// broadcaster is the baseline: gorilla's chat example without the chat.
type broadcaster struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
}

func (br *broadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	send := make(chan []byte, 256)
	br.mu.Lock()
	br.clients[send] = struct{}{}
	br.mu.Unlock()
	go func() {
		defer ws.Close()
		for m := range send {
			w, err := ws.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			_, _ = w.Write(m)
			for i := len(send); i > 0; i-- {
				_, _ = w.Write([]byte{'\n'})
				_, _ = w.Write(<-send)
			}
			if w.Close() != nil {
				return
			}
		}
	}()
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			br.mu.Lock()
			delete(br.clients, send)
			br.mu.Unlock()
			close(send)
			return
		}
	}
}

func (br *broadcaster) broadcast(m []byte) {
	br.mu.Lock()
	for c := range br.clients {
		select {
		case c <- m:
		default: // the chat example drops such a client; pacing avoids it
		}
	}
	br.mu.Unlock()
}

func fanoutBaseline(b *testing.B, n int, event []byte) float64 {
	br := &broadcaster{clients: make(map[chan []byte]struct{})}
	srv := httptest.NewServer(br)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	var wg sync.WaitGroup
	clients := make([]*countingClient, n)
	for i := range clients {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = &countingClient{ws: ws}
		wg.Add(1)
		go clients[i].run(&wg)
	}
	for {
		br.mu.Lock()
		k := len(br.clients)
		br.mu.Unlock()
		if k == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// The same bytes a hub client receives per event.
	m := append([]byte(`{"type":"event","channel":"bench","offset":1,"event":`), event...)
	m = append(m, '}')
	b.StartTimer()
	d := pace(b, "baseline", clients, 0, b.N, func(int) { br.broadcast(m) })
	b.StopTimer()
	for _, c := range clients {
		_ = c.ws.Close()
	}
	wg.Wait()
	return float64(n) * float64(b.N) / d.Seconds()
}
