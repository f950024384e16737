package hub_test

import (
	"context"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestRevokeAfterBrokerDrops: a revocation that another hub publishes
// while this hub's broker subscription is full, so that the broker drops
// it for this hub, still closes the subject's connections here with 4010:
// the hub reads it back from the control channel's history once the burst
// is over, as it does the events it missed.
func TestRevokeAfterBrokerDrops(t *testing.T) {
	bus := broker.NewMemory(broker.MemoryConfig{SubscriberBuffer: 4})
	withBroker(t, bus)
	cfg := hub.Config{Secret: testSecret, Broker: bus, Logger: quietLogger(), ServeMetrics: true}
	a := newEnvWith(t, cfg, bus)
	b := newEnvWith(t, cfg, bus)
	busy := b.connect("other", "busy")
	busy.subscribe(1, "busy", nil)
	banned := b.connect("banned", "a")
	banned.subscribe(1, "a", nil)
	// A burst that overflows b's subscription, with the revocation right
	// behind it.
	var msgs []broker.Message
	for i := range 5000 {
		_, data, err := eventData(i, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, broker.Message{Channels: []string{"busy"}, Data: data})
	}
	if err := bus.Publish(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	if err := a.hub.Revoke(context.Background(), "banned"); err != nil {
		t.Fatal(err)
	}
	if b.metric("telegraphy_hub_broker_drops_total") <= 0 {
		t.Log("the broker dropped nothing for hub b: the test shows nothing this time")
	}
	banned.expectClose(4010)
}

// TestRevokeAcrossRedisReconnect: a revocation published while a hub's
// Redis pub/sub connection is coming back still closes the subject's
// connections on that hub.
func TestRevokeAcrossRedisReconnect(t *testing.T) {
	r := testenv.StartRedis(t)
	newBus := func() *redisbroker.Broker {
		bus, err := redisbroker.New(redisbroker.Config{URL: r.URL, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close(context.Background()) })
		return bus
	}
	busA, busB := newBus(), newBus()
	a := newEnvWith(t, hub.Config{Secret: testSecret, Broker: busA, Logger: quietLogger()}, nil)
	b := newEnvWith(t, hub.Config{Secret: testSecret, Broker: busB, Logger: quietLogger()}, nil)
	c := b.connect("banned", "x")
	c.subscribe(1, "x", nil)
	ctx := context.Background()
	if n, err := busB.Client().ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n == 0 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
	}
	if err := a.hub.Revoke(ctx, "banned"); err != nil {
		t.Fatal(err)
	}
	c.expectClose(4010)
}
