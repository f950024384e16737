package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/wsframe"
)

func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.SendQueueBytes = 64 << 10 })
	stalled := e.connect("stalled", "a")
	stalled.subscribe(1, "a", nil)
	healthy := e.connect("healthy", "a")
	healthy.subscribe(1, "a", nil)

	// Events are published in small batches, each once the healthy client
	// has read the previous one, until the stalled client (which never
	// reads) has been closed; then a few more.
	const batch, size = 4, 8000
	published := 0
	closed := false
	for extra := 0; extra < 3; {
		if published > 20_000 {
			t.Fatalf("stalled client not closed after %d events", published)
		}
		ids := publishTo(t, e.broker, "a", batch, size)
		healthy.expectEvents("a", uint64(published), ids)
		published += batch
		if closed || published%(25*batch) == 0 && e.metric("telegraphy_hub_slow_consumer_closes_total") >= 1 {
			closed = true
			extra++
		}
	}
	healthy.alive(2)
	t.Logf("stalled client closed after at most %d events of ~8 KB", published)
	if got := e.metric("telegraphy_hub_slow_consumer_closes_total"); got != 1 {
		t.Fatalf("slow consumer closes: %v, want 1", got)
	}
	stalled.expectClose(4008)
}

func TestRecovery(t *testing.T) {
	cases := []struct {
		name          string
		historySize   int
		since         func(first broker.Position) broker.Position
		published     int
		wantRecovered bool
		wantMissed    int
	}{
		{"missed events", 0, func(p broker.Position) broker.Position { return p }, 5, true, 5},
		{"nothing missed", 0, func(p broker.Position) broker.Position { return broker.Position{Epoch: p.Epoch, Offset: p.Offset + 5} }, 5, true, 0},
		{"past the history", 3, func(p broker.Position) broker.Position { return p }, 5, false, 0},
		{"wrong epoch", 0, func(p broker.Position) broker.Position { return broker.Position{Epoch: "other", Offset: p.Offset} }, 5, false, 0},
		{"offset from the future", 0, func(p broker.Position) broker.Position { return broker.Position{Epoch: p.Epoch, Offset: 99} }, 5, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(_ *hub.Config, b *broker.MemoryConfig) { b.HistorySize = tc.historySize })
			e.publish("a", 2)
			c := e.connect("17", "a")
			s := c.subscribe(1, "a", nil)
			first := broker.Position{Epoch: s.Epoch, Offset: s.Offset}
			_ = c.ws.Close()

			ids := e.publish("a", tc.published)
			c2 := e.connect("17", "a")
			since := tc.since(first)
			r := c2.subscribe(1, "a", &since)
			if r.Recovered != tc.wantRecovered || len(r.Missed) != tc.wantMissed {
				t.Fatalf("subscribed %s: want recovered %v with %d missed", r, tc.wantRecovered, tc.wantMissed)
			}
			if r.Epoch != first.Epoch || r.Offset != first.Offset+uint64(tc.published) {
				t.Fatalf("subscribed %s: want position %s/%d", r, first.Epoch, first.Offset+uint64(tc.published))
			}
			for i, raw := range r.Missed {
				var m msg
				if err := jsonUnmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				if m.Type != "event" || m.Channel != "a" || m.Offset != first.Offset+uint64(i)+1 || m.eventID() != ids[i] {
					t.Fatalf("missed[%d] = %s, want event offset %d id %s", i, raw, first.Offset+uint64(i)+1, ids[i])
				}
			}
			// Live events continue right after the position.
			live := e.publish("a", 2)
			c2.expectEvents("a", r.Offset, live)
		})
	}
}

// Publications that arrive while a subscribe reads the history are merged
// with it: every client sees each offset once, in order.
func TestRecoveryUnderLoad(t *testing.T) {
	e := newEnv(t)
	// The memory broker keeps a channel's history from the first time it
	// is asked for it: ask, so that the first subscriber below finds at
	// least 10 publications to recover from.
	if _, err := e.broker.History(context.Background(), "a", nil); err != nil {
		t.Fatal(err)
	}
	e.publish("a", 10)
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		defer close(pubErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tryPublish(e.broker, "a", 1, 0); err != nil {
				pubErr <- err
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	stopped := false
	stopPublisher := func() {
		if !stopped {
			stopped = true
			close(stop)
			if err := <-pubErr; err != nil {
				t.Errorf("publisher: %v", err)
			}
		}
	}
	defer stopPublisher()

	type sub struct {
		c    *client
		next uint64
	}
	var subs []sub
	for i := 0; i < 20; i++ {
		c := e.connect("17", "a")
		s0 := c.subscribe(1, "a", nil) // learn the position
		since := broker.Position{Epoch: s0.Epoch, Offset: s0.Offset - uint64(i%5)}
		c.send(`{"type":"unsubscribe","id":2,"channel":"a"}`)
		for m := c.next(); m.Type != "unsubscribed"; m = c.next() {
		}
		r := c.subscribe(3, "a", &since)
		if !r.Recovered || uint64(len(r.Missed)) != r.Offset-since.Offset {
			t.Fatalf("subscribed with %d missed, position %d, since %d, recovered %v", len(r.Missed), r.Offset, since.Offset, r.Recovered)
		}
		subs = append(subs, sub{c, r.Offset + 1})
	}
	time.Sleep(100 * time.Millisecond)
	stopPublisher()
	h, err := e.broker.History(context.Background(), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	last := h.Position.Offset
	for i, s := range subs {
		for s.next <= last {
			m := s.c.expect("event")
			if m.Offset != s.next {
				t.Fatalf("client %d: got offset %d, want %d", i, m.Offset, s.next)
			}
			s.next++
		}
		s.c.alive(9) // and nothing else before the pong
	}
}

// When the broker drops publications for the hub (its buffer was full),
// the hub recovers them from history.
func TestBrokerDropsRecovered(t *testing.T) {
	e := newEnv(t, func(_ *hub.Config, b *broker.MemoryConfig) { b.SubscriberBuffer = 1 })
	c := e.connect("17", "a")
	c.subscribe(1, "a", nil)
	ids := e.publish("a", 200) // one Publish call: most overflow the buffer of 1
	c.expectEvents("a", 0, ids)
	c.alive(2)
	if got := e.metric(`telegraphy_hub_gaps_total{result="recovered"}`); got < 1 {
		t.Fatalf("recovered gaps: %v, want at least 1", got)
	}
	if got := e.metric("telegraphy_hub_broker_drops_total"); got < 1 {
		t.Fatalf("broker drops: %v", got)
	}
}

// When the history cannot fill the gap, clients are told with a
// subscribed message without id and recovered:false.
func TestBrokerDropsLost(t *testing.T) {
	e := newEnv(t, func(_ *hub.Config, b *broker.MemoryConfig) {
		b.SubscriberBuffer = 1
		b.HistorySize = 2
	})
	c := e.connect("17", "a")
	c.subscribe(1, "a", nil)
	e.publish("a", 50)
	var lost bool
	var last uint64
	for last < 50 {
		m := c.next()
		switch {
		case m.Type == "subscribed" && m.ID == nil && !m.Recovered && m.Channel == "a":
			lost = true
			last = m.Offset
		case m.Type == "event" && m.Offset == last+1:
			last = m.Offset
		default:
			t.Fatalf("after offset %d: got %s", last, m)
		}
	}
	if !lost {
		t.Fatal("no recovered:false notice")
	}
}

func TestRevokeAcrossHubs(t *testing.T) {
	b := broker.NewMemory()
	withBroker(t, b)
	cfg := func() hub.Config {
		return hub.Config{Broker: b, Secret: testSecret, Logger: discardLogger(), ServeMetrics: true}
	}
	a := newEnvWith(t, cfg(), b)
	other := newEnvWith(t, cfg(), b)
	victim := other.connect("17", "x")
	victim.subscribe(1, "x", nil)
	bystander := other.connect("18", "x")
	local := a.connect("17", "x")

	if err := a.hub.Revoke(context.Background(), "17"); err != nil {
		t.Fatal(err)
	}
	victim.expectClose(4010)
	local.expectClose(4010)
	bystander.alive(1)
	if err := a.hub.Revoke(context.Background(), ""); !errors.Is(err, hub.ErrEmptySubject) {
		t.Fatalf("Revoke(\"\"): %v", err)
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t)
	var cs []*client
	for _, sub := range []string{"1", "2", "3"} {
		c := e.connect(sub, "a")
		c.subscribe(1, "a", nil)
		cs = append(cs, c)
	}
	idle := e.mustDial() // not even authenticated
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.hub.Close(ctx) }()
	for _, c := range append(cs, idle) {
		c.expectClose(1001)
	}
	if err := <-done; err != nil {
		t.Fatalf("Close: %v", err)
	}
	// A goroutine may still be returning from its last statement.
	if err := waitNoHubGoroutines(time.Second); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	if err := e.hub.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, resp, err := e.dial(nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Close: %v %v, want 503", err, resp)
	}
	if err := e.hub.Revoke(ctx, "1"); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("Revoke after Close: %v", err)
	}
}

// A client that answers no pings is dropped after PingInterval+PongTimeout;
// one that answers stays.
func TestPingPong(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.PingInterval = 100 * time.Millisecond
		c.PongTimeout = 100 * time.Millisecond
	})
	silent := e.connect("1") // never reads again, so never answers a ping
	c := e.connect("2")
	var pings atomic.Int32
	c.ws.SetPingHandler(func(data string) error {
		pings.Add(1)
		return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	msgs := make(chan msg, 10)
	go func() {
		defer close(msgs)
		for {
			m, err := c.read(10 * time.Second)
			if err != nil {
				return
			}
			msgs <- m
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.metric("telegraphy_hub_connections") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the silent client was not dropped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // several more ping intervals
	c.send(`{"type":"ping","id":1}`)
	if m, ok := <-msgs; !ok || m.Type != "pong" {
		t.Fatalf("answering client: got %v %v, want pong", m, ok)
	}
	if pings.Load() < 2 {
		t.Fatalf("%d pings", pings.Load())
	}
	// The silent client finds its connection gone (without a close frame).
	_, err := silent.read(5 * time.Second)
	var ne interface{ Timeout() bool }
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("silent client: %v, want the connection dropped", err)
	}
	_ = c.ws.Close()
	for range msgs {
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Close with a deadline too short for the close handshake drops what is
// left and reports the deadline.
func TestCloseDeadline(t *testing.T) {
	e := newEnv(t)
	c := e.connect("1", "a") // never answers the close frame: it does not read
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.hub.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v, want the deadline", err)
	}
	if err := waitNoHubGoroutines(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.expectClose(1001) // the frame went out before the drop
}

// A broker that fails is reported: subscribe answers "internal", and
// /healthz answers 503 once the hub's subscription is gone.
func TestBrokerClosed(t *testing.T) {
	e := newEnv(t)
	c := e.connect("1", "a")
	if err := e.broker.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.send(`{"type":"subscribe","id":1,"channel":"a"}`)
	if m := c.expect("error"); m.Code != "internal" || m.ID == nil || *m.ID != 1 {
		t.Fatalf("got %s, want error internal", m)
	}
	c.alive(2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(e.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The memory broker has no Ping: only the closed subscription
		// makes the hub unhealthy. The reason is logged, not served.
		if resp.StatusCode == http.StatusServiceUnavailable && strings.TrimSpace(string(body)) == "unavailable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz: %d %q, want 503 \"unavailable\"", resp.StatusCode, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.waitMetric("telegraphy_hub_broker_up", 0); got != 0 {
		t.Fatalf("broker_up = %v", got)
	}
}

// TestWriteTimeout: a client that stops reading, with a send queue too
// large to overflow, is dropped once a write has blocked for WriteTimeout.
func TestWriteTimeout(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.SendQueueBytes = 256 << 20
		c.WriteTimeout = 500 * time.Millisecond
	})
	stalled := e.connect("stalled", "a")
	stalled.subscribe(1, "a", nil)
	if got := e.metric("telegraphy_hub_connections"); got != 1 {
		t.Fatalf("connections: %v, want 1", got)
	}
	// Far more than the loopback socket buffers hold: the hub's write
	// blocks.
	for i := 0; i < 16; i++ {
		publishTo(t, e.broker, "a", 32, 32<<10)
	}
	if got := e.waitMetric("telegraphy_hub_connections", 0); got != 0 {
		t.Fatalf("connections: %v, want the stalled one dropped", got)
	}
	if got := e.metric("telegraphy_hub_slow_consumer_closes_total"); got != 0 {
		t.Fatalf("slow consumer closes: %v, want 0 (the write timeout dropped it)", got)
	}
}

// TestPartialWrites: a client that stops reading while far more than the
// socket buffers hold is sent, then reads again, receives every event
// intact and in order. The hub's write pool never waits on a socket: the
// frames it can write only in part are finished by the connection's
// writer goroutine, and nothing comes between.
func TestPartialWrites(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.SendQueueBytes = 256 << 20
		c.WriteTimeout = 30 * time.Second
	})
	c := e.connect("reader", "a")
	c.subscribe(1, "a", nil)
	var ids []string
	for i := 0; i < 24; i++ {
		ids = append(ids, publishTo(t, e.broker, "a", 32, 32<<10)...)
	}
	time.Sleep(200 * time.Millisecond) // the hub fills the socket buffers
	c.expectEvents("a", 0, ids)
	if got := e.metric("telegraphy_hub_connections"); got != 1 {
		t.Errorf("connections: %v, want 1", got)
	}
}

// TestPingAnsweredInOrder: a client's WebSocket pings are answered, in
// order with the frames, while events stream, and the events arrive
// intact.
func TestPingAnsweredInOrder(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.SendQueueBytes = 256 << 20
	})
	c := e.connect("pinger", "a")
	c.subscribe(1, "a", nil)
	var pongs []string
	c.ws.SetPongHandler(func(data string) error {
		pongs = append(pongs, data)
		return nil
	})
	const n = 8
	var ids []string
	for i := range n {
		ids = append(ids, publishTo(t, e.broker, "a", 64, 4<<10)...)
		if err := c.ws.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	c.expectEvents("a", 0, ids)
	// The hub reads the pings before this message, and answers them
	// before its reply.
	c.alive(2)
	// Pings not yet answered when another comes may be answered by one
	// pong, for the latest (RFC 6455, 5.5.3).
	if len(pongs) == 0 || pongs[len(pongs)-1] != fmt.Sprint(n-1) {
		t.Fatalf("pongs %q, want the last for ping %d", pongs, n-1)
	}
	for i := 1; i < len(pongs); i++ {
		if pongs[i] <= pongs[i-1] {
			t.Fatalf("pongs %q, want them in the pings' order", pongs)
		}
	}
	// A ping without payload is answered too.
	if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c.alive(3)
	if got := len(pongs); got < 2 || pongs[got-1] != "" || pongs[got-2] != fmt.Sprint(n-1) {
		t.Fatalf("pongs %q, want an empty one after the ping without payload", pongs)
	}
}

// TestWriteAfterPing: a message written by the write pool after a ping
// reaches the client though WriteTimeout has passed since the ping.
// gorilla/websocket's WriteControl leaves its deadline on the socket,
// which the pool's writes would meet.
func TestWriteAfterPing(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.WriteTimeout = 100 * time.Millisecond
		c.PingInterval = 600 * time.Millisecond
	})
	c := e.connect("1", "a")
	c.subscribe(1, "a", nil)
	var pinged atomic.Bool
	c.ws.SetPingHandler(func(data string) error {
		pinged.Store(true)
		return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	for id := 2; !pinged.Load(); id++ {
		if id > 100 {
			t.Fatal("no ping from the hub")
		}
		c.alive(id)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // past WriteTimeout, before the next ping
	c.expectEvents("a", 0, e.publish("a", 3))
	c.alive(200)
}

// TestStaleWake: a writer goroutine woken by a wake left over from an
// earlier kick stays parked while the write pool holds its connection,
// so the connection's frames are never written by both at once, out of
// order.
func TestStaleWake(t *testing.T) {
	e := newEnv(t)
	c := e.connect("1")
	// A WebSocket ping from the client starts the writer (for the pong),
	// which then parks for one to two seconds.
	if err := c.ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c.alive(1)
	parked, untouched := hub.HoldAgainstStaleWake(e.hub, "1", []byte(`{"type":"pong","id":2}`), 100*time.Millisecond)
	if !parked || !untouched {
		t.Fatalf("writer parked %v, message left to the pool %v; want both", parked, untouched)
	}
	m := c.expect("pong")
	if m.ID == nil || *m.ID != 2 {
		t.Fatalf("got %s, want the pong with id 2", m)
	}
	c.alive(3)
}

// TestTLS: over wss://, where the hub's write pool cannot write to the
// socket itself and every frame goes through the connection's writer
// goroutine, events arrive whole and in order, with pings answered.
func TestTLS(t *testing.T) {
	b := broker.NewMemory()
	withBroker(t, b)
	e := newEnvOn(t, hub.Config{Broker: b, Secret: testSecret, Logger: discardLogger(), SendQueueBytes: 64 << 20, ServeMetrics: true}, b, httptest.NewTLSServer)
	if !strings.HasPrefix(e.url, "wss://") {
		t.Fatalf("url %s, want wss://", e.url)
	}
	c := e.connect("1", "a")
	c.subscribe(1, "a", nil)
	var ids []string
	for i := range 8 {
		ids = append(ids, publishTo(t, e.broker, "a", 50, 4<<10)...)
		if err := c.ws.WriteControl(websocket.PingMessage, []byte(strconv.Itoa(i)), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	c.expectEvents("a", 0, ids)
	c.alive(2)
}

// TestCloseAfterFrameInPart: when a client closes while the hub has
// written a frame in part, the hub's answering close frame comes after
// the whole frame, not inside it. gorilla/websocket writes that answer
// from the connection's reader goroutine; the over-limit and protocol
// error close frames take the same path.
func TestCloseAfterFrameInPart(t *testing.T) {
	e := newEnv(t)
	c := e.connect("1")
	c.alive(1)
	payload := `{"type":"pong","id":2}`
	frame := append(wsframe.AppendHeader(nil, wsframe.OpText, len(payload)), payload...)
	held, err := hub.WriteInPart(e.hub, "1", frame, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	held.WaitClosing() // gorilla/websocket has written its answer
	held.Release()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, got, err := c.ws.ReadMessage()
	if err != nil || mt != websocket.TextMessage || string(got) != payload {
		t.Fatalf("read %d %q %v, want the whole frame %q", mt, got, err, payload)
	}
	_, _, err = c.ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("read %v, want the hub's answering close frame (1000)", err)
	}
}
