package redisbroker

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/brokertest"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// ownerClient returns a plain client on the cluster node that owns key.
func ownerClient(t *testing.T, cc *redis.ClusterClient, key string) *redis.Client {
	t.Helper()
	node, err := cc.MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: node.Options().Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// killAndWaitBack kills the pub/sub connections on the server c talks to and
// waits until the subscription s delivers again (publishing through app).
func killAndWaitBack(t *testing.T, c *redis.Client, app *Broker, s broker.Subscription, ch string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	publishUntilDelivered(t, app, s, ch, "the subscription did not come back")
}

// publishUntilDelivered publishes to ch through app every 200 ms until sub
// delivers a publication of ch, and fails the test with failure after 15 s.
func publishUntilDelivered(t *testing.T, app *Broker, sub broker.Subscription, ch, failure string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		publish(t, app, msg(ch+"-"+strconv.Itoa(i), ch))
		select {
		case p := <-sub.C():
			if p.Channel == ch {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
	}
}

// TestLostConnectionCountedSingle: on a single Redis, a pub/sub
// connection that was lost counts in Dropped once back
// (broker.Subscription.Dropped's contract), so that a hub sweeps its
// channels against their history.
func TestLostConnectionCountedSingle(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	app := newBroker(t, r.URL, Config{})
	hub := newBroker(t, r.URL, Config{})
	sub := subscribe(t, hub, "ch")
	publish(t, app, msg("1", "ch"))
	receive(t, sub, 5*time.Second)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port)})
	t.Cleanup(func() { _ = c.Close() })
	killAndWaitBack(t, c, app, sub, "ch")
	if d := sub.Dropped(); d == 0 {
		t.Fatalf("Dropped = 0 after the subscription's connection was lost and came back")
	}
}

// TestLostConnectionCountedCluster: the same on Redis Cluster, where each
// node's connection has its own reader (clusterSub.read).
func TestLostConnectionCountedCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	app := newClusterBroker(t, addrs)
	hub := newClusterBroker(t, addrs)
	sub := subscribe(t, hub, "ch")
	publish(t, app, msg("1", "ch"))
	receive(t, sub, 10*time.Second)
	c := ownerClient(t, hub.Client().(*redis.ClusterClient), hub.pubChannel("ch"))
	killAndWaitBack(t, c, app, sub, "ch")
	if d := sub.Dropped(); d == 0 {
		t.Fatalf("Dropped = 0 after the cluster subscription's connection was lost and came back")
	}
}

// blackHole wraps connections that can be made silent: once frozen, writes
// vanish and reads never return data (a peer gone without FIN or RST).
type blackHole struct {
	mu    sync.Mutex
	conns []*holeConn
}

type holeConn struct {
	net.Conn
	frozen atomic.Bool
}

func (c *holeConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if !c.frozen.Load() || err != nil {
			return n, err
		}
		// Frozen: drop what arrived, keep waiting (the read deadline
		// still applies).
	}
}

func (c *holeConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (h *blackHole) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := &holeConn{Conn: nc}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return c, nil
}

// freeze silences every connection dialed so far; later ones work.
func (h *blackHole) freeze() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.frozen.Store(true)
	}
}

// silentTest freezes the subscription's connection and waits for a
// publication through a fresh one.
func silentTest(t *testing.T, hub, app *Broker, hole *blackHole) {
	t.Helper()
	hub.idleCheck = 300 * time.Millisecond
	sub := subscribe(t, hub, "ch")
	publish(t, app, msg("1", "ch"))
	receive(t, sub, 10*time.Second)
	hole.freeze()
	publishUntilDelivered(t, app, sub, "ch", "the subscription did not replace its silent connection within 15 s (idleCheck 300 ms)")
}

// TestSilentConnectionSingle: on a single Redis a silent pub/sub
// connection is pinged and replaced.
func TestSilentConnectionSingle(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	hole := &blackHole{}
	hub := clientBroker(t, redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port), Dialer: hole.dial}))
	app := newBroker(t, r.URL, Config{})
	silentTest(t, hub, app, hole)
}

// TestSilentConnectionCluster: on Redis Cluster too, a node's pub/sub
// connection that goes silent is pinged and replaced (go-redis keeps a
// connection after a read timeout).
func TestSilentConnectionCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	hole := &blackHole{}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Dialer: hole.dial})
	hub := clientBroker(t, cc)
	app := newClusterBroker(t, addrs)
	silentTest(t, hub, app, hole)
}

// TestPresenceCluster runs the shared presence contract on a
// cluster broker (keys in one slot, TIME in the script).
func TestPresenceCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	b := newClusterBroker(t, addrs)
	ctx := context.Background()
	cc := b.Client().(*redis.ClusterClient)
	brokertest.Presence(t, b, func() int {
		n := 0
		for _, k := range b.presenceKeys("doc:1") {
			n += int(cc.Exists(ctx, k).Val())
		}
		return n
	})
	// A channel name with "}" keeps its three keys in one slot.
	ch := "doc:}x{"
	if _, err := b.UpdatePresence(ctx, ch, "A", []broker.PresenceMember{{Subject: "s\nt", Info: []byte(`{"a":1}`)}}, nil, brokertest.Long); err != nil {
		t.Fatal(err)
	}
	ms, err := b.Presence(ctx, ch, 10)
	if err != nil || len(ms) != 1 || ms[0].Subject != "s\nt" || string(ms[0].Info) != `{"a":1}` {
		t.Fatalf("members %+v, %v", ms, err)
	}
	if !strings.Contains(b.presenceKeys(ch)[0], "{#") {
		t.Fatalf("key %s", b.presenceKeys(ch)[0])
	}
}

// TestSilentConnectionClusterTwoSlots: a node's silent connection carrying
// channels of two slots is replaced by one that subscribes each (one
// SSUBSCRIBE of both would fail with CROSSSLOT), and both deliver again.
func TestSilentConnectionClusterTwoSlots(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	hole := &blackHole{}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Dialer: hole.dial})
	hub := clientBroker(t, cc)
	hub.idleCheck = 300 * time.Millisecond
	app := newClusterBroker(t, addrs)
	ctx := context.Background()
	// Two channels on one node, in two slots.
	var first, second string
	owner := map[string]string{}
	for i := 0; i < 200 && second == ""; i++ {
		ch := "x" + strconv.Itoa(i)
		node, err := cc.MasterForKey(ctx, hub.pubChannel(ch))
		if err != nil {
			t.Fatal(err)
		}
		addr := node.Options().Addr
		if f, ok := owner[addr]; ok {
			if keySlot(t, cc, hub.pubChannel(f)) != keySlot(t, cc, hub.pubChannel(ch)) {
				first, second = f, ch
			}
			continue
		}
		owner[addr] = ch
	}
	if second == "" {
		t.Fatal("no two channels of one node in two slots")
	}
	sub := subscribe(t, hub, first, second)
	publish(t, app, msg("0", first))
	receive(t, sub, 10*time.Second)
	hole.freeze()
	for _, ch := range []string{first, second} {
		publishUntilDelivered(t, app, sub, ch, ch+": no delivery within 15 s of its node's connection going silent (idleCheck 300 ms)")
	}
}

// keySlot is the cluster slot of key.
func keySlot(t *testing.T, cc *redis.ClusterClient, key string) int64 {
	t.Helper()
	n, err := cc.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
