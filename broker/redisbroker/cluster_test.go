package redisbroker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// startCluster starts a Redis Cluster of three primaries on free ports
// (each also needs its port + 10000 for the cluster bus) and returns their
// addresses. The nodes are killed when the test ends.
func startCluster(t *testing.T) []string {
	t.Helper()
	testenv.SkipIfShort(t, "needs a Redis cluster")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server not on PATH")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		testenv.Missing(t, "redis-cli not on PATH")
	}
	var addrs []string
	for len(addrs) < 3 {
		port := 20000 + rand.IntN(20000)
		if !portFree(port) || !portFree(port+10000) {
			continue
		}
		dir := t.TempDir()
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--cluster-enabled", "yes",
			"--cluster-config-file", dir+"/nodes.conf", "--save", "", "--appendonly", "no", "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	for _, a := range addrs {
		waitPort(t, a)
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		for _, a := range addrs {
			info, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", strings.Split(a, ":")[1], "cluster", "info").Output()
			if !strings.Contains(string(info), "cluster_state:ok") {
				return false
			}
		}
		return true
	}, "cluster_state:ok on every node")
	return addrs
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, addr+" to accept connections")
}

func newClusterBroker(t *testing.T, addrs []string) *Broker {
	t.Helper()
	return clientBroker(t, redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs}))
}

// clientBroker is a broker on the client c; both are closed when t ends.
func clientBroker(t *testing.T, c redis.UniversalClient) *Broker {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	return newBroker(t, "", Config{Client: c})
}

// TestCluster runs the broker on a three-node Redis Cluster: channels on
// different nodes, shared offsets seen by two hubs, history, duplicates,
// control messages and the used-token store.
func TestCluster(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	app := newClusterBroker(t, addrs)
	hubA := newClusterBroker(t, addrs)
	// The other hub is configured by URL, as "telegraphy hub" does.
	hubB := newBroker(t, "redis://"+addrs[0]+"?addr="+addrs[1]+"&addr="+addrs[2], Config{Cluster: true})
	if !hubB.cluster {
		t.Fatal("Config.Cluster did not make a cluster client")
	}

	// Channels whose slots are spread over the three nodes.
	cc := app.Client().(*redis.ClusterClient)
	byNode := map[string]string{}
	for i := 0; len(byNode) < 3 && i < 1000; i++ {
		ch := "shop.Order:" + strconv.Itoa(i)
		node, err := cc.MasterForKey(context.Background(), app.pubChannel(ch))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byNode[node.Options().Addr]; !ok {
			byNode[node.Options().Addr] = ch
		}
	}
	var channels []string
	for _, ch := range byNode {
		channels = append(channels, ch)
	}
	if len(channels) != 3 {
		t.Fatalf("channels on %d nodes", len(channels))
	}
	subA, subB := subscribe(t, hubA, channels...), subscribe(t, hubB, channels...)

	const n = 50
	for i := range n {
		publish(t, app, msg("e"+strconv.Itoa(i), channels...))
	}
	publish(t, app, msg("e0", channels...)) // a duplicate: skipped
	for _, s := range []broker.Subscription{subA, subB} {
		next := map[string]uint64{}
		epochs := map[string]string{}
		for range n * len(channels) {
			p := receive(t, s, 10*time.Second)
			next[p.Channel]++
			if p.Offset != next[p.Channel] || p.EventID != fmt.Sprintf("e%d", p.Offset-1) {
				t.Fatalf("%s: offset %d (%s), want %d", p.Channel, p.Offset, p.EventID, next[p.Channel])
			}
			if e, ok := epochs[p.Channel]; ok && e != p.Epoch {
				t.Fatalf("%s: epoch changed", p.Channel)
			}
			epochs[p.Channel] = p.Epoch
		}
	}
	expectNone(t, subA, 300*time.Millisecond)

	for _, ch := range channels {
		res := history(t, hubA, ch, n)
		part, err := hubB.History(context.Background(), ch, &broker.Position{Epoch: res.Position.Epoch, Offset: n - 3})
		if err != nil || !part.Recovered || len(part.Publications) != 3 || part.Publications[0].Offset != n-2 {
			t.Errorf("%s: history since %d: %+v, %v", ch, n-3, part, err)
		}
	}

	// Control messages (NoHistory) are sharded too.
	publish(t, app, broker.Message{Channels: channels[:1], Data: []byte(`{"revoke":"17"}`), NoHistory: true})
	for _, s := range []broker.Subscription{subA, subB} {
		if p := receive(t, s, 10*time.Second); p.Offset != 0 || string(p.Data) != `{"revoke":"17"}` {
			t.Errorf("control message: %+v", p)
		}
	}

	// Remove stops one channel only.
	if err := subA.Remove(context.Background(), channels[0]); err != nil {
		t.Fatal(err)
	}
	publish(t, app, msg("last", channels[0], channels[1]))
	if p := receive(t, subA, 10*time.Second); p.Channel != channels[1] {
		t.Errorf("after Remove: %+v", p)
	}
	expectNone(t, subA, 300*time.Millisecond)

	fresh, err := hubA.ReplayStore().Use(context.Background(), "jti-1", time.Now().Add(time.Minute))
	again, err2 := hubB.ReplayStore().Use(context.Background(), "jti-1", time.Now().Add(time.Minute))
	if !fresh || again || err != nil || err2 != nil {
		t.Errorf("replay store on a cluster: %v %v %v %v", fresh, again, err, err2)
	}
}

// TestClusterSlotMoved moves a watched channel's slot (and its keys) to
// another node while a hub is subscribed: the hub's subscription follows
// the slot, and publications after the move arrive, with offsets that
// continue from the history that moved along.
func TestClusterSlotMoved(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	app := newClusterBroker(t, addrs)
	hub := newClusterBroker(t, addrs)
	const ch = "shop.Order"
	sub := subscribe(t, hub, ch)
	publish(t, app, msg("before", ch))
	if p := receive(t, sub, 10*time.Second); p.Offset != 1 {
		t.Fatalf("before the move: %+v", p)
	}

	ctx := context.Background()
	cc := app.Client().(*redis.ClusterClient)
	key := app.metaKey(ch)
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	nodeOf := func(addr string) (*redis.Client, string) {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = c.Close() })
		id, err := c.ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return c, id
	}
	owner, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	src, srcID := nodeOf(owner.Options().Addr)
	var dst *redis.Client
	var dstID string
	for _, a := range addrs {
		if a != owner.Options().Addr {
			dst, dstID = nodeOf(a)
			break
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dst.Do(ctx, "cluster", "setslot", slot, "importing", srcID).Err())
	must(src.Do(ctx, "cluster", "setslot", slot, "migrating", dstID).Err())
	keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
	must(err)
	host, port, _ := net.SplitHostPort(dst.Options().Addr)
	for _, k := range keys {
		must(src.Migrate(ctx, host, port, k, 0, 5*time.Second).Err())
	}
	for _, a := range addrs {
		c, _ := nodeOf(a)
		must(c.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err())
	}

	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		publish(t, app, msg(fmt.Sprintf("after%d", i), ch))
		select {
		case p := <-sub.C():
			if p.Offset < 2 || !strings.HasPrefix(p.EventID, "after") {
				t.Fatalf("after the move: %+v", p)
			}
			res, err := hub.History(ctx, ch, &broker.Position{Epoch: p.Epoch, Offset: 1})
			if err != nil || !res.Recovered {
				t.Errorf("history across the move: %+v, %v", res, err)
			}
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			res, err := hub.History(ctx, ch, nil)
			t.Fatalf("no publication after the slot moved; position %+v, %v; stats %+v", res.Position, err, app.Stats())
		}
	}
}
