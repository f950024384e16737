package hub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// newRedisEnv starts a hub on a Redis broker of a throwaway redis-server
// and returns it with the broker.
func newRedisEnv(t *testing.T, opts ...envOption) (*env, *redisbroker.Broker) {
	t.Helper()
	return newRedisEnvWith(t, redisbroker.Config{}, opts...)
}

// newRedisEnvWith is newRedisEnv with the broker configured by rcfg (its
// URL is filled in).
func newRedisEnvWith(t *testing.T, rcfg redisbroker.Config, opts ...envOption) (*env, *redisbroker.Broker) {
	t.Helper()
	r := testenv.StartRedis(t)
	rcfg.URL, rcfg.Logger = r.URL, quietLogger()
	bus, err := redisbroker.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	cfg := hub.Config{Secret: testSecret, Broker: bus, Logger: quietLogger(), ServeMetrics: true}
	var bcfg broker.MemoryConfig
	for _, o := range opts {
		o(&cfg, &bcfg)
	}
	return newEnvWith(t, cfg, nil), bus
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// channelKeys counts the Redis keys of broker channels (used-token marks
// aside).
func channelKeys(t *testing.T, c redis.UniversalClient) int {
	t.Helper()
	keys, err := c.Keys(context.Background(), "telegraphy:{*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// churn subscribes to n fresh channel names and unsubscribes from each,
// 64 pairs a frame, as a client with a prefix grant can; the last
// subscribe of each frame is left open when keepLast is set.
func churn(t *testing.T, c *client, prefix string, n int, keepLast bool) {
	t.Helper()
	id := 1
	for start := 0; start < n; start += 64 {
		var lines []string
		end := min(start+64, n)
		for i := start; i < end; i++ {
			ch := fmt.Sprintf("%s%d", prefix, i)
			lines = append(lines, fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":%q}`, id, ch))
			if !keepLast || i < end-1 {
				lines = append(lines, fmt.Sprintf(`{"type":"unsubscribe","id":%d,"channel":%q}`, id+1, ch))
			}
			id += 2
		}
		c.send(lines...)
		for range lines {
			if m := c.next(); m.Type != "subscribed" && m.Type != "unsubscribed" {
				t.Fatalf("churn: got %s", m)
			}
		}
	}
}

// TestChurnLeavesNothing: subscribing to fresh channel names and leaving
// them (by unsubscribe, or by closing the connection) leaves no Redis key
// and no memory-broker channel behind, while a channel that was published
// to keeps its history.
func TestChurnLeavesNothing(t *testing.T) {
	const names = 300
	// The rate limits would stop the churn early: lifted, so that what
	// the brokers keep is measured alone.
	unlimited := func(c *hub.Config, _ *broker.MemoryConfig) {
		c.RequestBurst, c.MaxChannelsPerMinute = 10*names, 10*names
	}
	t.Run("redis", func(t *testing.T) {
		e, bus := newRedisEnvWith(t, redisbroker.Config{UnwatchedTTL: 50 * time.Millisecond}, unlimited)
		c := e.connect("42", "user:42:*")
		c.subscribe(1000, "user:42:real", nil)
		publishTo(t, bus, "user:42:real", 3, 0)
		c.expect("event")
		c.expect("event")
		c.expect("event")
		before := channelKeys(t, bus.Client())
		if before == 0 {
			t.Fatal("the published channel has no keys")
		}
		settled := func() int {
			deadline := time.Now().Add(10 * time.Second)
			for channelKeys(t, bus.Client()) != before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			return channelKeys(t, bus.Client())
		}
		churn(t, c, "user:42:junk:", names, false)
		if got := settled(); got != before {
			t.Errorf("after %d subscribe/unsubscribe pairs: %d channel keys, want %d", names, got, before)
		}
		c2 := e.connect("42", "user:42:*")
		churn(t, c2, "user:42:open:", names, true)
		_ = c2.ws.Close()
		if got := settled(); got != before {
			t.Errorf("after a connection with open subscriptions closed: %d channel keys, want %d", got, before)
		}
		c3 := e.connect("42", "user:42:*")
		if m := c3.subscribe(1, "user:42:real", &broker.Position{Epoch: firstEpoch(t, bus, "user:42:real"), Offset: 1}); !m.Recovered || len(m.Missed) != 2 {
			t.Errorf("the published channel after the churn: %s, want recovered with 2 missed", m)
		}
	})
	t.Run("memory", func(t *testing.T) {
		e := newEnv(t, unlimited, func(_ *hub.Config, b *broker.MemoryConfig) { b.UnwatchedTTL = 50 * time.Millisecond })
		c := e.connect("42", "user:42:*")
		c.subscribe(1000, "user:42:real", nil)
		e.publish("user:42:real", 3)
		for range 3 {
			c.expect("event")
		}
		before := e.broker.Channels()
		settled := func() int {
			deadline := time.Now().Add(10 * time.Second)
			for e.broker.Channels() != before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			return e.broker.Channels()
		}
		churn(t, c, "user:42:junk:", names, false)
		if got := settled(); got != before {
			t.Errorf("after %d subscribe/unsubscribe pairs: %d channels, want %d", names, got, before)
		}
		c2 := e.connect("42", "user:42:*")
		churn(t, c2, "user:42:open:", names, true)
		_ = c2.ws.Close()
		if got := settled(); got != before {
			t.Errorf("after a connection with open subscriptions closed: %d channels, want %d", got, before)
		}
	})
}

// firstEpoch returns the channel's current epoch.
func firstEpoch(t *testing.T, b broker.Broker, channel string) string {
	t.Helper()
	res, err := b.History(context.Background(), channel, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res.Position.Epoch
}

// TestFloodKeepsWatchedHistory: on the memory broker, a flood of channel
// names (more than MaxChannels) does not evict the history of a channel
// that has subscribers: they still recover from their position.
func TestFloodKeepsWatchedHistory(t *testing.T) {
	e := newEnv(t, func(_ *hub.Config, b *broker.MemoryConfig) { b.MaxChannels = 50 })
	busy := e.connect("1", "demo.Task")
	first := busy.subscribe(1, "demo.Task", nil)
	e.publish("demo.Task", 5)
	for range 5 {
		busy.expect("event")
	}
	// An attacker with a prefix grant looks at many names, keeping each
	// open as long as the per-connection channel limit lets it, then
	// leaves; and names get published to with nobody watching.
	attacker := e.connect("2", "junk:*")
	churn(t, attacker, "junk:", 100, false)
	for i := range 200 {
		if _, err := e.broker.History(context.Background(), fmt.Sprint("app:", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	late := e.connect("3", "demo.Task")
	m := late.subscribe(1, "demo.Task", &broker.Position{Epoch: first.Epoch, Offset: 2})
	if !m.Recovered || len(m.Missed) != 3 {
		t.Fatalf("after the flood: %s, want recovered with 3 missed", m)
	}
	if !strings.Contains(string(m.Missed[0]), `"offset":3`) {
		t.Errorf("first missed event %s, want offset 3", m.Missed[0])
	}
}

// redisOutputBytes returns how many bytes Redis has sent to its clients.
func redisOutputBytes(t *testing.T, c redis.UniversalClient) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_net_output_bytes in INFO stats")
	return 0
}

// TestRecoveryAmplification: a subscribe asking for a position far behind
// on a channel with a long history costs Redis the position only, not the
// history: the hub checks the gap before the read and answers
// recovered:false. A gap within the limits is still recovered.
func TestRecoveryAmplification(t *testing.T) {
	const events, pad = 3000, 1000
	e, bus := newRedisEnvWith(t, redisbroker.Config{HistorySize: events})
	ctx := context.Background()
	first, err := bus.History(ctx, "big", nil) // starts the channel's history
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < events; i += 500 {
		publishTo(t, bus, "big", 500, pad)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := bus.History(ctx, "big", nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Position.Offset == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history at offset %d, want %d", res.Position.Offset, events)
		}
		time.Sleep(20 * time.Millisecond)
	}

	c := e.connect("1", "big")
	const abusive = 5
	before := redisOutputBytes(t, bus.Client())
	for i := range abusive {
		m := c.subscribe(2*i+1, "big", &broker.Position{Epoch: first.Position.Epoch, Offset: 0})
		if m.Recovered || len(m.Missed) != 0 {
			t.Fatalf("subscribe from offset 0: %s, want recovered:false", m)
		}
		c.send(fmt.Sprintf(`{"type":"unsubscribe","id":%d,"channel":"big"}`, 2*i+2))
		c.expect("unsubscribed")
	}
	perRequest := (redisOutputBytes(t, bus.Client()) - before) / abusive
	t.Logf("Redis sent %d bytes per abusive subscribe (history: %d events of %d bytes)", perRequest, events, pad)
	if perRequest > 16<<10 {
		t.Errorf("Redis sent %d bytes per subscribe from offset 0, want under 16 KiB", perRequest)
	}

	m := c.subscribe(100, "big", &broker.Position{Epoch: first.Position.Epoch, Offset: events - 10})
	if !m.Recovered || len(m.Missed) != 10 {
		t.Errorf("subscribe 10 events behind: recovered %v with %d missed, want recovered with 10", m.Recovered, len(m.Missed))
	}
}

// TestRequestRate: requests beyond a connection's token bucket are
// answered with error "limit" and not processed; a client that keeps
// sending is closed with 1008.
func TestRequestRate(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.RequestRate, c.RequestBurst = 0.01, 5
	})
	c := e.connect("1", "a")
	var pings []string
	for i := 1; i <= 6; i++ {
		pings = append(pings, fmt.Sprintf(`{"type":"ping","id":%d}`, i))
	}
	c.send(pings...)
	for i := 1; i <= 5; i++ {
		if m := c.expect("pong"); *m.ID != uint64(i) {
			t.Fatalf("pong %s, want id %d", m, i)
		}
	}
	if m := c.expect("error"); m.Code != "limit" || m.ID == nil || *m.ID != 6 {
		t.Fatalf("6th ping: %s, want error limit with id 6", m)
	}
	c.send(pings...)
	c.expectClose(1008)
}

// TestChannelsPerMinute: a connection may subscribe to at most
// MaxChannelsPerMinute distinct channels a minute; resubscribing to one
// already counted is free.
func TestChannelsPerMinute(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.MaxChannelsPerMinute = 3 })
	c := e.connect("1", "c:*")
	for i, ch := range []string{"c:1", "c:2", "c:3"} {
		c.subscribe(2*i+1, ch, nil)
		c.send(fmt.Sprintf(`{"type":"unsubscribe","id":%d,"channel":%q}`, 2*i+2, ch))
		c.expect("unsubscribed")
	}
	c.send(`{"type":"subscribe","id":10,"channel":"c:4"}`)
	if m := c.expect("error"); m.Code != "limit" || *m.ID != 10 {
		t.Fatalf("4th distinct channel: %s, want error limit", m)
	}
	c.subscribe(11, "c:2", nil)
	c.alive(12)
}

// TestConnectionsPerSubject: one more connection than
// MaxConnectionsPerSubject for a subject gets error "limit" and 1008;
// other subjects are not affected, and a slot freed is usable again.
func TestConnectionsPerSubject(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.MaxConnectionsPerSubject = 2 })
	a := e.connect("17", "a")
	e.connect("17", "a")
	c := e.mustDial()
	c.send(`{"type":"hello","token":"` + e.token("17", "a") + `"}`)
	if m := c.expect("error"); m.Code != "limit" {
		t.Fatalf("3rd connection of subject 17: %s, want error limit", m)
	}
	c.expectClose(1008)
	e.connect("18", "a")
	_ = a.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := e.mustDial()
		c.send(`{"type":"hello","token":"` + e.token("17", "a") + `"}`)
		if m := c.next(); m.Type == "welcome" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subject 17 cannot connect after one of its connections closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMaxConnections: beyond MaxConnections the upgrade is refused with
// 503 and Retry-After.
func TestMaxConnections(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.MaxConnections = 2 })
	e.connect("1", "a")
	e.mustDial()
	_, resp, err := e.dial(nil)
	if err == nil {
		t.Fatal("3rd connection accepted, want 503")
	}
	if resp == nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("3rd connection: %v %+v, want 503 with Retry-After", err, resp)
	}
}

// TestMetricsOptIn: by default /metrics is not served where the hub is
// mounted; MetricsHandler serves the metrics wherever the app mounts it,
// and ServeMetrics puts them back at /metrics.
func TestMetricsOptIn(t *testing.T) {
	b := broker.NewMemory()
	withBroker(t, b)
	e := newEnvWith(t, hub.Config{Broker: b, Secret: testSecret, Logger: quietLogger()}, b)
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics without ServeMetrics: %d, want 404", resp.StatusCode)
	}
	srv := httptest.NewServer(e.hub.MetricsHandler())
	defer srv.Close()
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "telegraphy_hub_connections") {
		t.Errorf("MetricsHandler: %d %q", resp.StatusCode, body)
	}
}

// TestInvalidUTF8: a text frame that is not UTF-8 closes the connection
// with 1007 (RFC 6455 8.1), rather than being read with the bad bytes
// replaced.
func TestInvalidUTF8(t *testing.T) {
	e := newEnv(t)
	c := e.connect("1", "a")
	c.send("{\"type\":\"ping\",\"id\":1,\"x\":\"\xff\xfe\"}")
	if m := c.expect("error"); m.Code != "bad_request" {
		t.Fatalf("got %s, want error bad_request", m)
	}
	c.expectClose(1007)
}

// TestSharedReplayStoreByDefault: two hubs given Redis brokers on one
// Redis, with no ReplayStore configured, accept a token once between
// them.
func TestSharedReplayStoreByDefault(t *testing.T) {
	a, bus := newRedisEnv(t)
	other, err := redisbroker.New(redisbroker.Config{URL: "redis://" + bus.Client().(*redis.Client).Options().Addr + "/0", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	b := newEnvWith(t, hub.Config{Secret: testSecret, Broker: other, Logger: quietLogger()}, nil)
	acceptedOnce(t, a, b)
}

// acceptedOnce checks that a token welcomed by hub a is refused by hub b.
func acceptedOnce(t *testing.T, a, b *env) {
	t.Helper()
	tok := a.token("17", "x")
	c := a.mustDial()
	c.send(`{"type":"hello","token":"` + tok + `"}`)
	c.expect("welcome")
	again := b.mustDial()
	again.send(`{"type":"hello","token":"` + tok + `"}`)
	if m := again.expect("error"); m.Code != "unauthorized" {
		t.Fatalf("the token again, on the other hub: %s, want unauthorized", m)
	}
	again.expectClose(4001)
}

// TestPingFrameRate: WebSocket ping frames count toward the request rate:
// a client that floods them is closed with 1008.
func TestPingFrameRate(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.RequestRate, c.RequestBurst = 0.01, 5
	})
	c := e.connect("1", "a")
	for i := 0; i < 20; i++ {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(5*time.Second)); err != nil {
			break // the hub has closed
		}
	}
	c.expectClose(1008)
}

// TestRedisReconnectTail: an event published while the hub's Redis
// subscription is reconnecting, the last of its channel, still reaches
// the client: once the connection is back the hub checks its channels
// against their history, without waiting for a later publication to
// show the gap.
func TestRedisReconnectTail(t *testing.T) {
	e, bus := newRedisEnv(t)
	c := e.connect("u", "tail")
	sub := c.subscribe(1, "tail", nil)
	off := c.expectEvents("tail", sub.Offset, publishTo(t, bus, "tail", 1, 0))
	ctx := context.Background()
	if n, err := bus.Client().ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n == 0 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
	}
	c.expectEvents("tail", off, publishTo(t, bus, "tail", 1, 0))
}

// TestPingFrameRefusalsInARow: the connection is closed for refused ping
// frames only when more than RequestBurst are refused in a row, as for
// ping messages: a client whose pings go a little over the rate, so that
// accepted and refused ones alternate, stays connected.
func TestPingFrameRefusalsInARow(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.RequestRate, c.RequestBurst = 10, 10
	})
	c := e.connect("1", "a")
	// About 16 a second for 3.6 s: some 14 refused in all, never 11 in a
	// row (that would need the hub not to read for more than a second).
	for i := 0; i < 60; i++ {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatalf("ping frame %d: %v (closed by the hub)", i, err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	time.Sleep(time.Second) // the bucket fills again
	c.alive(1)
}

// TestVerifierSharedByTwoHubs: two hubs on one memory broker given one
// tokens.Verifier (Config.Verifier) accept a token once between them.
func TestVerifierSharedByTwoHubs(t *testing.T) {
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	bus := broker.NewMemory()
	withBroker(t, bus)
	a := newEnvWith(t, hub.Config{Verifier: v, Broker: bus, Logger: quietLogger()}, bus)
	b := newEnvWith(t, hub.Config{Verifier: v, Broker: bus, Logger: quietLogger()}, bus)
	acceptedOnce(t, a, b)
}
