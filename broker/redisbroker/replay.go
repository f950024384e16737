package redisbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/telegraphy-go/telegraphy/tokens"
)

// ReplayStore remembers used connection tokens in Redis, so a token used
// on one hub is refused on every other hub sharing the Redis. It
// implements tokens.ReplayStore.
type ReplayStore struct {
	b *Broker
}

// ReplayStore returns the used-token store of the Broker's Redis.
func (b *Broker) ReplayStore() *ReplayStore { return &ReplayStore{b: b} }

// SharedReplayStore returns ReplayStore as a tokens.ReplayStore: a hub
// given this Broker uses it by default (hub.ReplayStoreSharer), so hubs
// sharing a Redis accept each token once between them.
func (b *Broker) SharedReplayStore() tokens.ReplayStore { return b.ReplayStore() }

// Use marks jti used until the given time (the token's expiry) and reports
// whether it was fresh: false means it was used before. The mark is one
// SET NX with an expiry, atomic across hubs.
func (r *ReplayStore) Use(ctx context.Context, jti string, until time.Time) (bool, error) {
	ttl := time.Until(until)
	if ttl < time.Second {
		ttl = time.Second
	}
	ok, err := r.b.client.SetNX(ctx, r.b.jtiKey(jti), 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("redisbroker: replay store: %w", err)
	}
	return ok, nil
}
