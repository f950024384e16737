package redisbroker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures a Broker. Either URL or Client must be set; every other
// field has a usable zero value. A zero field means its documented default;
// a negative value is refused by New with an error naming the field, except
// in HistorySize, where it means none.
type Config struct {
	// URL is the Redis server, e.g. "redis://:password@127.0.0.1:6379/0"
	// or "rediss://..." for TLS; query parameters such as dial_timeout are
	// those of redis.ParseURL. Ignored when Client is set.
	URL string
	// Cluster says URL names a Redis Cluster, as redis.ParseClusterURL
	// reads it: "redis://:password@host1:6379?addr=host2:6379&addr=host3:6379".
	// Zero value means a single server (or a proxy in front of one).
	Cluster bool
	// Client is an existing go-redis client to use instead of URL. The
	// Broker does not close it. A *redis.ClusterClient makes the Broker
	// use one script call per channel and sharded pub/sub (SPUBLISH,
	// SSUBSCRIBE, Redis 7.0 or later). Zero value means a client is made
	// from URL and closed by Close.
	Client redis.UniversalClient
	// Prefix starts every Redis key and pub/sub channel the Broker uses, so
	// several deployments can share one server. It may not hold "{" or
	// "}", which would change the keys' Redis Cluster hash tags. Zero
	// value means "telegraphy".
	Prefix string
	// QueueSize bounds the publish queue, in messages. When it is full,
	// Publish drops the messages that do not fit, reports each through
	// ErrorHandler and returns an error wrapping ErrQueueFull. Zero value
	// means 10,000.
	QueueSize int
	// BatchSize is how many queued messages the publisher sends to Redis
	// in one pipeline. Zero value means 256.
	BatchSize int
	// BatchWait is how long the publisher, having taken a message, waits
	// for more to fill its batch before it writes to Redis. Without it,
	// batches still form by themselves while a write is in flight; a wait
	// trades latency (timers fire late on a busy machine) for fewer round
	// trips at low rates. Zero value means no wait.
	BatchWait time.Duration
	// HistorySize is how many publications each channel keeps for
	// recovery. Zero value means 1000; a negative value keeps none (no
	// offsets are assigned, as with broker.Memory).
	HistorySize int
	// HistoryTTL is how long a publication stays in a channel's history.
	// A channel with nothing newer is forgotten entirely, and its epoch
	// changes when it is used again. Zero value means 10 minutes.
	HistoryTTL time.Duration
	// UnwatchedTTL is how long a channel that has never been published to
	// keeps its position once no subscription watches it: long enough for
	// a client that lost its connection to come back and recover from the
	// position it was given, short enough that subscribing to name after
	// name costs Redis nothing for long. Zero value means 30 seconds.
	UnwatchedTTL time.Duration
	// SubscriberBuffer is the number of publications a subscription may
	// hold before new ones are dropped for it. Zero value means 1024.
	SubscriberBuffer int
	// MaxRetryDelay caps the publisher's backoff between attempts while
	// Redis is unreachable. Zero value means 2 seconds.
	MaxRetryDelay time.Duration
	// ErrorHandler receives every error the background publisher meets:
	// each dropped message (wrapping ErrQueueFull, ErrDropped or ErrClosed)
	// and each failed attempt to reach Redis. It is called from the
	// publisher goroutine or from Publish, and must not block. Zero value
	// means the errors are logged with Logger.
	ErrorHandler func(error)
	// Logger receives the Broker's log lines. Zero value means
	// slog.Default().
	Logger *slog.Logger
}

// check returns an error naming the first field that may not be negative
// and is.
func (c *Config) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"QueueSize", int64(c.QueueSize)},
		{"BatchSize", int64(c.BatchSize)},
		{"BatchWait", int64(c.BatchWait)},
		{"HistoryTTL", int64(c.HistoryTTL)},
		{"UnwatchedTTL", int64(c.UnwatchedTTL)},
		{"SubscriberBuffer", int64(c.SubscriberBuffer)},
		{"MaxRetryDelay", int64(c.MaxRetryDelay)},
	} {
		if f.v < 0 {
			return fmt.Errorf("redisbroker: Config.%s is negative (zero means the default)", f.name)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "telegraphy"
	}
	if c.QueueSize == 0 {
		c.QueueSize = 10_000
	}
	if c.BatchSize == 0 {
		c.BatchSize = 256
	}
	if c.HistorySize == 0 {
		c.HistorySize = 1000
	}
	if c.HistorySize < 0 {
		c.HistorySize = 0
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = 10 * time.Minute
	}
	if c.UnwatchedTTL <= 0 {
		c.UnwatchedTTL = 30 * time.Second
	}
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = 1024
	}
	if c.MaxRetryDelay <= 0 {
		c.MaxRetryDelay = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}
