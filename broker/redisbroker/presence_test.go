package redisbroker

import (
	"context"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/brokertest"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

var _ broker.Presencer = (*Broker)(nil)

func TestPresence(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	b := newBroker(t, url, Config{})
	ctx := context.Background()
	doc := brokertest.Presence(t, b, func() int { return int(b.client.Exists(ctx, b.presenceKeys("doc:1")...).Val()) })

	// Redis lost everything: a refresh restores the node's members as
	// joins.
	if err := b.client.Del(ctx, b.presenceKeys("doc:1")...).Err(); err != nil {
		t.Fatal(err)
	}
	if ch := doc.Update("A", []broker.PresenceMember{{Subject: "bob"}}, nil, brokertest.Long); len(ch.Joined) != 1 || ch.Joined[0].Subject != "bob" {
		t.Fatalf("refresh after data loss: %+v", ch)
	}

	// The last removal deletes the keys; the others expire with the
	// leases.
	doc.Update("A", nil, []string{"bob"}, brokertest.Long)
	if n := b.client.Exists(ctx, b.presenceKeys("doc:1")...).Val(); n != 0 {
		t.Fatalf("%d presence keys left after the last member", n)
	}
	doc.Update("A", []broker.PresenceMember{{Subject: "eve"}}, nil, brokertest.Long)
	for _, k := range b.presenceKeys("doc:1") {
		if ttl := b.client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour+2*time.Second {
			t.Errorf("%s expires in %v, want about an hour", k, ttl)
		}
	}
}
