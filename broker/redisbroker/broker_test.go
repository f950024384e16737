package redisbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// errorLog collects what a Broker reports through ErrorHandler.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) handle(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errorLog) count(target error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, err := range l.errs {
		if errors.Is(err, target) {
			n++
		}
	}
	return n
}

func newBroker(t testing.TB, url string, cfg Config) *Broker {
	t.Helper()
	cfg.URL = url
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = func(err error) { t.Logf("broker error: %v", err) }
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func subscribe(t testing.TB, b *Broker, channels ...string) broker.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.Subscribe(ctx)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if len(channels) > 0 {
		if err := s.Add(ctx, channels...); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	return s
}

func publish(t testing.TB, b broker.Broker, msgs ...broker.Message) {
	t.Helper()
	if err := b.Publish(context.Background(), msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func msg(id string, channels ...string) broker.Message {
	return broker.Message{EventID: id, Channels: channels, Data: []byte(`{"id":"` + id + `"}`)}
}

func receive(t testing.TB, s broker.Subscription, within time.Duration) broker.Publication {
	t.Helper()
	select {
	case p, ok := <-s.C():
		if !ok {
			t.Fatal("subscription closed")
		}
		return p
	case <-time.After(within):
		t.Fatalf("no publication within %v", within)
	}
	return broker.Publication{}
}

func expectNone(t testing.TB, s broker.Subscription, within time.Duration) {
	t.Helper()
	select {
	case p := <-s.C():
		t.Fatalf("unexpected publication on %q: %s", p.Channel, p.Data)
	case <-time.After(within):
	}
}

// history waits until the channel holds want publications (the publisher
// is asynchronous) and returns its history since the epoch's start.
func history(t testing.TB, b broker.Broker, ch string, want uint64) broker.HistoryResult {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := b.History(context.Background(), ch, nil)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		if res.Position.Offset >= want || time.Now().After(deadline) {
			if res.Position.Offset != want {
				t.Fatalf("channel %q at offset %d, want %d", ch, res.Position.Offset, want)
			}
			res, err = b.History(context.Background(), ch, &broker.Position{Epoch: res.Position.Epoch})
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			return res
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watch asks for the channels' positions, as a hub does when a client
// subscribes: from then on they keep history, even with no subscriber.
func watch(t testing.TB, b broker.Broker, channels ...string) {
	t.Helper()
	for _, ch := range channels {
		if _, err := b.History(context.Background(), ch, nil); err != nil {
			t.Fatalf("History: %v", err)
		}
	}
}

// startRedisWithArgs starts a redis-server with extra arguments, for the
// cases testenv.StartRedis does not cover (a password).
func startRedisWithArgs(t *testing.T, args ...string) int {
	t.Helper()
	testenv.SkipIfShort(t, "needs redis-server")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server not on PATH")
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testenv.WaitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "redis-server on port "+strconv.Itoa(port)+" to accept connections")
	return port
}

// TestNewRefusesNegativeValues: a negative value is an error naming the
// field, found before New connects; a negative HistorySize means none.
func TestNewRefusesNegativeValues(t *testing.T) {
	for _, c := range []struct {
		field string
		cfg   Config
	}{
		{"QueueSize", Config{QueueSize: -1}},
		{"BatchWait", Config{BatchWait: -time.Millisecond}},
		{"SubscriberBuffer", Config{SubscriberBuffer: -5}},
		{"MaxRetryDelay", Config{MaxRetryDelay: -time.Second}},
	} {
		c.cfg.URL = "redis://127.0.0.1:1/0"
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), "Config."+c.field+" is negative") {
			t.Errorf("%s negative: New = %v, want an error naming the field", c.field, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	port := startRedisWithArgs(t, "--requirepass", "s3cret-pass")
	closed := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	tests := []struct {
		name        string
		url         string
		unavailable bool     // wraps ErrUnavailable
		want        []string // substrings of the message
	}{
		{"no url", "", false, []string{"redisbroker:", "URL"}},
		{"bad scheme", "http://127.0.0.1:6379", false, []string{"redisbroker: bad Redis URL", "scheme"}},
		{"bad port", "redis://127.0.0.1:notaport/0", false, []string{"redisbroker: bad Redis URL"}},
		{"unreachable", "redis://127.0.0.1:" + strconv.Itoa(closed) + "/0", true, []string{"redisbroker:", "cannot reach", "connection refused"}},
		{"wrong password", "redis://:nope@" + addr + "/0", true, []string{"redisbroker:", "refused the credentials", "WRONGPASS"}},
		{"no password", "redis://" + addr + "/0", true, []string{"redisbroker:", "refused the credentials", "NOAUTH"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Config{URL: tt.url})
			if err == nil {
				_ = b.Close(context.Background())
				t.Fatal("New succeeded")
			}
			if errors.Is(err, ErrUnavailable) != tt.unavailable {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v: %v", !tt.unavailable, tt.unavailable, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "nope") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	b := newBroker(t, "redis://:s3cret-pass@"+addr+"/0", Config{})
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("right password: %v", err)
	}
}

func TestPublishSubscribe(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	app := newBroker(t, url, Config{})
	hub := newBroker(t, url, Config{})
	sub := subscribe(t, hub, "shop.Order", "shop.Order:1")

	at := time.Date(2026, 11, 25, 17, 37, 3, 123456789, time.UTC)
	m := msg("e1", "shop.Order", "shop.Order:1", "user:17")
	m.Time = at
	publish(t, app, m)
	got := map[string]broker.Publication{}
	for range 2 {
		p := receive(t, sub, 5*time.Second)
		got[p.Channel] = p
	}
	for _, ch := range []string{"shop.Order", "shop.Order:1"} {
		p, ok := got[ch]
		if !ok {
			t.Fatalf("nothing on %q", ch)
		}
		if p.Offset != 1 || p.Epoch == "" || p.EventID != "e1" || !bytes.Equal(p.Data, m.Data) || !p.Time.Equal(at) {
			t.Errorf("%q: got %+v", ch, p)
		}
	}
	// user:17 was not added: this hub must not receive it.
	expectNone(t, sub, 200*time.Millisecond)

	// A control message: live only, no offset, no history.
	publish(t, app, broker.Message{EventID: "c1", Channels: []string{"shop.Order"}, Data: []byte("revoke"), NoHistory: true})
	p := receive(t, sub, 5*time.Second)
	if p.Offset != 0 || p.Epoch != "" || string(p.Data) != "revoke" || p.EventID != "c1" {
		t.Errorf("NoHistory publication: %+v", p)
	}
	if res := history(t, hub, "shop.Order", 1); len(res.Publications) != 1 {
		t.Errorf("history holds %d publications, want 1", len(res.Publications))
	}

	// Remove stops delivery of that channel only.
	if err := sub.Remove(context.Background(), "shop.Order"); err != nil {
		t.Fatal(err)
	}
	publish(t, app, msg("e2", "shop.Order", "shop.Order:1"))
	if p := receive(t, sub, 5*time.Second); p.Channel != "shop.Order:1" || p.Offset != 2 {
		t.Errorf("after Remove: %+v", p)
	}
	expectNone(t, sub, 200*time.Millisecond)
}

// TestPublishAllOrNothing: a Publish call whose messages do not all fit
// the queue queues none of them (so that a caller retrying it publishes
// no message twice and none after a later one), and says so.
func TestPublishAllOrNothing(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	var log errorLog
	app := newBroker(t, url, Config{QueueSize: 3, ErrorHandler: log.handle})
	hub := newBroker(t, url, Config{})
	sub := subscribe(t, hub, "c")
	if app.QueueCapacity() != 3 || !app.KeepsHistory() {
		t.Fatalf("QueueCapacity %d, KeepsHistory %v", app.QueueCapacity(), app.KeepsHistory())
	}
	err := app.Publish(context.Background(), msg("a1", "c"), msg("a2", "c"), msg("a3", "c"), msg("a4", "c"))
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("four messages into a queue of three: %v, want ErrQueueFull", err)
	}
	if n := log.count(ErrQueueFull); n != 4 {
		t.Errorf("%d messages reported dropped, want 4", n)
	}
	publish(t, app, msg("b1", "c"))
	if p := receive(t, sub, 5*time.Second); p.EventID != "b1" || p.Offset != 1 {
		t.Fatalf("first publication %+v, want b1 at offset 1 (none of the refused call)", p)
	}
	expectNone(t, sub, 200*time.Millisecond)
	if none := newBroker(t, url, Config{HistorySize: -1}); none.KeepsHistory() {
		t.Error("KeepsHistory with HistorySize -1")
	}
}

// TestOffsetsShared: two publishers and two hubs on one Redis; every hub
// sees the same epoch and the same contiguous offsets, in order.
func TestOffsetsShared(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	app1, app2 := newBroker(t, url, Config{}), newBroker(t, url, Config{})
	hubA, hubB := newBroker(t, url, Config{}), newBroker(t, url, Config{})
	subA, subB := subscribe(t, hubA, "c"), subscribe(t, hubB, "c")

	const n = 200
	var wg sync.WaitGroup
	for i, app := range []*Broker{app1, app2} {
		wg.Go(func() {
			for j := range n {
				publish(t, app, msg(fmt.Sprintf("app%d-%d", i, j), "c"))
			}
		})
	}
	wg.Wait()
	var seen [2][]broker.Publication
	for i, s := range []broker.Subscription{subA, subB} {
		for range 2 * n {
			seen[i] = append(seen[i], receive(t, s, 10*time.Second))
		}
	}
	last := map[string]int{} // per publisher, its messages stay in order
	for k := range 2 * n {
		a, b := seen[0][k], seen[1][k]
		if a.Offset != uint64(k+1) || a.Epoch != seen[0][0].Epoch {
			t.Fatalf("hub A publication %d: epoch %q offset %d", k, a.Epoch, a.Offset)
		}
		if a.Offset != b.Offset || a.Epoch != b.Epoch || a.EventID != b.EventID {
			t.Fatalf("hubs disagree at %d: A %s/%d %s, B %s/%d %s", k, a.Epoch, a.Offset, a.EventID, b.Epoch, b.Offset, b.EventID)
		}
		var app, j int
		fmt.Sscanf(a.EventID, "app%d-%d", &app, &j)
		if prev, ok := last[fmt.Sprint(app)]; ok && j != prev+1 {
			t.Fatalf("publisher %d out of order: %d after %d", app, j, prev)
		}
		last[fmt.Sprint(app)] = j
	}
}

// TestHistoryLikeMemory runs the same publications and History questions
// against broker.Memory and the Redis broker and expects the same answers.
func TestHistoryLikeMemory(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	const size = 5
	mem := broker.NewMemory(broker.MemoryConfig{HistorySize: size})
	rb := newBroker(t, url, Config{HistorySize: size})
	// Both keep a channel's history from the first time it is watched.
	watch(t, mem, "ch")
	watch(t, rb, "ch")
	for i := 1; i <= 8; i++ {
		m := msg("e"+strconv.Itoa(i), "ch")
		publish(t, mem, m)
		publish(t, rb, m)
	}
	history(t, rb, "ch", 8)

	tests := []struct {
		name  string
		since func(epoch string) *broker.Position
	}{
		{"no since", func(string) *broker.Position { return nil }},
		{"at head", func(e string) *broker.Position { return &broker.Position{Epoch: e, Offset: 8} }},
		{"one behind", func(e string) *broker.Position { return &broker.Position{Epoch: e, Offset: 7} }},
		{"oldest kept", func(e string) *broker.Position { return &broker.Position{Epoch: e, Offset: 3} }},
		{"beyond history", func(e string) *broker.Position { return &broker.Position{Epoch: e, Offset: 2} }},
		{"from start", func(e string) *broker.Position { return &broker.Position{Epoch: e, Offset: 0} }},
		{"future offset", func(e string) *broker.Position { return &broker.Position{Epoch: e, Offset: 9} }},
		{"other epoch", func(string) *broker.Position { return &broker.Position{Epoch: "gone", Offset: 7} }},
	}
	offsets := func(ps []broker.Publication) (s []string) {
		for _, p := range ps {
			s = append(s, fmt.Sprintf("%d:%s", p.Offset, p.EventID))
		}
		return s
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			mpos, _ := mem.History(ctx, "ch", nil)
			rpos, _ := rb.History(ctx, "ch", nil)
			want, err := mem.History(ctx, "ch", tt.since(mpos.Position.Epoch))
			if err != nil {
				t.Fatal(err)
			}
			got, err := rb.History(ctx, "ch", tt.since(rpos.Position.Epoch))
			if err != nil {
				t.Fatal(err)
			}
			if got.Recovered != want.Recovered || got.Position.Offset != want.Position.Offset ||
				fmt.Sprint(offsets(got.Publications)) != fmt.Sprint(offsets(want.Publications)) {
				t.Errorf("redis: recovered=%v offset=%d %v\nmemory: recovered=%v offset=%d %v",
					got.Recovered, got.Position.Offset, offsets(got.Publications),
					want.Recovered, want.Position.Offset, offsets(want.Publications))
			}
			for _, p := range got.Publications {
				if p.Channel != "ch" || p.Epoch != rpos.Position.Epoch || string(p.Data) != `{"id":"`+p.EventID+`"}` {
					t.Errorf("publication %+v", p)
				}
			}
		})
	}

	// An unknown channel gets an epoch that stays: asking again, or the
	// first publication, keeps it.
	ctx := context.Background()
	first, err := rb.History(ctx, "fresh", nil)
	if err != nil || first.Position.Epoch == "" || first.Position.Offset != 0 || !first.Recovered {
		t.Fatalf("fresh channel: %+v, %v", first, err)
	}
	publish(t, rb, msg("f1", "fresh"))
	res := history(t, rb, "fresh", 1)
	again, _ := rb.History(ctx, "fresh", &first.Position)
	if res.Position.Epoch != first.Position.Epoch || !again.Recovered || len(again.Publications) != 1 {
		t.Errorf("fresh channel after a publication: %+v / %+v (first epoch %q)", res.Position, again, first.Position.Epoch)
	}
}

func TestHistoryTTL(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	b := newBroker(t, url, Config{HistoryTTL: time.Second})
	watch(t, b, "ch")
	publish(t, b, msg("e1", "ch"))
	res := history(t, b, "ch", 1)
	// Let time pass on purpose: the channel's keys expire HistoryTTL (1 s)
	// after its last publication; polling History instead could keep them.
	time.Sleep(2 * time.Second)
	after, err := b.History(context.Background(), "ch", &res.Position)
	if err != nil {
		t.Fatal(err)
	}
	if after.Recovered || after.Position.Epoch == res.Position.Epoch || after.Position.Offset != 0 {
		t.Errorf("after the TTL: %+v, before: %+v", after, res.Position)
	}
}

// TestHistoryAge: a publication older than HistoryTTL is never served,
// even while the stream still holds it (the script trims by age only now
// and then), and the channel's keys all expire together, at least
// HistoryTTL after its last publication.
func TestHistoryAge(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	const ttl = 2 * time.Second
	b := newBroker(t, url, Config{HistoryTTL: ttl})
	ctx := context.Background()
	start, err := b.History(ctx, "ch", nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, msg("e1", "ch"))
	history(t, b, "ch", 1)
	// Let time pass on purpose: e2 is published a second after e1, so
	// that the next sleep ages e1 past the TTL but not e2.
	time.Sleep(time.Second)
	publish(t, b, msg("e2", "ch"))
	history(t, b, "ch", 2)
	time.Sleep(1100 * time.Millisecond) // e1 is now older than the TTL
	publish(t, b, msg("e3", "ch"))
	history(t, b, "ch", 3)
	if res, err := b.History(ctx, "ch", &start.Position); err != nil || res.Recovered {
		t.Errorf("since offset 0: %+v, %v; want recovered=false, e1 is past the TTL", res, err)
	}
	res, err := b.History(ctx, "ch", &broker.Position{Epoch: start.Position.Epoch, Offset: 1})
	if err != nil || !res.Recovered || len(res.Publications) != 2 || res.Publications[0].EventID != "e2" {
		t.Errorf("since offset 1: %+v, %v; want e2 and e3", res, err)
	}
	opt, _ := redis.ParseURL(url)
	raw := redis.NewClient(opt)
	defer raw.Close()
	for _, key := range []string{b.metaKey("ch"), b.streamKey("ch"), b.idsKey("ch")} {
		left, err := raw.PTTL(ctx, key).Result()
		if err != nil || left < ttl/2 || left > ttl+ttl/4 {
			t.Errorf("%s expires in %v (%v), want between %v and %v", key, left, err, ttl/2, ttl+ttl/4)
		}
	}
}

// TestDuplicateOutsideHistory: an event id that has left the channel's
// history is published again, as broker.Memory does; one inside it is not.
func TestDuplicateOutsideHistory(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	const size = 3
	mem := broker.NewMemory(broker.MemoryConfig{HistorySize: size})
	rb := newBroker(t, url, Config{HistorySize: size})
	ctx := context.Background()
	watch(t, mem, "ch")
	watch(t, rb, "ch")
	for _, id := range []string{"a", "b", "c", "b", "d", "a", "a"} {
		publish(t, mem, msg(id, "ch"))
		publish(t, rb, msg(id, "ch"))
	}
	// a, b, c, d (b is a duplicate), then a again (it left the history
	// when d came), then a duplicate of that a.
	history(t, rb, "ch", 5)
	want, _ := mem.History(ctx, "ch", nil)
	if want.Position.Offset != 5 {
		t.Fatalf("memory broker at offset %d, want 5", want.Position.Offset)
	}
	got, err := rb.History(ctx, "ch", &broker.Position{Epoch: history(t, rb, "ch", 5).Position.Epoch, Offset: 2})
	if err != nil || !got.Recovered || len(got.Publications) != 3 ||
		got.Publications[0].EventID != "c" || got.Publications[1].EventID != "d" || got.Publications[2].EventID != "a" {
		t.Errorf("history after offset 2: %+v, %v; want c, d, a", got, err)
	}
}

func TestDuplicateEventIDDropped(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	app := newBroker(t, url, Config{})
	sub := subscribe(t, newBroker(t, url, Config{}), "ch")
	publish(t, app, msg("same", "ch"), msg("same", "ch"), msg("other", "ch"))
	if p := receive(t, sub, 5*time.Second); p.EventID != "same" || p.Offset != 1 {
		t.Errorf("first: %+v", p)
	}
	if p := receive(t, sub, 5*time.Second); p.EventID != "other" || p.Offset != 2 {
		t.Errorf("second: %+v", p)
	}
	expectNone(t, sub, 200*time.Millisecond)
	if st := app.Stats(); st.Duplicates != 1 || st.Published != 2 {
		t.Errorf("stats %+v", st)
	}
	// Messages without an event id are never taken for duplicates.
	publish(t, app, broker.Message{Channels: []string{"ch"}, Data: []byte("x")}, broker.Message{Channels: []string{"ch"}, Data: []byte("x")})
	history(t, app, "ch", 4)
}

func TestSubscriberBufferDrops(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	app := newBroker(t, url, Config{})
	sub := subscribe(t, newBroker(t, url, Config{SubscriberBuffer: 2}), "ch")
	for i := range 10 {
		publish(t, app, msg(strconv.Itoa(i), "ch"))
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return sub.Dropped() >= 8 }, "8 publications dropped")
	if d := sub.Dropped(); d != 8 {
		t.Fatalf("Dropped = %d, want 8", d)
	}
	for want := uint64(1); want <= 2; want++ {
		if p := receive(t, sub, time.Second); p.Offset != want {
			t.Errorf("buffered offset %d, want %d", p.Offset, want)
		}
	}
	// The gap is recoverable from history.
	res, err := app.History(context.Background(), "ch", &broker.Position{Epoch: history(t, app, "ch", 10).Position.Epoch, Offset: 2})
	if err != nil || !res.Recovered || len(res.Publications) != 8 {
		t.Errorf("recover the gap: %d publications, recovered=%v, %v", len(res.Publications), res.Recovered, err)
	}
}

// TestRedisRestart kills Redis mid-stream and starts it again on the same
// port, without persistence: the publisher and the subscription reconnect
// by themselves, events published after the restart arrive under a new
// epoch, and the old position is answered recovered=false.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	var errs errorLog
	// The app reaches Redis through a proxy, which keeps it away from the
	// restarted Redis until the hub has resubscribed: only then is the
	// channel watched there, and keeps history.
	front := startProxy(t, "127.0.0.1:"+strconv.Itoa(r.Port))
	app := newBroker(t, "redis://"+front.ln.Addr().String()+"/0", Config{ErrorHandler: errs.handle, MaxRetryDelay: 200 * time.Millisecond})
	hub := newBroker(t, r.URL, Config{})
	sub := subscribe(t, hub, "ch")
	for i := 1; i <= 3; i++ {
		publish(t, app, msg("before"+strconv.Itoa(i), "ch"))
		if p := receive(t, sub, 5*time.Second); p.Offset != uint64(i) {
			t.Fatalf("before restart: offset %d, want %d", p.Offset, i)
		}
	}
	before, err := hub.History(context.Background(), "ch", nil)
	if err != nil {
		t.Fatal(err)
	}

	r.Stop()
	front.retarget(unreachable)
	publish(t, app, msg("during1", "ch"), msg("during2", "ch")) // queued while Redis is down
	testenv.WaitFor(t, 10*time.Second, func() bool { return app.Stats().Retries > 0 }, "the publisher to retry while Redis is down")
	if err := hub.Ping(context.Background()); err == nil {
		t.Error("Ping succeeded while Redis is down")
	}
	r.Start()
	waitSubscribers(t, r, hub.pubChannel("ch"))
	front.retarget("127.0.0.1:" + strconv.Itoa(r.Port))

	// The messages queued during the outage reach the new Redis, in order,
	// under a new epoch.
	res := history(t, hub, "ch", 2)
	if res.Position.Epoch == before.Position.Epoch {
		t.Errorf("epoch %q kept across a restart that lost the history", res.Position.Epoch)
	}
	if len(res.Publications) != 2 || res.Publications[0].EventID != "during1" || res.Publications[1].EventID != "during2" {
		t.Errorf("queued during the outage: %+v", res.Publications)
	}
	if errs.count(ErrDropped) != 0 || app.Stats().Retries == 0 {
		t.Errorf("dropped %d, retries %d", errs.count(ErrDropped), app.Stats().Retries)
	}
	old, err := hub.History(context.Background(), "ch", &before.Position)
	if err != nil || old.Recovered {
		t.Errorf("old position after the restart: recovered=%v, %v", old.Recovered, err)
	}

	// The subscription resubscribed: an event published now arrives live.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		id := "after" + strconv.Itoa(i)
		publish(t, app, msg(id, "ch"))
		select {
		case p := <-sub.C():
			for p.EventID != id && p.EventID != "" {
				// During1/2 may arrive live too if the subscription was back in time.
				select {
				case p = <-sub.C():
				case <-time.After(5 * time.Second):
					t.Fatalf("lost %q", id)
				}
			}
			if p.Epoch != res.Position.Epoch {
				t.Errorf("after restart: epoch %q, want %q", p.Epoch, res.Position.Epoch)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no live publication after the restart")
		}
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	var errs errorLog
	const queue, batch, total = 5, 2, 30
	front := startProxy(t, "127.0.0.1:"+strconv.Itoa(r.Port))
	app := newBroker(t, "redis://"+front.ln.Addr().String()+"/0", Config{QueueSize: queue, BatchSize: batch, ErrorHandler: errs.handle, MaxRetryDelay: 100 * time.Millisecond})
	front.retarget(unreachable) // Redis is out of the app's reach
	full := 0
	for i := range total {
		err := app.Publish(context.Background(), msg(strconv.Itoa(i), "ch"))
		switch {
		case errors.Is(err, ErrQueueFull):
			full++
		case err != nil:
			t.Fatalf("Publish: %v", err)
		}
	}
	// At most queue+batch messages fit: the queue and the batch the
	// publisher is retrying.
	if full < total-queue-batch || full == total {
		t.Fatalf("%d of %d refused with ErrQueueFull", full, total)
	}
	if got := errs.count(ErrQueueFull); got != full {
		t.Errorf("ErrorHandler saw %d ErrQueueFull, Publish returned %d", got, full)
	}
	if st := app.Stats(); st.Dropped != uint64(full) {
		t.Errorf("Stats.Dropped = %d, want %d", st.Dropped, full)
	}
	// What was accepted arrives, in order, once Redis is back.
	watch(t, newBroker(t, r.URL, Config{}), "ch")
	front.retarget("127.0.0.1:" + strconv.Itoa(r.Port))
	res := history(t, app, "ch", uint64(total-full))
	for i, p := range res.Publications {
		if i > 0 {
			prev, _ := strconv.Atoi(res.Publications[i-1].EventID)
			cur, _ := strconv.Atoi(p.EventID)
			if cur <= prev {
				t.Errorf("out of order: %s after %s", p.EventID, res.Publications[i-1].EventID)
			}
		}
	}
}

func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	app, err := New(Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, newBroker(t, url, Config{}), "ch")
	for i := range 1000 {
		publish(t, app, msg(strconv.Itoa(i), "ch"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := app.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := app.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := app.Publish(ctx, msg("late", "ch")); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, err := app.Subscribe(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	reader := newBroker(t, url, Config{})
	if res := history(t, reader, "ch", 1000); len(res.Publications) != 1000 {
		t.Errorf("history after Close holds %d", len(res.Publications))
	}
	if p := receive(t, sub, 5*time.Second); p.Offset != 1 {
		t.Errorf("first live offset %d", p.Offset)
	}
}

// TestCloseGivesUp: with Redis down, Close returns when its context ends,
// reporting what it could not send.
func TestCloseGivesUp(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	var errs errorLog
	app, err := New(Config{URL: r.URL, ErrorHandler: errs.handle})
	if err != nil {
		t.Fatal(err)
	}
	hub := newBroker(t, r.URL, Config{})
	sub := subscribe(t, hub, "ch")
	r.Stop()
	publish(t, app, msg("1", "ch"), msg("2", "ch"), msg("3", "ch"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := app.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if n := errs.count(ErrDropped); n != 3 {
		t.Errorf("%d messages reported dropped, want 3", n)
	}
	// Closing the hub's broker closes its subscriptions.
	if err := hub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-sub.C():
		if ok {
			t.Error("publication after Close")
		}
	case <-time.After(5 * time.Second):
		t.Error("subscription not closed by the broker's Close")
	}
}

func TestReplayStore(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	a, b := newBroker(t, url, Config{}).ReplayStore(), newBroker(t, url, Config{}).ReplayStore()
	ctx := context.Background()
	until := time.Now().Add(time.Minute)
	for _, step := range []struct {
		store *ReplayStore
		jti   string
		fresh bool
	}{
		{a, "t1", true},
		{b, "t1", false},
		{a, "t1", false},
		{b, "t2", true},
	} {
		fresh, err := step.store.Use(ctx, step.jti, until)
		if err != nil || fresh != step.fresh {
			t.Errorf("Use(%q) = %v, %v; want %v", step.jti, fresh, err, step.fresh)
		}
	}
}

func TestEmptyChannel(t *testing.T) {
	t.Parallel()
	b := newBroker(t, testenv.StartRedis(t).URL, Config{})
	ctx := context.Background()
	if err := b.Publish(ctx, msg("x", "ok", "")); !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("Publish: %v", err)
	}
	if _, err := b.History(ctx, "", nil); !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("History: %v", err)
	}
	if err := subscribe(t, b).Add(ctx, ""); !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("Add: %v", err)
	}
}

// freezingProxy forwards TCP connections to a Redis server; freeze makes
// the connections open at that moment silently swallow everything, as a
// peer that vanished without closing would, while new connections work.
type freezingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	pairs  []*proxyPair
	wg     sync.WaitGroup
}

type proxyPair struct {
	a, b   net.Conn
	frozen atomic.Bool
}

func startProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: target}
	p.wg.Go(func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			to := p.target
			p.mu.Unlock()
			b, err := net.Dial("tcp", to)
			if err != nil {
				a.Close()
				continue
			}
			pair := &proxyPair{a: a, b: b}
			p.mu.Lock()
			p.pairs = append(p.pairs, pair)
			p.mu.Unlock()
			pump := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						dst.Close()
						return
					}
					if !pair.frozen.Load() {
						if _, err := dst.Write(buf[:n]); err != nil {
							src.Close()
							return
						}
					}
				}
			}
			p.wg.Go(func() { pump(b, a) })
			p.wg.Go(func() { pump(a, b) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, pair := range p.pairs {
			pair.a.Close()
			pair.b.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// retarget sends new connections to target and closes the current ones,
// as a failover does to the clients of the failed server.
func (p *freezingProxy) retarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	for _, pair := range p.pairs {
		pair.a.Close()
		pair.b.Close()
	}
	p.pairs = nil
}

// unreachable is an address that refuses connections, to retarget a
// proxy to while its clients must not reach Redis.
const unreachable = "127.0.0.1:1"

// waitSubscribers waits until Redis r has a subscriber to the pub/sub
// channel pub.
func waitSubscribers(t *testing.T, r *testenv.Redis, pub string) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port)})
	defer rc.Close()
	waitFor(t, "a subscriber to "+pub, func() bool {
		n, err := rc.PubSubNumSub(context.Background(), pub).Result()
		return err == nil && n[pub] > 0
	})
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pair := range p.pairs {
		pair.frozen.Store(true)
	}
}

// TestSilentConnectionReplaced: a subscription whose connection goes
// silent (no FIN, no RST) notices by an unanswered ping and reconnects.
func TestSilentConnectionReplaced(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	p := startProxy(t, "127.0.0.1:"+strconv.Itoa(r.Port))
	hub := newBroker(t, "redis://"+p.ln.Addr().String()+"/0", Config{})
	hub.idleCheck = 300 * time.Millisecond
	sub := subscribe(t, hub, "ch")
	app := newBroker(t, r.URL, Config{})
	publish(t, app, msg("1", "ch"))
	if got := receive(t, sub, 5*time.Second); got.EventID != "1" {
		t.Fatalf("before: %+v", got)
	}
	p.freeze()
	deadline := time.Now().Add(20 * time.Second)
	for i := 2; ; i++ {
		id := strconv.Itoa(i)
		publish(t, app, msg(id, "ch"))
		select {
		case got := <-sub.C():
			if got.Offset < 2 {
				t.Fatalf("after: %+v", got)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription did not replace its silent connection")
		}
	}
}

// TestMain fails the run when goroutines started by the tests outlive them.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunCheckingLeaks(m, "redisbroker.", "go-redis"))
}

// TestHistoryStartsWhenWatched: as in broker.Memory, a channel keeps
// history once it has had a subscriber or been asked for its position,
// and not before; an unwatched one costs Redis no keys.
func TestHistoryStartsWhenWatched(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := testenv.StartRedis(t)
	app := newBroker(t, r.URL, Config{})
	hub := newBroker(t, r.URL, Config{})
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port)})
	defer rc.Close()

	publish(t, app, msg("u1", "unwatched"), msg("u2", "unwatched"))
	waitFor(t, "the unwatched publications", func() bool { return app.Stats().Published == 2 })
	if st := app.Stats(); st.Unwatched != 2 || st.Duplicates != 0 {
		t.Errorf("stats %+v, want 2 published unwatched", st)
	}
	if n, err := rc.Exists(ctx, app.metaKey("unwatched"), app.streamKey("unwatched"), app.idsKey("unwatched")).Result(); err != nil || n != 0 {
		t.Errorf("an unwatched channel has %d keys (%v), want none", n, err)
	}

	sub := subscribe(t, hub, "subscribed")
	publish(t, app, msg("s1", "subscribed"))
	if p := receive(t, sub, 5*time.Second); p.Offset != 1 || p.Epoch == "" {
		t.Fatalf("first publication with a subscriber: %+v, want offset 1 in an epoch", p)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to leave", func() bool {
		n, err := rc.PubSubNumSub(ctx, hub.pubChannel("subscribed")).Result()
		return err == nil && n[hub.pubChannel("subscribed")] == 0
	})
	// Once watched, a channel keeps history with no subscriber left.
	publish(t, app, msg("s2", "subscribed"))
	if res := history(t, hub, "subscribed", 2); len(res.Publications) != 2 || res.Publications[1].EventID != "s2" {
		t.Errorf("subscribed: %+v, want s1 and s2", res.Publications)
	}

	top, err := hub.History(ctx, "asked", nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, app, msg("a1", "asked"))
	history(t, hub, "asked", 1)
	if res, err := hub.History(ctx, "asked", &top.Position); err != nil || !res.Recovered || len(res.Publications) != 1 || res.Publications[0].EventID != "a1" {
		t.Errorf("asked: %+v, %v; want a1 recovered", res, err)
	}
	if st := app.Stats(); st.Unwatched != 2 || st.Published != 5 {
		t.Errorf("stats %+v, want 5 published, 2 of them unwatched", st)
	}
}

// TestHistoryReadsEarlierEntries: a stream entry in the layout written
// before entries became one field (o, i, t, d, g) is served by History
// beside the entries written now, with its offset, id, time, data and
// origin; so is the newer entry after it.
func TestHistoryReadsEarlierEntries(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	b := newBroker(t, url, Config{})
	ctx := context.Background()
	opt, _ := redis.ParseURL(url)
	raw := redis.NewClient(opt)
	defer raw.Close()
	watch(t, b, "ch")
	at := time.Unix(1764670000, 123456789)
	err := raw.XAdd(ctx, &redis.XAddArgs{Stream: b.streamKey("ch"),
		Values: []any{"o", 1, "i", "old", "t", at.UnixNano(), "d", `{"v":1}`, "g", "s1\x1fu1"}}).Err()
	if err == nil {
		err = raw.HIncrBy(ctx, b.metaKey("ch"), "o", 1).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	m := msg("new", "ch")
	m.Time, m.Origin = at.Add(time.Second), broker.Origin{Session: "s2", Subject: "u2"}
	publish(t, b, m)
	res := history(t, b, "ch", 2)
	if !res.Recovered || len(res.Publications) != 2 {
		t.Fatalf("history: %+v, want two publications", res)
	}
	old, cur := res.Publications[0], res.Publications[1]
	if old.Offset != 1 || old.EventID != "old" || !old.Time.Equal(at) || string(old.Data) != `{"v":1}` ||
		old.Origin != (broker.Origin{Session: "s1", Subject: "u1"}) {
		t.Errorf("earlier entry read as %+v", old)
	}
	if cur.Offset != 2 || cur.EventID != "new" || !cur.Time.Equal(m.Time) || string(cur.Data) != string(m.Data) ||
		cur.Origin != m.Origin {
		t.Errorf("current entry read as %+v", cur)
	}
}
