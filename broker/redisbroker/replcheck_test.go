package redisbroker

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestReplicationCheckCached: the publish and history scripts ask INFO
// replication for a channel at most about once a second, not once a
// call: 200 publications and 200 history reads in a row on one channel
// cost far fewer INFO calls, and every publication still gets its
// offset.
func TestReplicationCheckCached(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	b := newBroker(t, r.URL, Config{})
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port)})
	defer rc.Close()

	watch(t, b, "ch")
	before := infoCalls(t, rc)
	const n = 200
	for i := range n {
		publish(t, b, msg(strconv.Itoa(i), "ch"))
	}
	history(t, b, "ch", n) // waits until all are in Redis
	for range n {
		if _, err := b.History(context.Background(), "ch", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := infoCalls(t, rc) - before; got > n/4 {
		t.Errorf("%d INFO calls for %d publications and %d history reads, want at most %d", got, n, n, n/4)
	} else {
		t.Logf("%d INFO calls for %d publications and %d history reads", got, n, n)
	}
}

// infoCalls returns how many INFO commands the server has run.
func infoCalls(t *testing.T, rc *redis.Client) int {
	t.Helper()
	stats, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(stats, "cmdstat_info:calls=")
	if !ok {
		return 0
	}
	num, _, _ := strings.Cut(rest, ",")
	v, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("commandstats: %q", num)
	}
	return v
}
