package telegraphy

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/telegraphy-go/telegraphy/internal/outbox"
	"gorm.io/gorm"
)

// ErrOutbox wraps a failure to write a transaction's events to the outbox
// table. The transaction is rolled back: its changes and its events are
// both gone.
var ErrOutbox = errors.New("telegraphy: write to outbox failed, transaction rolled back")

// ErrOutboxResolver is returned by Initialize in outbox mode on a DB that
// uses gorm.io/plugin/dbresolver (registered before or after the plugin):
// the relay's queries would be routed to the replicas, and with several
// sources the outbox rows would be spread over them.
var ErrOutboxResolver = errors.New("telegraphy: outbox mode does not support gorm.io/plugin/dbresolver")

// DefaultOutboxTable is the name of the outbox table when
// OutboxConfig.Table is empty.
const DefaultOutboxTable = "telegraphy_outbox"

// OutboxConfig configures outbox mode (Config.Outbox). The zero value is
// outbox mode off: events are published after commit, at most once.
type OutboxConfig struct {
	// Enabled turns outbox mode on: each transaction's events are
	// inserted into the outbox table by the same transaction, just before
	// its COMMIT, and a relay publishes them afterwards. Zero value means
	// off.
	Enabled bool
	// Table is the outbox table; the relay's lease lives in Table+"_lease".
	// Initialize creates both (AutoMigrate). Zero value means
	// DefaultOutboxTable ("telegraphy_outbox").
	Table string
	// NoRelay stops Initialize from starting a relay in this process: its
	// transactions still fill the outbox, and a relay in another process
	// (or one started later) publishes them. Zero value means Initialize
	// starts a relay, stopped by Plugin.Close.
	NoRelay bool
	// BatchSize is the most rows the relay reads, publishes and deletes at
	// once. Zero value means 500.
	BatchSize int
	// PollInterval is how often the relay looks for rows it was not told
	// about (written by other processes, or left by a crash), and how
	// often a relay without the lease checks whether it may take it. A
	// commit in the same process wakes the relay at once. Zero value
	// means 1 second.
	PollInterval time.Duration
	// LeaseTTL is how long a relay that stopped renewing its lease (its
	// process died) keeps it before another relay takes over. The active
	// relay renews it four times per LeaseTTL. Zero value means 10
	// seconds.
	LeaseTTL time.Duration
	// BacklogInterval is how often each relay measures the backlog (rows
	// waiting and the age of the oldest) for the metrics and the log.
	// Zero value means 15 seconds.
	BacklogInterval time.Duration
	// BacklogWarnAge is the age of the oldest waiting row beyond which
	// the backlog measurement is logged as a warning. Zero value means 1
	// minute.
	BacklogWarnAge time.Duration
	// Registerer receives the outbox metrics: telegraphy_outbox_backlog_rows,
	// telegraphy_outbox_oldest_age_seconds, telegraphy_outbox_published_total,
	// telegraphy_outbox_rejected_total (rows no broker would take, dropped)
	// and telegraphy_outbox_relay_leader. Zero value means no metrics.
	Registerer prometheus.Registerer
}

// OutboxBacklog is what waits in the outbox table.
type OutboxBacklog struct {
	// Rows is the number of events not yet published (and deleted).
	Rows int64
	// Oldest is the time of the oldest waiting event; zero when Rows is 0.
	Oldest time.Time
	// Age is how long the oldest waiting event has waited; zero when Rows
	// is 0.
	Age time.Duration
}

// initOutbox prepares outbox mode on db, the one DB the plugin is
// initialized on: it creates the tables and starts the relay.
func (p *Plugin) initOutbox(db *gorm.DB) error {
	if !p.cfg.Outbox.Enabled || p.outbox != nil {
		return nil
	}
	c := p.cfg.Outbox
	if c.Table == "" {
		c.Table = DefaultOutboxTable
	}
	o, err := outbox.New(db, outbox.Config{
		Table:           c.Table,
		NoRelay:         c.NoRelay,
		BatchSize:       c.BatchSize,
		PollInterval:    c.PollInterval,
		LeaseTTL:        c.LeaseTTL,
		BacklogInterval: c.BacklogInterval,
		BacklogWarnAge:  c.BacklogWarnAge,
		Registerer:      c.Registerer,
		Broker:          p.cfg.Broker,
		PublishTimeout:  p.cfg.PublishTimeout,
		Logger:          p.cfg.Logger,
		ErrorHandler:    p.cfg.ErrorHandler,
	})
	if err != nil {
		return err
	}
	p.outbox = o
	return nil
}

// OutboxBacklog returns what waits in the outbox table: the number of
// events not yet published and the age of the oldest. It fails with
// ErrOutboxOff when outbox mode is off or the plugin is not initialized.
func (p *Plugin) OutboxBacklog(ctx context.Context) (OutboxBacklog, error) {
	if p.outbox == nil {
		return OutboxBacklog{}, ErrOutboxOff
	}
	b, err := p.outbox.Backlog(ctx)
	return OutboxBacklog(b), err
}

// ErrOutboxOff is returned by OutboxBacklog when outbox mode is off or the
// plugin has not been initialized.
var ErrOutboxOff = errors.New("telegraphy: outbox mode is off")

// Close stops the plugin's background work: in outbox mode, the relay
// publishes what the outbox holds until ctx is done, then gives up its
// lease and exits. Rows it could not publish stay in the table for the
// next relay. Close waits for the relay to exit and is idempotent; call it
// before closing the database. Without a relay it does nothing.
func (p *Plugin) Close(ctx context.Context) error {
	if p.outbox == nil {
		return nil
	}
	return p.outbox.Close(ctx)
}
