package telegraphy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/telegraphy-go/telegraphy/broker"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
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
	// telegraphy_outbox_oldest_age_seconds, telegraphy_outbox_published_total
	// and telegraphy_outbox_relay_leader. Zero value means no metrics.
	Registerer prometheus.Registerer
}

func (c *OutboxConfig) setDefaults() {
	if c.Table == "" {
		c.Table = DefaultOutboxTable
	}
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
}

// outboxRow is one event waiting in the outbox: the already-encoded
// broker.Message. ID orders the rows: the relay publishes them by
// increasing ID.
type outboxRow struct {
	ID        uint64 `gorm:"primaryKey;autoIncrement"`
	EventID   string `gorm:"size:64;not null"`
	Channels  string `gorm:"type:text;not null"` // JSON array of channel names
	Data      []byte `gorm:"not null"`
	CreatedNs int64  `gorm:"not null"` // unix nanoseconds of the event
	// Origin is broker.EncodeOrigin of the message's origin, "" for none.
	Origin string `gorm:"size:511;not null;default:''"`
}

// outboxLease is the one row per outbox table that says which relay may
// publish. Version grows with every renewal; a relay that sees it standing
// still for LeaseTTL may take the lease over.
type outboxLease struct {
	Name    string `gorm:"primaryKey;size:191"`
	Holder  string `gorm:"size:64;not null;default:''"`
	Version int64  `gorm:"not null;default:0"`
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

// outbox holds what outbox mode needs: the table names, the relay's
// handle on the database and the relay itself.
type outbox struct {
	cfg    OutboxConfig
	p      *Plugin
	db     *gorm.DB // session for the relay and backlog queries
	table  string
	lease  string
	insert func(n int) string // INSERT statement for n rows
	relay  *relay             // nil with NoRelay

	metrics *outboxMetrics
}

// initOutbox prepares outbox mode on db, the one DB the plugin is
// initialized on: it creates the tables and starts the relay.
func (p *Plugin) initOutbox(db *gorm.DB) error {
	if !p.cfg.Outbox.Enabled || p.outbox != nil {
		return nil
	}
	cfg := p.cfg.Outbox
	cfg.setDefaults()
	o := &outbox{
		cfg:   cfg,
		p:     p,
		table: cfg.Table,
		lease: cfg.Table + "_lease",
		db: db.Session(&gorm.Session{NewDB: true, SkipHooks: true, SkipDefaultTransaction: true,
			Logger: db.Logger.LogMode(logger.Silent)}),
	}
	if err := o.migrate(); err != nil {
		return err
	}
	o.insert = insertStatement(db.Dialector, o.table)
	if cfg.Registerer != nil {
		m, err := newOutboxMetrics(cfg.Registerer)
		if err != nil {
			return err
		}
		o.metrics = m
	}
	if !cfg.NoRelay {
		o.relay = newRelay(o)
	}
	p.outbox = o
	if o.relay != nil {
		o.relay.start()
	}
	return nil
}

// migrate creates the outbox and lease tables and the lease row.
func (o *outbox) migrate() error {
	if err := o.db.Table(o.table).AutoMigrate(&outboxRow{}); err != nil {
		return fmt.Errorf("telegraphy: create outbox table %s: %w", o.table, err)
	}
	if err := o.db.Table(o.lease).AutoMigrate(&outboxLease{}); err != nil {
		return fmt.Errorf("telegraphy: create outbox lease table %s: %w", o.lease, err)
	}
	err := o.db.Table(o.lease).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&outboxLease{Name: o.table}).Error
	if err != nil {
		return fmt.Errorf("telegraphy: create outbox lease row: %w", err)
	}
	return nil
}

// insertStatement returns a function building the INSERT of n outbox
// rows, with the dialect's quoting and placeholders.
func insertStatement(d gorm.Dialector, table string) func(n int) string {
	var head strings.Builder
	head.WriteString("INSERT INTO ")
	d.QuoteTo(&head, table)
	head.WriteString(" (")
	for i, c := range []string{"event_id", "channels", "data", "created_ns", "origin"} {
		if i > 0 {
			head.WriteString(",")
		}
		d.QuoteTo(&head, c)
	}
	head.WriteString(") VALUES ")
	prefix := head.String()
	return func(n int) string {
		var b strings.Builder
		b.WriteString(prefix)
		stmt := &gorm.Statement{}
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := 0; j < 5; j++ {
				if j > 0 {
					b.WriteByte(',')
				}
				stmt.Vars = append(stmt.Vars, nil)
				d.BindVarTo(&b, stmt, nil)
			}
			b.WriteByte(')')
		}
		return b.String()
	}
}

// insertChunk bounds the rows of one INSERT, well below every dialect's
// limit on placeholders (65,535 on PostgreSQL and MySQL, 32,766 on SQLite).
const insertChunk = 1000

// write inserts msgs into the outbox in order, with exec running each
// INSERT in the committing transaction.
func (o *outbox) write(ctx context.Context, exec func(ctx context.Context, query string, args ...any) error, msgs []broker.Message) error {
	for len(msgs) > 0 {
		n := min(len(msgs), insertChunk)
		args := make([]any, 0, 5*n)
		for _, m := range msgs[:n] {
			ch, err := json.Marshal(m.Channels)
			if err != nil {
				return err
			}
			t := m.Time
			if t.IsZero() {
				t = time.Now()
			}
			args = append(args, m.EventID, string(ch), m.Data, t.UnixNano(), broker.EncodeOrigin(m.Origin))
		}
		if err := exec(ctx, o.insert(n), args...); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// writeNow inserts one event into the outbox on its own (Emit outside a
// transaction) and wakes the relay.
func (o *outbox) writeNow(ctx context.Context, msg broker.Message) error {
	ch, err := json.Marshal(msg.Channels)
	if err != nil {
		return err
	}
	_, err = o.db.Statement.ConnPool.ExecContext(ctx, o.insert(1), msg.EventID, string(ch), msg.Data, msg.Time.UnixNano(), broker.EncodeOrigin(msg.Origin))
	if err != nil {
		return fmt.Errorf("telegraphy: write %s event to the outbox: %w", msg.EventID, err)
	}
	if o.relay != nil {
		o.relay.wake()
	}
	return nil
}

// committed is called after a transaction that wrote to the outbox
// committed: it wakes the relay.
func (o *outbox) committed() {
	if o.relay != nil {
		o.relay.wake()
	}
}

// backlog measures what waits in the outbox table.
func (o *outbox) backlog(ctx context.Context) (OutboxBacklog, error) {
	var b OutboxBacklog
	db := o.db.WithContext(ctx)
	if err := db.Table(o.table).Count(&b.Rows).Error; err != nil {
		return b, fmt.Errorf("telegraphy: outbox backlog: %w", err)
	}
	if b.Rows == 0 {
		return b, nil
	}
	var oldest []int64
	if err := db.Table(o.table).Order("id").Limit(1).Pluck("created_ns", &oldest).Error; err != nil {
		return b, fmt.Errorf("telegraphy: outbox backlog: %w", err)
	}
	if len(oldest) == 1 {
		b.Oldest = time.Unix(0, oldest[0])
		b.Age = max(time.Since(b.Oldest), 0)
	}
	return b, nil
}

// OutboxBacklog returns what waits in the outbox table: the number of
// events not yet published and the age of the oldest. It fails with
// ErrOutboxOff when outbox mode is off or the plugin is not initialized.
func (p *Plugin) OutboxBacklog(ctx context.Context) (OutboxBacklog, error) {
	if p.outbox == nil {
		return OutboxBacklog{}, ErrOutboxOff
	}
	return p.outbox.backlog(ctx)
}

// ErrOutboxOff is returned by OutboxBacklog when outbox mode is off or the
// plugin has not been initialized.
var ErrOutboxOff = errors.New("telegraphy: outbox mode is off")

// outboxMetrics are the relay's Prometheus metrics.
type outboxMetrics struct {
	rows      prometheus.Gauge
	age       prometheus.Gauge
	published prometheus.Counter
	leader    prometheus.Gauge
}

func newOutboxMetrics(r prometheus.Registerer) (*outboxMetrics, error) {
	m := &outboxMetrics{
		rows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "telegraphy_outbox_backlog_rows",
			Help: "Events waiting in the outbox table, as last measured by this process's relay."}),
		age: prometheus.NewGauge(prometheus.GaugeOpts{Name: "telegraphy_outbox_oldest_age_seconds",
			Help: "Age of the oldest event waiting in the outbox table, as last measured; 0 when empty."}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "telegraphy_outbox_published_total",
			Help: "Outbox events this process's relay published and deleted."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "telegraphy_outbox_relay_leader",
			Help: "1 while this process's relay holds the outbox lease."}),
	}
	for _, c := range []prometheus.Collector{m.rows, m.age, m.published, m.leader} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("telegraphy: register outbox metrics: %w", err)
		}
	}
	return m, nil
}

// logBacklog records a backlog measurement in the metrics and, when the
// oldest event is older than BacklogWarnAge, in the log.
func (o *outbox) logBacklog(b OutboxBacklog, leader bool) {
	if o.metrics != nil {
		o.metrics.rows.Set(float64(b.Rows))
		o.metrics.age.Set(b.Age.Seconds())
	}
	if b.Rows > 0 && b.Age >= o.cfg.BacklogWarnAge {
		o.p.cfg.Logger.Warn("telegraphy: outbox backlog is old", "table", o.table,
			"rows", b.Rows, "oldest_age", b.Age.Round(time.Millisecond), "relay_leader", leader)
	}
}

// logger returns the plugin's logger.
func (o *outbox) logger() *slog.Logger { return o.p.cfg.Logger }
