package broker_test

import (
	"context"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/brokertest"
)

var _ broker.Presencer = (*broker.Memory)(nil)

func TestMemoryPresence(t *testing.T) {
	t.Parallel()
	b := broker.NewMemory()
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	doc := brokertest.Presence(t, b, b.PresenceChannels)

	// A refresh of a member already there changes nothing.
	if ch := doc.Update("A", []broker.PresenceMember{{Subject: "bob"}}, nil, brokertest.Long); len(ch.Joined)+len(ch.Left) != 0 {
		t.Fatalf("refresh: %+v", ch)
	}

	// The last removal forgets the channel.
	doc.Update("A", nil, []string{"bob"}, brokertest.Long)
	if n := b.PresenceChannels(); n != 0 {
		t.Fatalf("presence of %d channels after the last member left", n)
	}
}
