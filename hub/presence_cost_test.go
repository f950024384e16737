package hub_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
)

// TestPresenceRedisCost measures what presence costs Redis: the commands
// a join and a leave add (INFO commandstats, against the same
// subscribe/close on a channel without presence), and the bytes a member
// takes in the channel's keys (MEMORY USAGE). docs/scaling.md quotes the
// figures.
func TestPresenceRedisCost(t *testing.T) {
	const n = 200
	e, bus := newRedisEnvWith(t, redisbroker.Config{}, func(c *hub.Config, _ *broker.MemoryConfig) {
		c.Presence = []string{"doc:*"}
		c.PresenceTTL, c.PresenceHeartbeat = time.Hour, 30*time.Minute // no heartbeat in the counts
		c.MaxConnectionsPerSubject = n
		c.PresenceLeaveDelay = hub.MinPresenceLeaveDelay
	})
	rc := bus.Client()
	ctx := context.Background()
	calls := func() map[string]int64 {
		out := map[string]int64{}
		info, err := rc.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			v, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			out[strings.TrimPrefix(name, "cmdstat_")] = v
		}
		return out
	}
	// run has n subjects subscribe to channel, then close, and returns the
	// commands Redis ran meanwhile.
	run := func(channel string, keep bool) (map[string]int64, []*client) {
		cs := make([]*client, n)
		for i := range cs {
			cs[i] = e.connectInfo("user-"+strconv.Itoa(i), `{"name":"Ada Lovela"}`, "doc:*", "other:*")
		}
		if err := rc.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			c.subscribe(1, channel, nil)
			c.alive(2 + i) // the join is done
		}
		if keep {
			return calls(), cs
		}
		for _, c := range cs {
			_ = c.ws.Close()
		}
		if got := e.waitMetric("telegraphy_hub_subscriptions", 0); got != 0 {
			t.Fatalf("subscriptions = %v", got)
		}
		if got := e.waitMetric("telegraphy_hub_presence_members", 0); got != 0 {
			t.Fatalf("presence_members = %v (leaves wait PresenceLeaveDelay)", got)
		}
		time.Sleep(100 * time.Millisecond) // the publisher's last batch
		return calls(), nil
	}
	base, _ := run("other:1", false)
	with, _ := run("doc:1", false)
	var diff []string
	extra := int64(0)
	for name, v := range with {
		if d := v - base[name]; d != 0 {
			diff = append(diff, fmt.Sprintf("%s %+d", name, d))
			extra += d
		}
	}
	t.Logf("presence: %.2f extra Redis commands per member joining and leaving (%d members): %s", float64(extra)/n, n, strings.Join(diff, ", "))

	_, cs := run("doc:2", true)
	var bytes int64
	for _, k := range []string{"pz", "pi", "pn"} {
		v, err := rc.MemoryUsage(ctx, "telegraphy:{doc:2}:"+k).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		bytes += v
	}
	t.Logf("presence: %d bytes of Redis keys per member (%d members on one channel, 20-byte info)", bytes/n, n)
	for _, c := range cs {
		_ = c.ws.Close()
	}
}
