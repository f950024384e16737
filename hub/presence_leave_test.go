package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestPresenceCyclingMember: a subject coming and going on a channel from
// many connections as fast as its request rate allows sends a watcher one
// join, and no leave while it comes back within PresenceLeaveDelay; it is
// listed meanwhile. Its leave comes once the delay has passed without it,
// and at once when its hub closes.
func TestPresenceCyclingMember(t *testing.T) {
	t.Parallel()
	b := broker.NewMemory(broker.MemoryConfig{})
	withBroker(t, b)
	cfg := func(delay time.Duration) hub.Config {
		return hub.Config{Broker: b, Secret: testSecret, Logger: quietLogger(), ServeMetrics: true,
			Presence: []string{"doc:*"}, PresenceLeaveDelay: delay, RequestRate: 1000, RequestBurst: 1000}
	}
	a := newEnvWith(t, cfg(time.Minute), b)
	w := newEnvWith(t, cfg(time.Minute), b)

	ada := w.connectInfo("ada", `{"name":"Ada"}`, "doc:*")
	ada.watch(1, "doc:1")
	ada.notice("join", "doc:1", "ada")

	// mallory, with a big info claim, cycles from 8 connections on hub a.
	info := `{"pad":"` + strings.Repeat("x", 900) + `"}`
	const conns, cycles = 8, 50
	var wg sync.WaitGroup
	for range conns {
		c := a.connectInfo("mallory", info, "doc:*")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				c.send(fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":"doc:1"}`, 2*i+1))
				c.expect("subscribed")
				c.send(fmt.Sprintf(`{"type":"unsubscribe","id":%d,"channel":"doc:1"}`, 2*i+2))
				c.expect("unsubscribed")
			}
		}()
	}
	wg.Wait()
	ada.notice("join", "doc:1", "mallory")
	ada.alive(2) // the next message: neither a leave nor another join came
	if got := ada.who(3, "doc:1"); len(got) != 2 || got[0] != `ada{"name":"Ada"}` || got[1] != "mallory"+info {
		t.Fatalf("members while mallory's leave waits: %v", got)
	}

	// Her hub closing announces her leave at once, not a minute later.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.hub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ada.notice("leave", "doc:1", "mallory")
	if got := ada.who(4, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`}) {
		t.Fatalf("members after mallory's hub closed: %v", got)
	}
}

// TestPresenceLeaveDelay: the leave of a subject whose last connection
// went comes after PresenceLeaveDelay; one coming back before that sends
// nothing.
func TestPresenceLeaveDelay(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	e := newEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) { c.PresenceLeaveDelay = delay })
	ada := e.connect("ada", "doc:*")
	ada.watch(1, "doc:1")
	ada.notice("join", "doc:1", "ada")

	bob := e.connect("bob", "doc:*")
	bob.subscribe(1, "doc:1", nil)
	ada.notice("join", "doc:1", "bob")
	// A page reload: the old tab goes, a new one subscribes.
	_ = bob.ws.Close()
	bob2 := e.connect("bob", "doc:*")
	bob2.subscribe(1, "doc:1", nil)
	left := time.Now()
	bob2.send(`{"type":"unsubscribe","id":2,"channel":"doc:1"}`)
	bob2.expect("unsubscribed")
	ada.notice("leave", "doc:1", "bob") // the next message: no leave and join for the reload
	if waited := time.Since(left); waited < delay {
		t.Errorf("bob's leave came %s after he left, before PresenceLeaveDelay (%s)", waited, delay)
	}
	if got := ada.who(2, "doc:1"); !slices.Equal(got, []string{"ada"}) {
		t.Fatalf("members after bob left: %v", got)
	}
	if got := e.waitMetric("telegraphy_hub_presence_members", 1); got != 1 {
		t.Errorf("presence_members = %v, want 1", got)
	}
}

func TestPresenceLeaveDelayConfig(t *testing.T) {
	t.Parallel()
	b := broker.NewMemory(broker.MemoryConfig{})
	defer b.Close(context.Background())
	for _, d := range []time.Duration{-time.Second, time.Millisecond, hub.MinPresenceLeaveDelay - 1} {
		_, err := hub.New(hub.Config{Broker: b, Secret: testSecret, Presence: []string{"doc:*"}, PresenceLeaveDelay: d})
		if !errors.Is(err, hub.ErrBadConfig) || !strings.Contains(err.Error(), "PresenceLeaveDelay") {
			t.Errorf("PresenceLeaveDelay %s: %v, want ErrBadConfig naming PresenceLeaveDelay", d, err)
		}
	}
}

// presenceBroker is a broker that keeps presence.
type presenceBroker interface {
	broker.Broker
	broker.Presencer
}

// hookedRemoves is a broker whose presence updates that remove someone
// first call hook, which may hold them (a slow Redis) or fail them (a
// blip).
type hookedRemoves struct {
	presenceBroker
	hook func() error
}

func (b *hookedRemoves) UpdatePresence(ctx context.Context, channel, node string, add []broker.PresenceMember, remove []string, lease broker.PresenceLease) (broker.PresenceChange, error) {
	if len(remove) > 0 {
		if err := b.hook(); err != nil {
			return broker.PresenceChange{}, err
		}
	}
	return b.presenceBroker.UpdatePresence(ctx, channel, node, add, remove, lease)
}

// TestPresenceRedisCloseLeavesNothing: when Close returns, the members
// of the closed hub have left Redis, and watchers on the other hub hear
// their leave, though the program closes the broker right after and
// PresenceTTL is long: also when the delayed leave's broker update was
// under way as Close began, and when an earlier removal failed and waits
// for the heartbeat's retry.
func TestPresenceRedisCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	for i, tt := range []struct {
		name string
		// hook runs before each removal by hub A; it is called with
		// before set once bob's connection has gone and until Close.
		hook func(before *atomic.Bool, called chan<- struct{}) error
	}{
		{"leave under way", func(before *atomic.Bool, called chan<- struct{}) error {
			if before.Load() {
				called <- struct{}{}
				time.Sleep(300 * time.Millisecond) // Close begins meanwhile
			}
			return nil
		}},
		{"removal failed", func(before *atomic.Bool, called chan<- struct{}) error {
			if before.Load() {
				called <- struct{}{}
				return errors.New("hooked: presence update failed")
			}
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			channel := fmt.Sprintf("doc:%d", i)
			cfg := func(b broker.Broker) hub.Config {
				return hub.Config{Secret: testSecret, Broker: b, Logger: quietLogger(), ServeMetrics: true,
					Presence: []string{"doc:*"}, PresenceTTL: time.Minute, PresenceHeartbeat: 20 * time.Second,
					PresenceLeaveDelay: hub.MinPresenceLeaveDelay}
			}
			newBus := func() *redisbroker.Broker {
				bus, err := redisbroker.New(redisbroker.Config{URL: r.URL, Logger: quietLogger()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = bus.Close(context.Background()) })
				return bus
			}
			busA := newBus()
			var before atomic.Bool
			called := make(chan struct{}, 1)
			a := newEnvWith(t, cfg(&hookedRemoves{presenceBroker: busA, hook: func() error { return tt.hook(&before, called) }}), nil)
			b := newEnvWith(t, cfg(newBus()), nil)

			w := b.connect("w", "doc:*")
			w.watch(1, channel)
			w.notice("join", channel, "w")
			bob := a.connect("bob", "doc:*")
			bob.subscribe(1, channel, nil)
			w.notice("join", channel, "bob")

			before.Store(true)
			_ = bob.ws.Close()
			<-called // PresenceLeaveDelay after bob went
			before.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.hub.Close(ctx); err != nil {
				t.Fatal(err)
			}
			_ = busA.Close(ctx) // what a program does next
			w.notice("leave", channel, "bob")
			if got := w.who(2, channel); !slices.Equal(got, []string{"w"}) {
				t.Fatalf("members after bob's hub closed: %v", got)
			}
		})
	}
}

// TestPresenceFullMemberGone: a subject refused for MaxPresenceMembers
// whose connection went is not listed when room is made while its leave
// waits: nobody hears of someone who is not there.
func TestPresenceFullMemberGone(t *testing.T) {
	t.Parallel()
	b := broker.NewMemory(broker.MemoryConfig{})
	withBroker(t, b)
	cfg := func(delay time.Duration) hub.Config {
		return hub.Config{Broker: b, Secret: testSecret, Logger: quietLogger(), ServeMetrics: true,
			Presence: []string{"doc:*"}, MaxPresenceMembers: 2, PresenceLeaveDelay: delay,
			PresenceTTL: 3 * time.Second, PresenceHeartbeat: 20 * time.Millisecond}
	}
	a := newEnvWith(t, cfg(5*time.Second), b)
	bh := newEnvWith(t, cfg(hub.MinPresenceLeaveDelay), b)

	w := a.connect("w", "doc:*")
	w.watch(1, "doc:1")
	w.notice("join", "doc:1", "w")
	x := bh.connect("x", "doc:*")
	x.subscribe(1, "doc:1", nil)
	w.notice("join", "doc:1", "x")
	m := a.connect("m", "doc:*")
	m.subscribe(1, "doc:1", nil) // the channel is full: m is not listed
	if got := a.waitMetric(`telegraphy_hub_limited_total{limit="presence_members"}`, 1); got != 1 {
		t.Fatalf("limited{presence_members} = %v, want 1", got)
	}
	_ = m.ws.Close() // m's leave waits 5 s on hub a
	if got := a.waitMetric("telegraphy_hub_subscriptions", 1); got != 1 {
		t.Fatalf("subscriptions = %v, want 1", got)
	}
	_ = x.ws.Close() // x leaves 100 ms later: room for one
	w.notice("leave", "doc:1", "x")
	if ok, seen := w.waitNotice("join", "m", 500*time.Millisecond); ok { // 25 heartbeats
		t.Fatalf("join of m, whose connection went, once there was room: %v", seen)
	}
	if got := w.who(2, "doc:1"); !slices.Equal(got, []string{"w"}) {
		t.Fatalf("members %v, want [w]", got)
	}
}

// TestPresenceRevokedLeavesAtOnce: revoking a subject takes it off the
// member list at once, not PresenceLeaveDelay later.
func TestPresenceRevokedLeavesAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) { c.PresenceLeaveDelay = time.Minute })
	ada := e.connect("ada", "doc:*")
	ada.watch(1, "doc:1")
	ada.notice("join", "doc:1", "ada")
	for range 2 { // two tabs
		bob := e.connect("bob", "doc:*")
		bob.subscribe(1, "doc:1", nil)
	}
	ada.notice("join", "doc:1", "bob")
	if err := e.hub.Revoke(context.Background(), "bob"); err != nil {
		t.Fatal(err)
	}
	ada.notice("leave", "doc:1", "bob")
	if got := ada.who(2, "doc:1"); !slices.Equal(got, []string{"ada"}) {
		t.Fatalf("members after bob was revoked: %v", got)
	}
}
