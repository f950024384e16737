package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// benchRow is the model whose creates publish the events in --db mode.
type benchRow struct {
	ID      uint64 `gorm:"primaryKey" json:"id"`
	Seq     int64  `json:"seq"`
	SentNS  int64  `json:"sent_ns"`
	Channel string `json:"channel"`
}

// dbPublisher creates one benchRow per event through GORM with the
// Telegraphy plugin, so each event takes the application's path: insert,
// commit, then the plugin's publish.
type dbPublisher struct {
	db     *gorm.DB
	dir    string
	bus    broker.Broker
	ownBus bool
	rec    *recordingBroker
}

// recordingBroker notes when the plugin publishes each measured event (right
// after its commit), so that latency runs from commit to receipt.
type recordingBroker struct {
	broker.Broker
	at []atomic.Int64 // by seq: clock() at publish; zero until published
}

func (r *recordingBroker) Publish(ctx context.Context, msgs ...broker.Message) error {
	t := clock()
	for _, m := range msgs {
		if seq, ok := intField(m.Data, keySeq); ok && seq >= 0 && seq < int64(len(r.at)) {
			r.at[seq].CompareAndSwap(0, t)
		}
	}
	return r.Broker.Publish(ctx, msgs...)
}

// publishedAt returns when event seq was published, if it was.
func (r *recordingBroker) publishedAt(seq int64) (int64, bool) {
	if seq < 0 || seq >= int64(len(r.at)) {
		return 0, false
	}
	t := r.at[seq].Load()
	return t, t != 0
}

func newDBPublisher(cfg Config, bus broker.Broker, ownBus bool) (*dbPublisher, error) {
	dir, err := os.MkdirTemp("", "telegraphy-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: db: %w", err)
	}
	dsn := filepath.Join(dir, "bench.db") + "?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=5000"
	dialector, err := openSQLite(dsn)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: db: %w", err)
	}
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bench: db: %w", err)
	}
	p := &dbPublisher{db: db, dir: dir, bus: bus, ownBus: ownBus}
	p.rec = &recordingBroker{Broker: bus, at: make([]atomic.Int64, measuredEvents(cfg))}
	plugin := telegraphy.New(telegraphy.Config{Broker: p.rec})
	err = errors.Join(
		db.AutoMigrate(&benchRow{}),
		plugin.Register(benchRow{}, events.Options{
			Name:       "bench.Row",
			Exclude:    []string{"Channel"},
			Operations: events.OpCreate,
			Channels:   func(m any) []string { return []string{m.(*benchRow).Channel} },
		}),
		db.Use(plugin),
	)
	if err != nil {
		_ = p.close(context.Background())
		return nil, fmt.Errorf("bench: db: %w", err)
	}
	return p, nil
}

func (p *dbPublisher) publish(ctx context.Context, e event) error {
	return p.db.WithContext(ctx).Create(&benchRow{Seq: e.Seq, SentNS: e.SentNS, Channel: e.Channel}).Error
}

func (p *dbPublisher) publishedAt(seq int64) (int64, bool) { return p.rec.publishedAt(seq) }

func (p *dbPublisher) close(ctx context.Context) error {
	var errs []error
	if sqlDB, err := p.db.DB(); err == nil {
		errs = append(errs, sqlDB.Close())
	}
	errs = append(errs, os.RemoveAll(p.dir))
	if p.ownBus {
		errs = append(errs, p.bus.Close(ctx))
	}
	return errors.Join(errs...)
}
