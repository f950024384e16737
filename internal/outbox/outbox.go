package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/telegraphy-go/telegraphy/broker"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Config configures an Outbox. Its first fields are telegraphy.OutboxConfig's
// (documented there); the rest come from telegraphy.Config.
type Config struct {
	Table           string        // required
	NoRelay         bool          // zero: New starts a relay
	BatchSize       int           // zero: 500
	PollInterval    time.Duration // zero: 1 second
	LeaseTTL        time.Duration // zero: 10 seconds
	BacklogInterval time.Duration // zero: 15 seconds
	BacklogWarnAge  time.Duration // zero: 1 minute
	Registerer      prometheus.Registerer

	// Broker receives the relay's batches. Required.
	Broker broker.Broker
	// PublishTimeout bounds each publish and the wait for its
	// confirmation. Zero value means 5 seconds.
	PublishTimeout time.Duration
	// Logger receives the relay's warnings and errors. Zero value means
	// slog.Default().
	Logger *slog.Logger
	// ErrorHandler, when set, is called with each failed batch that is
	// logged.
	ErrorHandler func(error)
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.BacklogInterval <= 0 {
		c.BacklogInterval = 15 * time.Second
	}
	if c.BacklogWarnAge <= 0 {
		c.BacklogWarnAge = time.Minute
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Exec runs one statement in the committing transaction.
type Exec func(ctx context.Context, query string, args ...any) error

// Outbox is outbox mode on one database: its tables and, unless
// Config.NoRelay, its relay.
type Outbox struct {
	cfg     Config
	db      *gorm.DB // session for the relay and backlog queries
	t       table
	relay   *relay // nil with NoRelay
	metrics *metrics
	rereads bool // the relay reads twice (MySQL, MariaDB; see relay.read)
}

// New creates the outbox and lease tables on db (AutoMigrate) and starts
// the relay unless cfg.NoRelay.
func New(db *gorm.DB, cfg Config) (*Outbox, error) {
	if cfg.Table == "" || cfg.Broker == nil {
		return nil, errors.New("telegraphy: outbox: Config.Table and Config.Broker are required")
	}
	cfg.setDefaults()
	if k, ok := cfg.Broker.(interface{ KeepsHistory() bool }); ok && !k.KeepsHistory() {
		return nil, errors.New("telegraphy: outbox: the broker keeps no history (a negative HistorySize), " +
			"which the relay needs to confirm what it published")
	}
	if q, ok := cfg.Broker.(interface{ QueueCapacity() int }); ok && cfg.BatchSize+1 > q.QueueCapacity() {
		return nil, fmt.Errorf("telegraphy: outbox: a batch of BatchSize %d events and the relay's marker does not fit "+
			"the broker's publish queue of %d messages (its QueueSize): lower the batch size or raise the queue size",
			cfg.BatchSize, q.QueueCapacity())
	}
	o := &Outbox{
		cfg: cfg,
		db: db.Session(&gorm.Session{NewDB: true, SkipHooks: true, SkipDefaultTransaction: true,
			Logger: db.Logger.LogMode(logger.Silent)}),
	}
	o.t = newTable(db.Dialector, cfg.Table)
	o.rereads = db.Dialector.Name() == "mysql"
	if err := o.t.migrate(o.db); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		o.metrics = m
	}
	if !cfg.NoRelay {
		o.relay = newRelay(o)
		go o.relay.run()
	}
	return o, nil
}

// Write inserts msgs into the outbox in order, with exec running each
// INSERT in the committing transaction.
func (o *Outbox) Write(ctx context.Context, exec Exec, msgs []broker.Message) error {
	for len(msgs) > 0 {
		n := min(len(msgs), chunk)
		args := make([]any, 0, 5*n)
		for _, m := range msgs[:n] {
			a, err := rowArgs(m)
			if err != nil {
				return err
			}
			args = append(args, a...)
		}
		if err := exec(ctx, o.t.insert(n), args...); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// rowArgs are the values of the outbox row holding m.
func rowArgs(m broker.Message) ([]any, error) {
	ch, err := json.Marshal(m.Channels)
	if err != nil {
		return nil, err
	}
	t := m.Time
	if t.IsZero() {
		t = time.Now()
	}
	return []any{m.EventID, string(ch), m.Data, t.UnixNano(), broker.EncodeOrigin(m.Origin)}, nil
}

// WriteNow inserts one event into the outbox on its own (an event written
// outside a transaction) and wakes the relay.
func (o *Outbox) WriteNow(ctx context.Context, msg broker.Message) error {
	args, err := rowArgs(msg)
	if err != nil {
		return err
	}
	if _, err := o.db.Statement.ConnPool.ExecContext(ctx, o.t.insert(1), args...); err != nil {
		return fmt.Errorf("telegraphy: write %s event to the outbox: %w", msg.EventID, err)
	}
	o.Committed()
	return nil
}

// Committed is called after a transaction that wrote to the outbox
// committed: it wakes the relay. It never blocks.
func (o *Outbox) Committed() {
	if o.relay != nil {
		o.relay.wake()
	}
}

// Backlog is what waits in the outbox table.
type Backlog struct {
	Rows   int64
	Oldest time.Time
	Age    time.Duration
}

// Backlog measures what waits in the outbox table.
func (o *Outbox) Backlog(ctx context.Context) (Backlog, error) {
	var b Backlog
	db := o.db.WithContext(ctx)
	if err := db.Table(o.t.name).Count(&b.Rows).Error; err != nil {
		return b, fmt.Errorf("telegraphy: outbox backlog: %w", err)
	}
	if b.Rows == 0 {
		return b, nil
	}
	var oldest []int64
	if err := db.Table(o.t.name).Order("id").Limit(1).Pluck("created_ns", &oldest).Error; err != nil {
		return b, fmt.Errorf("telegraphy: outbox backlog: %w", err)
	}
	if len(oldest) == 1 {
		b.Oldest = time.Unix(0, oldest[0])
		b.Age = max(time.Since(b.Oldest), 0)
	}
	return b, nil
}

// logBacklog records a backlog measurement in the metrics and, when the
// oldest event is older than BacklogWarnAge, in the log.
func (o *Outbox) logBacklog(b Backlog, leader bool) {
	if o.metrics != nil {
		o.metrics.rows.Set(float64(b.Rows))
		o.metrics.age.Set(b.Age.Seconds())
	}
	if b.Rows > 0 && b.Age >= o.cfg.BacklogWarnAge {
		o.cfg.Logger.Warn("telegraphy: outbox backlog is old", "table", o.t.name,
			"rows", b.Rows, "oldest_age", b.Age.Round(time.Millisecond), "relay_leader", leader)
	}
}

// Close stops the relay: it publishes what the outbox holds until ctx is
// done, gives up the lease and returns when the goroutine has exited.
// Without a relay it does nothing. Close is idempotent.
func (o *Outbox) Close(ctx context.Context) error {
	if o.relay == nil {
		return nil
	}
	return o.relay.close(ctx)
}
