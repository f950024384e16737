package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// flakyPresence is broker.Memory with transient failures injected: the
// next failAdd Adds of presence notice channels fail, and so do the next
// failRemove UpdatePresence calls that remove someone. A real broker
// (Redis) fails like this during a blip.
type flakyPresence struct {
	*broker.Memory
	failAdd    atomic.Int32
	failRemove atomic.Int32
}

func (f *flakyPresence) Subscribe(ctx context.Context) (broker.Subscription, error) {
	s, err := f.Memory.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	return &flakySub{Subscription: s, f: f}, nil
}

func (f *flakyPresence) UpdatePresence(ctx context.Context, channel, node string, add []broker.PresenceMember, remove []string, lease broker.PresenceLease) (broker.PresenceChange, error) {
	if len(remove) > 0 && f.failRemove.Add(-1) >= 0 {
		return broker.PresenceChange{}, errors.New("flaky: transient presence update failure")
	}
	return f.Memory.UpdatePresence(ctx, channel, node, add, remove, lease)
}

type flakySub struct {
	broker.Subscription
	f *flakyPresence
}

func (s *flakySub) Add(ctx context.Context, channels ...string) error {
	for _, ch := range channels {
		if strings.HasPrefix(ch, hub.PresencePrefix) && s.f.failAdd.Add(-1) >= 0 {
			return errors.New("flaky: transient subscribe failure")
		}
	}
	return s.Subscription.Add(ctx, channels...)
}

func newFlakyEnv(t *testing.T, opts ...envOption) (*env, *flakyPresence) {
	t.Helper()
	mem := broker.NewMemory()
	t.Cleanup(func() { _ = mem.Close(context.Background()) }) // after the hub's own cleanup
	f := &flakyPresence{Memory: mem}
	cfg := hub.Config{Secret: testSecret, Broker: f, Logger: quietLogger(), ServeMetrics: true}
	for _, o := range opts {
		o(&cfg, nil)
	}
	return newEnvWith(t, cfg, mem), f
}

// waitNotice waits d, then pings and reads up to the pong, and reports
// whether a join/leave of subject came meanwhile, with the messages seen.
// (No read deadline: gorilla/websocket cannot read after one passes.)
func (c *client) waitNotice(typ, subject string, d time.Duration) (bool, []string) {
	c.t.Helper()
	time.Sleep(d)
	c.send(`{"type":"ping","id":424242}`)
	var seen []string
	found := false
	for {
		m, err := c.read(10 * time.Second)
		if err != nil {
			seen = append(seen, err.Error())
			return found, seen
		}
		if m.Type == "pong" {
			return found, seen
		}
		seen = append(seen, m.raw)
		if m.Type == typ && decodePresence(c.t, m).Member.Subject == subject {
			found = true
		}
	}
}

// whoSkipping is who, skipping the join/leave notices before the reply.
func (c *client) whoSkipping(id int, channel string) []string {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"type":"presence","id":%d,"channel":%q}`, id, channel))
	for {
		m := c.next()
		if m.Type == "join" || m.Type == "leave" {
			continue
		}
		if m.Type != "presence" {
			c.t.Fatalf("got %s, want presence", m)
		}
		out := []string{}
		for _, mem := range decodePresence(c.t, m).Members {
			out = append(out, mem.Subject)
		}
		return out
	}
}

// TestPresenceNoticeSubscriptionRetried: the first watcher's
// subscription to $telegraphy.presence:<channel> fails once (a broker
// blip). The next watcher's join (or the heartbeat) tries again, so
// watchers get join/leave notices once the broker is fine again.
func TestPresenceNoticeSubscriptionRetried(t *testing.T) {
	e, f := newFlakyEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) {
		c.PresenceTTL, c.PresenceHeartbeat = 3*time.Second, 50*time.Millisecond
	})
	f.failAdd.Store(1)
	ada := e.connect("ada", "doc:*")
	ada.watch(1, "doc:1") // the blip: the hub's notice subscription fails
	// The broker is fine from now on.
	bob := e.connect("bob", "doc:*")
	bob.watch(1, "doc:1")
	if got := bob.whoSkipping(2, "doc:1"); !slices.Equal(got, []string{"ada", "bob"}) {
		t.Fatalf("members %v", got)
	}
	carl := e.connect("carl", "doc:*")
	carl.subscribe(1, "doc:1", nil)
	ok, seen := bob.waitNotice("join", "carl", 3*time.Second)
	if !ok {
		t.Fatalf("bob (subscribed with presence:true after the blip) got no join of carl within 3 s (60 heartbeats); messages: %v", seen)
	}
}

// TestPresenceFailedRemoveRetried: a leave whose broker update fails once
// is retried by the heartbeat, like adds: the subject who left is no
// longer listed, and his leave is sent, long before his lease runs out
// (PresenceTTL).
func TestPresenceFailedRemoveRetried(t *testing.T) {
	e, f := newFlakyEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) {
		c.PresenceTTL, c.PresenceHeartbeat = 30*time.Second, 50*time.Millisecond
	})
	ada := e.connect("ada", "doc:*")
	ada.watch(1, "doc:1")
	ada.notice("join", "doc:1", "ada")
	bob := e.connect("bob", "doc:*")
	bob.subscribe(1, "doc:1", nil)
	ada.notice("join", "doc:1", "bob")

	f.failRemove.Store(1)
	_ = bob.ws.Close()
	if got := e.waitMetric("telegraphy_hub_presence_members", 1); got != 1 {
		t.Fatalf("presence_members = %v", got)
	}
	ok, seen := ada.waitNotice("leave", "bob", 2*time.Second) // 40 heartbeats
	members := ada.who(2, "doc:1")
	if !ok || !slices.Equal(members, []string{"ada"}) {
		t.Fatalf("bob left 2 s (40 heartbeats) ago: leave seen %v (messages %v), members %v, want [ada]", ok, seen, members)
	}
}

// TestPresenceChurnRace: many connections of a few subjects
// subscribe and leave one channel concurrently while the heartbeat runs;
// at the end nothing is left anywhere. (Run with -race.)
func TestPresenceChurnRace(t *testing.T) {
	e := newEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) {
		c.PresenceTTL, c.PresenceHeartbeat = time.Second, 5*time.Millisecond
		c.RequestBurst, c.RequestRate = 10000, 10000
	})
	w := e.connect("watcher", "doc:*")
	w.watch(1, "doc:0")
	done := make(chan error, 16)
	for g := range 16 {
		go func() {
			var err error
			defer func() { done <- err }()
			ws, _, derr := websocket.DefaultDialer.Dial(e.url, nil)
			if derr != nil {
				err = derr
				return
			}
			defer ws.Close()
			tok, _ := e.issuer.Issue(fmt.Sprintf("s%d", g%4), []string{"doc:*"})
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","token":"`+tok+`"}`))
			var lines []string
			for i := range 100 {
				ch := fmt.Sprintf("doc:%d", i%3)
				lines = append(lines,
					fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":%q,"presence":%v}`, 2*i, ch, i%2 == 0),
					fmt.Sprintf(`{"type":"presence","id":%d,"channel":%q}`, 2*i, ch),
					fmt.Sprintf(`{"type":"unsubscribe","id":%d,"channel":%q}`, 2*i+1, ch))
			}
			_ = ws.WriteMessage(websocket.TextMessage, []byte(strings.Join(lines, "\n")))
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","id":999999}`))
			_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				_, data, rerr := ws.ReadMessage()
				if rerr != nil {
					err = rerr
					return
				}
				if strings.Contains(string(data), `"id":999999`) {
					return
				}
			}
		}()
	}
	for range 16 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := e.waitMetric("telegraphy_hub_presence_members", 1); got != 1 {
		t.Errorf("presence_members = %v, want 1 (the watcher)", got)
	}
	if got := w.whoSkipping(2, "doc:0"); !slices.Equal(got, []string{"watcher"}) {
		t.Errorf("members %v", got)
	}
	_ = w.ws.Close()
	if got := e.waitMetric("telegraphy_hub_presence_channels", 0); got != 0 {
		t.Errorf("presence_channels = %v", got)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { return e.broker.PresenceChannels() == 0 }, "broker presence empty")
}
