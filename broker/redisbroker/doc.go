// Package redisbroker implements broker.Broker over Redis, so that many app
// processes publish and many hubs deliver: pub/sub carries live
// publications, one stream per channel keeps the history for recovery, and
// a Lua script assigns every channel's offsets so all hubs see the same
// ones.
//
//	bus, err := redisbroker.New(redisbroker.Config{URL: "redis://127.0.0.1:6379/0"})
//
// The same Broker serves both sides: the GORM plugin publishes through it,
// a hub subscribes and reads history through it. Broker.ReplayStore is the
// hubs' shared store of used connection tokens.
//
// # Configuration
//
// The project's packages share one rule for configuration values: a zero
// field means the default its comment documents; a negative value is an
// error naming the field, returned by the constructor (New), except in
// the fields whose comment gives negative values a meaning (none, or no
// limit): here HistorySize, where it means none.
//
// # Concurrency
//
// Every method of Broker, of the Subscriptions it returns and of
// ReplayStore is safe to call from any goroutine. The Broker owns one
// publisher goroutine, started by New and stopped by Close; each
// Subscription owns one reader goroutine (on Redis Cluster, one per node it
// subscribes on), stopped by its Close (or the Broker's). Config.ErrorHandler is called from the publisher goroutine and
// from Publish and must not block.
//
// # Delivery
//
// Publish only queues: it never waits for Redis. The queue is bounded
// (Config.QueueSize); when it is full, Publish drops what does not fit,
// reports each dropped message through Config.ErrorHandler and returns an
// error wrapping ErrQueueFull. One publisher goroutine sends the queue to
// Redis in pipelined batches, in order; while Redis is unreachable it
// retries with jittered exponential backoff (at most Config.MaxRetryDelay
// apart), keeping the order. A retried message is not applied twice to a
// channel's history: the script keeps the event ids of the last
// HistorySize publications of each channel and skips one it already has.
// Close flushes the queue until its context ends.
//
// Per channel, the script atomically starts a new epoch when the channel's
// history is missing (first use, expiry, or a Redis restarted without
// persistence) or may have lost its last publications (a failover to a
// replica, told by the replication id kept with the channel), skips an
// event id it has already kept, assigns the next offset, appends to the
// channel's stream trimmed to HistorySize entries and HistoryTTL of age,
// and publishes. A channel with no history and no subscriber is only
// published to, without an offset: as in broker.Memory, its history starts
// with its first subscriber or History call. A channel that was only looked
// at (History, never a publication) is forgotten Config.UnwatchedTTL after
// no subscription watches it, so subscribing to name after name costs
// Redis nothing for long. Live delivery is Redis pub/sub: at
// most once. A hub that loses its connection reconnects and resubscribes by
// itself; what was published meanwhile is not delivered live, and shows as
// a jump in offsets (or a new epoch) that History recovers or reports as
// Recovered=false, exactly as broker.Memory answers it.
//
// Subscriptions subscribe in Redis only to the channels added to them, so
// a hub receives only what its clients asked for. Each Subscription's
// buffer is bounded (Config.SubscriberBuffer); when it is full the new
// publication is dropped for that subscription and counted in Dropped.
//
// # Redis Cluster
//
// Give New a *redis.ClusterClient as Config.Client, or a cluster URL with
// Config.Cluster. The Broker then writes each channel with its own script
// call (a channel's keys share a slot; a message's channels do not),
// publishes with SPUBLISH, and subscribes with SSUBSCRIBE on the node that
// owns each channel's slot, through one PubSub per node. When a slot moves,
// the node drops the subscription and the Broker subscribes again where
// the slot now lives. Sharded pub/sub needs Redis 7.0 or later.
//
// # Redis keys
//
// Every key and pub/sub channel starts with Config.Prefix and carries the
// broker channel as a hash tag, "<prefix>:{<channel>}:meta|stream|ids|pub",
// so a channel's keys share one Redis Cluster slot. A channel name holding
// "}" (which would end the tag early, or leave it empty) gets a hash of
// the name as its tag instead: "<prefix>:{#<16 hex digits>}:<channel>:meta". A channel's keys expire
// together, between HistoryTTL and 1.25 HistoryTTL after its last
// publication; History never serves a publication older than HistoryTTL. Used tokens are
// "<prefix>:jti:<jti>", expiring with the token.
package redisbroker
