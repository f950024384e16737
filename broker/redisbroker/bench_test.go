package redisbroker

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// benchData is an event of a typical size (about 300 bytes).
var benchData = []byte(`{"name":"shop.Order","meta":{"event_type":"update","verbose_name":"Order","timestamp":"2026-11-25T17:37:03.123456Z","id":"0193b8a2-5c1e-7c3a-9f1e-2b4d6e8fa001","pk":42,"changed":["status"]},"data":{"id":42,"status":"paid","total":"19.90","customer":"Ada Lovelace","note":"leave at the door"}}`)

// BenchmarkPublishThroughput writes b.N messages, each to a model and a
// record channel, through the Broker (script: offset, stream, dedupe,
// publish) and waits until Redis has them all. The baseline is the same
// number of bare PUBLISH commands, pipelined in batches of the same size,
// in the same run: the ratio is the price of history and offsets. The
// same messages then go to channels nobody watches, which keep no
// history (unwatched-msgs/s).
func BenchmarkPublishThroughput(b *testing.B) {
	url := testenv.StartRedis(b).URL
	opt, _ := redis.ParseURL(url)
	raw := redis.NewClient(opt)
	defer raw.Close()
	bk := newBroker(b, url, Config{QueueSize: 1 << 20})
	ctx := context.Background()
	msgs := make([]broker.Message, b.N)
	cold := make([]broker.Message, b.N)
	for i := range msgs {
		id := "e" + strconv.Itoa(i)
		msgs[i] = broker.Message{EventID: id, Channels: []string{"shop.Order", "shop.Order:" + strconv.Itoa(i%1000)}, Data: benchData}
		cold[i] = broker.Message{EventID: id, Channels: []string{"cold.Order", "cold.Order:" + strconv.Itoa(i%1000)}, Data: benchData}
	}
	// The shop channels are watched, as hubs' clients would: they keep
	// history. Nobody watches the cold ones.
	watch(b, bk, "shop.Order")
	for i := range min(b.N, 1000) {
		watch(b, bk, "shop.Order:"+strconv.Itoa(i))
	}
	b.ResetTimer()

	start := time.Now()
	for i := 0; i < len(msgs); i += 256 {
		pipe := raw.Pipeline()
		for _, m := range msgs[i:min(i+256, len(msgs))] {
			for _, ch := range m.Channels {
				pipe.Publish(ctx, "raw:"+ch, m.Data)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	rawTime := time.Since(start)

	// publishAll publishes msgs and waits until Redis has them: their two
	// channels each, after the published before.
	publishAll := func(msgs []broker.Message) time.Duration {
		start, want := time.Now(), bk.Stats().Published+uint64(2*len(msgs))
		for _, m := range msgs {
			if err := bk.Publish(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		for bk.Stats().Published < want {
			time.Sleep(100 * time.Microsecond)
		}
		return time.Since(start)
	}
	brokerTime := publishAll(msgs)
	coldTime := publishAll(cold)
	b.StopTimer()
	if st := bk.Stats(); st.Unwatched != uint64(2*b.N) || st.Duplicates != 0 {
		b.Fatalf("stats %+v, want %d unwatched", st, 2*b.N)
	}

	b.ReportMetric(float64(b.N)/brokerTime.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/coldTime.Seconds(), "unwatched-msgs/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw-msgs/s")
	b.ReportMetric(brokerTime.Seconds()/rawTime.Seconds(), "x-raw")
}

// BenchmarkFanout publishes b.N messages to one channel that four hub
// subscriptions (four Brokers, as four hubs) receive, and reports the
// deliveries per second out of Redis and the publish-to-receipt latency
// of the last message.
func BenchmarkFanout(b *testing.B) {
	url := testenv.StartRedis(b).URL
	app := newBroker(b, url, Config{QueueSize: 1 << 20})
	const hubs = 4
	subs := make([]broker.Subscription, hubs)
	for i := range subs {
		subs[i] = subscribe(b, newBroker(b, url, Config{SubscriberBuffer: 1 << 20}), "shop.Order")
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	done := make(chan time.Duration, hubs)
	for _, s := range subs {
		go func() {
			var last broker.Publication
			for range b.N {
				last = <-s.C()
			}
			done <- time.Since(last.Time)
		}()
	}
	for i := range b.N {
		if err := app.Publish(ctx, broker.Message{EventID: strconv.Itoa(i), Channels: []string{"shop.Order"}, Data: benchData}); err != nil {
			b.Fatal(err)
		}
	}
	var lat time.Duration
	for range hubs {
		lat = max(lat, <-done)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var dropped uint64
	for _, s := range subs {
		dropped += s.Dropped()
	}
	if dropped > 0 {
		b.Fatalf("%d publications dropped", dropped)
	}
	b.ReportMetric(float64(hubs*b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat.Microseconds()), "last-µs")
}

// BenchmarkLatency publishes at a steady 200 messages per second, each to
// a model and a record channel, and reports the publish-to-receipt
// latency at a hub's subscription (p50, p99), the in-process broker's in
// the same run as the baseline. b.N is the number of messages.
func BenchmarkLatency(b *testing.B) {
	url := testenv.StartRedis(b).URL
	app := newBroker(b, url, Config{})
	hub := newBroker(b, url, Config{})
	mem := broker.NewMemory()
	defer mem.Close(context.Background())
	measure := func(pub broker.Broker, sub broker.Subscription) []time.Duration {
		lat := make([]time.Duration, 0, b.N)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range b.N {
				p := <-sub.C()
				lat = append(lat, time.Since(p.Time))
			}
		}()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := range b.N {
			<-tick.C
			m := broker.Message{EventID: strconv.Itoa(i), Channels: []string{"shop.Order", "shop.Order:" + strconv.Itoa(i)}, Data: benchData}
			if err := pub.Publish(context.Background(), m); err != nil {
				b.Fatal(err)
			}
		}
		<-done
		slices.Sort(lat)
		return lat
	}
	memSub, _ := mem.Subscribe(context.Background())
	if err := memSub.Add(context.Background(), "shop.Order"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	redisLat := measure(app, subscribe(b, hub, "shop.Order"))
	memLat := measure(mem, memSub)
	b.StopTimer()
	q := func(l []time.Duration, f float64) float64 { return float64(l[int(f*float64(len(l)-1))].Microseconds()) }
	b.ReportMetric(q(redisLat, 0.5), "p50-µs")
	b.ReportMetric(q(redisLat, 0.99), "p99-µs")
	b.ReportMetric(q(memLat, 0.5), "memory-p50-µs")
	b.ReportMetric(q(memLat, 0.99), "memory-p99-µs")
	b.ReportMetric(0, "ns/op")
}

// baselineScript is the least a channel with offsets and a history costs
// Redis per publication, the shape of Centrifugo's stream history script:
// read the epoch (set it when missing), increment the offset, append to a
// stream capped at the history size with the offset as the entry id,
// renew two expiries and publish. No dedup by event id, no age trimming,
// no failover check: it is the yardstick, not a replacement.
//
// KEYS: meta, stream. ARGV: data, history size, TTL (s), candidate epoch,
// pub/sub channel.
var baselineScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'e', epoch)
end
local off = redis.call('HINCRBY', KEYS[1], 's', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], off, 'd', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], '__p1:' .. off .. ':' .. epoch .. '__' .. ARGV[1])
return {off, epoch}
`)

// redisCost is what a block of publications cost Redis: CPU seconds (user
// and system, from INFO cpu) and commands by name (from INFO
// commandstats), calls and microseconds.
type redisCost struct {
	cpu   float64
	calls map[string]int64
	usec  map[string]int64
}

func (c *redisCost) add(before, after redisCost) {
	if c.calls == nil {
		c.calls, c.usec = map[string]int64{}, map[string]int64{}
	}
	c.cpu += after.cpu - before.cpu
	for k, v := range after.calls {
		c.calls[k] += v - before.calls[k]
		c.usec[k] += after.usec[k] - before.usec[k]
	}
}

// commands counts the calls, less the INFO of each snapshot (blocks of
// them), and the calls of the script itself (EVALSHA): what the script
// ran inside.
func (c *redisCost) commands(blocks int) (inner int64) {
	for k, v := range c.calls {
		switch k {
		case "evalsha", "evalsha_ro":
		case "info":
			inner += v - int64(blocks)
		default:
			inner += v
		}
	}
	return inner
}

func readRedisCost(tb testing.TB, client *redis.Client) redisCost {
	tb.Helper()
	s, err := client.Info(context.Background(), "cpu", "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	c := redisCost{calls: map[string]int64{}, usec: map[string]int64{}}
	for _, line := range strings.Split(s, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "used_cpu_sys" || k == "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			c.cpu += f
		case strings.HasPrefix(k, "cmdstat_"):
			name := strings.TrimPrefix(k, "cmdstat_")
			for _, kv := range strings.Split(v, ",") {
				f, n, _ := strings.Cut(kv, "=")
				x, _ := strconv.ParseInt(n, 10, 64)
				switch f {
				case "calls":
					c.calls[name] = x
				case "usec":
					c.usec[name] = x
				}
			}
		}
	}
	return c
}

// BenchmarkRedisCost measures what one publication of the fan-out load
// costs Redis: a create, whose event goes to its model channel, watched
// by a hub, and to a new record channel, watched by nobody. Messages go
// one at a time, each delivered to the hub's subscription before the
// next is sent, as at a low rate. The baseline, in the same run and
// alternating with it in blocks of 100, is baselineScript on one watched
// channel (the anchor's one publish per event), delivered the same way.
// It reports Redis CPU µs per publication (INFO cpu) for both and their
// ratio, the commands run per publication, and the script's own time
// (INFO commandstats). b.N is the number of publications of each.
func BenchmarkRedisCost(b *testing.B) {
	url := testenv.StartRedis(b).URL
	opt, _ := redis.ParseURL(url)
	raw := redis.NewClient(opt)
	defer raw.Close()
	stats := redis.NewClient(opt)
	defer stats.Close()
	app := newBroker(b, url, Config{})
	hub := subscribe(b, newBroker(b, url, Config{}), "bench.Tick")
	watch(b, app, "bench.Tick")
	ctx := context.Background()
	basePS := raw.Subscribe(ctx, "base:pub")
	defer basePS.Close()
	if _, err := basePS.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	baseC := basePS.Channel()
	if err := baselineScript.Load(ctx, raw).Err(); err != nil {
		b.Fatal(err)
	}
	const block = 100
	var ours, base redisCost
	blocks := 0
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		n := min(block, b.N-done)
		blocks++
		before := readRedisCost(b, stats)
		for i := done; i < done+n; i++ {
			m := broker.Message{EventID: "0193b8a2-5c1e-7c3a-9f1e-" + strconv.Itoa(1e11+i),
				Channels: []string{"bench.Tick", "bench.Tick:" + strconv.Itoa(i+1)}, Data: benchData}
			if err := app.Publish(ctx, m); err != nil {
				b.Fatal(err)
			}
			if p := <-hub.C(); p.Offset != uint64(i+1) {
				b.Fatalf("publication at offset %d, want %d", p.Offset, i+1)
			}
		}
		mid := readRedisCost(b, stats)
		for range n {
			err := baselineScript.EvalSha(ctx, raw, []string{"base:meta", "base:stream"},
				benchData, 1000, 600, "e1", "base:pub").Err()
			if err != nil {
				b.Fatal(err)
			}
			<-baseC
		}
		after := readRedisCost(b, stats)
		ours.add(before, mid)
		base.add(mid, after)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(ours.cpu/n*1e6, "redis-µs/pub")
	b.ReportMetric(base.cpu/n*1e6, "base-redis-µs/pub")
	b.ReportMetric(ours.cpu/base.cpu, "x-base")
	b.ReportMetric(float64(ours.commands(blocks))/n, "cmds/pub")
	b.ReportMetric(float64(base.commands(blocks))/n, "base-cmds/pub")
	b.ReportMetric(float64(ours.usec["evalsha"])/n, "script-µs/pub")
	b.ReportMetric(float64(base.usec["evalsha"])/n, "base-script-µs/pub")
	b.ReportMetric(0, "ns/op")
	if testing.Verbose() {
		for k, v := range ours.calls {
			b.Logf("ours %-20s %6.3f calls/pub %7.2f µs/pub", k, float64(v)/n, float64(ours.usec[k])/n)
		}
		for k, v := range base.calls {
			b.Logf("base %-20s %6.3f calls/pub %7.2f µs/pub", k, float64(v)/n, float64(base.usec[k])/n)
		}
	}
}
