package redisbroker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestFailoverStartsNewEpoch: a replica promoted after it missed the last
// publications would hand their offsets out again, and a client that saw
// the lost ones would skip the new ones as already seen. The broker starts
// a new epoch on the promoted replica instead, so such a client is told
// recovered=false.
func TestFailoverStartsNewEpoch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := testenv.StartRedis(t)
	replica := testenv.StartRedis(t)
	addr := func(r *testenv.Redis) string { return "127.0.0.1:" + strconv.Itoa(r.Port) }
	link := startProxy(t, addr(primary))  // the replica's replication link
	front := startProxy(t, addr(primary)) // what the brokers dial

	rc := redis.NewClient(&redis.Options{Addr: addr(replica)})
	defer rc.Close()
	host, port, _ := strings.Cut(link.ln.Addr().String(), ":")
	if err := rc.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replica to sync", func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})

	url := "redis://" + front.ln.Addr().String() + "/0"
	app := newBroker(t, url, Config{MaxRetryDelay: 200 * time.Millisecond})
	hub := newBroker(t, url, Config{})
	sub := subscribe(t, hub, "ch")
	for i := 1; i <= 3; i++ {
		publish(t, app, msg("replicated"+strconv.Itoa(i), "ch"))
		if p := receive(t, sub, 5*time.Second); p.Offset != uint64(i) {
			t.Fatalf("offset %d, want %d", p.Offset, i)
		}
	}
	waitFor(t, "the replica to hold offset 3", func() bool {
		o, err := rc.HGet(ctx, app.metaKey("ch"), "o").Result()
		return err == nil && o == "3"
	})
	// The primary's note that it is the channel's writer (field s) is
	// its own: a replica that kept it would skip the check below.
	pc := redis.NewClient(&redis.Options{Addr: addr(primary)})
	defer pc.Close()
	if ok, err := pc.HExists(ctx, app.metaKey("ch"), "s").Result(); err != nil || !ok {
		t.Fatalf("primary: meta field s present = %v, %v; want present", ok, err)
	}
	if ok, err := rc.HExists(ctx, app.metaKey("ch"), "s").Result(); err != nil || ok {
		t.Fatalf("replica: meta field s present = %v, %v; want absent", ok, err)
	}

	// The replica stops receiving; the primary hands out offsets 4 and 5,
	// which a client sees, then fails.
	link.freeze()
	var seen broker.Position
	for i := 4; i <= 5; i++ {
		publish(t, app, msg("lost"+strconv.Itoa(i), "ch"))
		p := receive(t, sub, 5*time.Second)
		if p.Offset != uint64(i) {
			t.Fatalf("offset %d, want %d", p.Offset, i)
		}
		seen = broker.Position{Epoch: p.Epoch, Offset: p.Offset}
	}
	primary.Stop()
	if err := rc.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	front.retarget(addr(replica))

	// Asked before anything is published there, the promoted replica
	// answers a new epoch too, so the position a hub hands out is good.
	var pos broker.HistoryResult
	waitFor(t, "history from the promoted replica", func() bool {
		var err error
		pos, err = hub.History(ctx, "ch", nil)
		return err == nil
	})
	if pos.Position.Epoch == seen.Epoch {
		t.Fatalf("history after the failover: %+v, in the epoch of the lost offsets", pos.Position)
	}

	// The first publication on the promoted replica comes with a new epoch.
	deadline := time.Now().Add(15 * time.Second)
	var after broker.Publication
	for i := 0; after.EventID == ""; i++ {
		publish(t, app, msg("after"+strconv.Itoa(i), "ch"))
		select {
		case after = <-sub.C():
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no live publication after the failover")
		}
	}
	if after.Epoch == seen.Epoch {
		t.Fatalf("after the failover: epoch %q offset %d, the epoch of the lost offsets 4 and 5", after.Epoch, after.Offset)
	}
	res, err := hub.History(ctx, "ch", &seen)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovered || res.Position.Epoch != after.Epoch {
		t.Errorf("history since the lost offset 5: recovered=%v at %+v, want recovered=false in epoch %q", res.Recovered, res.Position, after.Epoch)
	}
}

// TestEpochKeptWithoutFailover: a channel whose meta hash names no
// primary (written before it did) or a primary that is not the running
// server's former one (the server restarted from disk, which takes a new
// replication id) keeps its epoch, and gets the running server's id.
func TestEpochKeptWithoutFailover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testenv.StartRedis(t)
	b := newBroker(t, r.URL, Config{})
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port)})
	defer rc.Close()
	info, err := rc.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(info, "master_replid:")
	running, _, _ := strings.Cut(rest, "\r\n")

	watch(t, b, "ch")
	publish(t, b, msg("1", "ch"))
	epoch := history(t, b, "ch", 1).Position.Epoch
	for i, alter := range []func() error{
		func() error { return rc.HDel(ctx, b.metaKey("ch"), "r").Err() },
		func() error { return rc.HSet(ctx, b.metaKey("ch"), "r", strings.Repeat("f", 40)).Err() },
	} {
		if err := alter(); err != nil {
			t.Fatal(err)
		}
		publish(t, b, msg(strconv.Itoa(i+2), "ch"))
		if got := history(t, b, "ch", uint64(i+2)).Position.Epoch; got != epoch {
			t.Errorf("case %d: epoch %q became %q", i, epoch, got)
		}
		if rid, err := rc.HGet(ctx, b.metaKey("ch"), "r").Result(); err != nil || rid != running {
			t.Errorf("case %d: meta field r = %q, %v; want the running server's id %q", i, rid, err, running)
		}
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, cond, what)
}
