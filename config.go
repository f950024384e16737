package telegraphy

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// Config configures a Plugin. Broker is required; every other field has a
// usable zero value. A zero field means its documented default; a negative
// value is refused by Initialize with an error wrapping ErrBadConfig that
// names the field, except in BulkLimit, where it means always bulk.
type Config struct {
	// Broker receives every event after its transaction commits. Required:
	// Initialize fails with ErrNoBroker without it.
	Broker broker.Broker
	// ErrorHandler is called with every error that happens after a commit
	// (a failed publish), which cannot be returned to the caller whose
	// transaction already committed. It may be called from any goroutine
	// that commits. Zero value means the error is only logged.
	ErrorHandler func(error)
	// Logger logs publish failures, and commits that went on without
	// waiting longer for an earlier transaction on the same records to
	// publish. Zero value means slog.Default().
	Logger *slog.Logger
	// BulkLimit is the default for Options.BulkLimit: how many rows an
	// update or delete by condition may touch and still emit one event per
	// row. Zero value means events.DefaultBulkLimit (1000); a negative
	// value always sends one bulk event.
	BulkLimit int
	// PublishTimeout bounds each Broker.Publish call made after a commit,
	// and the wait of a commit for an earlier transaction on the same
	// records to publish (see "Order" in the package doc). Zero value
	// means 5 seconds.
	PublishTimeout time.Duration
	// Outbox turns on outbox mode: events are written to a table by the
	// transaction that produces them and published by a relay, so a crash
	// or a broker outage after the commit loses nothing. Zero value means
	// off; see OutboxConfig.
	Outbox OutboxConfig
}

// check returns an error naming the first field that may not be negative
// and is.
func (c *Config) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"PublishTimeout", int64(c.PublishTimeout)},
		{"Outbox.BatchSize", int64(c.Outbox.BatchSize)},
		{"Outbox.PollInterval", int64(c.Outbox.PollInterval)},
		{"Outbox.LeaseTTL", int64(c.Outbox.LeaseTTL)},
		{"Outbox.BacklogInterval", int64(c.Outbox.BacklogInterval)},
		{"Outbox.BacklogWarnAge", int64(c.Outbox.BacklogWarnAge)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: Config.%s is negative (zero means the default)", ErrBadConfig, f.name)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BulkLimit == 0 {
		c.BulkLimit = events.DefaultBulkLimit
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
}
