package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
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
