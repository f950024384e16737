package telegraphy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
	"github.com/telegraphy-go/telegraphy/internal/outbox"
	"gorm.io/gorm"
)

// Errors returned by the plugin. Registration errors are the events
// package's, re-exported here.
var (
	// ErrNoBroker is returned by Initialize when Config.Broker is nil.
	ErrNoBroker = errors.New("telegraphy: Config.Broker is required")
	// ErrBadConfig is wrapped by the error Initialize returns for an
	// invalid Config value; the error names the field.
	ErrBadConfig = errors.New("telegraphy: invalid config")
	// ErrUntracked is returned (as the statement's error) when a registered
	// model's table is written through a connection whose commit the
	// plugin cannot observe: one that does not come from a *sql.DB of a DB
	// the plugin was initialized on (or of its dbresolver sources), such
	// as a *sql.Tx of another *sql.DB, or a connection that was in use
	// while db.Use ran. Emit returns it for such a connection too.
	ErrUntracked = errors.New("telegraphy: connection not tracked by the plugin, events would be wrong")
	// ErrNotInitialized is returned by Emit given a DB the plugin was not
	// initialized on.
	ErrNotInitialized = errors.New("telegraphy: plugin not initialized on this DB")
	// ErrEmptyName is returned by Emit without an event name or type.
	ErrEmptyName = errors.New("telegraphy: empty event name or type")

	// ErrNotStruct is returned by Register for a model that is not a
	// struct or pointer to one.
	ErrNotStruct = events.ErrNotStruct
	// ErrUnknownField is returned by Register when Options.Fields or
	// Options.Exclude names a field the model does not have; the error
	// names it.
	ErrUnknownField = events.ErrUnknownField
	// ErrDuplicate is returned by Register for a model type already
	// registered (by hand or by autodiscovery).
	ErrDuplicate = events.ErrDuplicate
	// ErrNameTaken is returned by Register when another model type uses
	// the event name.
	ErrNameTaken = events.ErrNameTaken
	// ErrNoPrimaryKey is returned by Register for a model without a
	// primary key.
	ErrNoPrimaryKey = events.ErrNoPrimaryKey
)

// Plugin turns GORM writes of registered models into events published
// after commit. Create one with New, register models, then db.Use it. A
// Plugin may be used by one *gorm.DB (and every session derived from it).
type Plugin struct {
	cfg Config

	reg      model.Registry
	notModel sync.Map // reflect.Type -> struct{}: types seen without registration
	discover sync.Mutex

	outbox *outbox.Outbox // outbox mode (internal/outbox); nil when off

	// sqliteReturning makes SQLite updates take their rows from RETURNING
	// as on PostgreSQL, not from the read by key (readback.go); set by
	// benchmarks that compare the two.
	sqliteReturning bool
}

// New returns a Plugin configured by cfg. It does not fail; Initialize
// (called by db.Use) validates cfg.
func New(cfg Config) *Plugin {
	cfg.setDefaults()
	return &Plugin{cfg: cfg}
}

// Name implements gorm.Plugin.
func (p *Plugin) Name() string { return "telegraphy" }

// Register makes the model v (a struct value or a pointer to one) emit
// events with opts. It fails with ErrNotStruct, ErrNoPrimaryKey,
// ErrUnknownField (naming the field), ErrDuplicate or ErrNameTaken.
// Register may be called before or after db.Use.
func (p *Plugin) Register(v any, opts events.Options) error {
	m, err := model.NewModel(v, opts)
	if err != nil {
		return err
	}
	if err := p.reg.Add(m); err != nil {
		return err
	}
	p.notModel.Delete(m.Type)
	return nil
}

// resolverName is the name gorm.io/plugin/dbresolver registers under.
const resolverName = "gorm:db_resolver"

// Initialize implements gorm.Plugin: it installs the plugin's connector on
// the DB's *sql.DB (and on those of its dbresolver sources and replicas,
// whichever was registered first) so that commits and rollbacks can be
// followed, and registers the callbacks. db.ConnPool is left as it is.
func (p *Plugin) Initialize(db *gorm.DB) error {
	if p.cfg.Broker == nil {
		return ErrNoBroker
	}
	if err := p.cfg.check(); err != nil {
		return err
	}
	if db.Callback().Create().Get("telegraphy:before_create") != nil {
		return fmt.Errorf("telegraphy: a telegraphy plugin is already initialized on this DB")
	}
	r, resolver := db.Plugins[resolverName].(interface {
		Call(func(gorm.ConnPool) error) error
	})
	if p.cfg.Outbox.Enabled && (resolver || p.outbox != nil) {
		// A second Initialize is dbresolver opening a source.
		return ErrOutboxResolver
	}
	if err := p.follow(db.ConnPool); err != nil {
		return err
	}
	if resolver {
		// dbresolver was registered first: its sources and replicas were
		// opened without the plugin.
		if err := r.Call(p.follow); err != nil {
			return err
		}
	}

	cb := db.Callback()
	steps := []error{
		cb.Create().Before("gorm:create").Register("telegraphy:before_create", p.beforeCreate),
		cb.Create().After("gorm:create").Before("gorm:save_after_associations").
			Register("telegraphy:collect_create", p.collectCreate),
		cb.Create().After("gorm:after_create").Before("gorm:commit_or_rollback_transaction").
			Register("telegraphy:after_create", p.afterCreate),
		cb.Update().Before("gorm:update").Register("telegraphy:before_update", p.beforeUpdate),
		cb.Update().After("gorm:update").Before("gorm:save_after_associations").
			Register("telegraphy:collect_update", p.collectUpdate),
		cb.Update().After("gorm:after_update").Before("gorm:commit_or_rollback_transaction").
			Register("telegraphy:after_update", p.afterUpdate),
		cb.Delete().Before("gorm:delete").Register("telegraphy:before_delete", p.beforeDelete),
		cb.Delete().After("gorm:delete").Before("gorm:after_delete").
			Register("telegraphy:collect_delete", p.collectDeleted),
		cb.Delete().After("gorm:after_delete").Before("gorm:commit_or_rollback_transaction").
			Register("telegraphy:after_delete", p.afterDelete),
	}
	if err := errors.Join(steps...); err != nil {
		return err
	}
	return p.initOutbox(db)
}

// follow installs the plugin's connector on the *sql.DB behind pool. A
// pool without one (a *sql.Tx or *sql.Conn handed to gorm.Open) is left
// alone: writes through it fail with ErrUntracked.
func (p *Plugin) follow(pool gorm.ConnPool) error {
	if sqlDB := sqlDBOf(pool); sqlDB != nil {
		return followDB(sqlDB)
	}
	return nil
}

// model returns the registered model of the statement's type, registering
// it first when it implements events.Eventer; nil when it emits nothing.
func (p *Plugin) model(db *gorm.DB) *model.Model {
	s := db.Statement.Schema
	if s == nil {
		return nil
	}
	t := s.ModelType
	if m := p.reg.Lookup(t); m != nil {
		return m
	}
	if _, ok := p.notModel.Load(t); ok {
		return nil
	}
	if !model.IsEventer(t) {
		p.notModel.Store(t, struct{}{})
		return nil
	}
	p.discover.Lock()
	defer p.discover.Unlock()
	if m := p.reg.Lookup(t); m != nil {
		return m
	}
	opts := reflect.New(t).Interface().(events.Eventer).TelegraphyEvents()
	if err := p.Register(reflect.New(t).Interface(), opts); err != nil {
		_ = db.AddError(err)
		return nil
	}
	return p.reg.Lookup(t)
}

// track finds the transaction behind a statement's connection.
func (p *Plugin) track(db *gorm.DB) (*txn, txState, error) { return track(db) }

// publish hands msgs to the broker. Errors go to the error handler and
// the log, never to the writer whose transaction committed.
func (p *Plugin) publish(ctx context.Context, msgs []broker.Message) {
	if err := p.publishBounded(ctx, msgs); err != nil {
		err = fmt.Errorf("telegraphy: publish %d event(s) after commit: %w", len(msgs), err)
		p.cfg.Logger.Error("telegraphy: publish failed", "err", err, "events", len(msgs))
		if p.cfg.ErrorHandler != nil {
			p.cfg.ErrorHandler(err)
		}
	}
}

// publishBounded calls Broker.Publish with Config.PublishTimeout, on a
// context that the caller's cancellation does not reach: the transaction
// has committed. A synchronous broker (broker.Synchronous, such as
// broker.Memory) never waits, so it is called without a deadline, which
// would cost a timer per commit.
func (p *Plugin) publishBounded(ctx context.Context, msgs []broker.Message) error {
	if broker.PublishesSynchronously(p.cfg.Broker) {
		return p.cfg.Broker.Publish(context.Background(), msgs...)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.PublishTimeout)
	defer cancel()
	return p.cfg.Broker.Publish(ctx, msgs...)
}

// newMessage encodes the event name with meta and data, giving it a fresh
// meta.id and timestamp, as a message to channels.
func newMessage(name string, meta events.Meta, data []byte, channels []string) (broker.Message, error) {
	now := time.Now()
	meta.ID = events.NewID()
	meta.Timestamp = events.Timestamp(now)
	ev := events.Event{Name: name, Meta: meta, Data: data}
	b, err := ev.Encode()
	if err != nil {
		return broker.Message{}, fmt.Errorf("telegraphy: encode %s event: %w", name, err)
	}
	return broker.Message{EventID: meta.ID, Channels: channels, Data: b, Time: now}, nil
}
