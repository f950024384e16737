package hub_test

import (
	"context"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
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
