package telegraphy_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// openOutboxBench opens a database on dl with the Order table and, with
// outbox, a plugin in outbox mode whose relay publishes to a memory broker
// with one subscriber draining the model channel.
func openOutboxBench(b *testing.B, dl gorm.Dialector, outbox bool) *gorm.DB {
	b.Helper()
	db, err := gorm.Open(dl, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	sqlDB, _ := db.DB()
	b.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&Order{}); err != nil {
		b.Fatal(err)
	}
	if !outbox {
		return db
	}
	p := telegraphy.New(telegraphy.Config{Broker: drainedMemory(b), Outbox: telegraphy.OutboxConfig{Enabled: true}})
	if err := p.Register(Order{}, events.Options{}); err != nil {
		b.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return db
}

// BenchmarkOutboxCreate compares a single-row Create in outbox mode (the
// relay running, publishing to a memory broker) with plain GORM, on a
// file-backed SQLite database in WAL mode and on PostgreSQL, alternating
// one operation each so both sides see the same machine noise. It reports
// the mean ns/op of each side and the ratio outbox/base. Target: at most
// 1.6.
func BenchmarkOutboxCreate(b *testing.B) {
	for _, d := range []struct {
		name string
		open func(b *testing.B) gorm.Dialector
	}{
		{"sqlite", func(b *testing.B) gorm.Dialector { return sqliteDialector(b) }},
		{"postgres", func(b *testing.B) gorm.Dialector { return postgres.Open(testenv.PostgresDSN(b)) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			base, with := openOutboxBench(b, d.open(b), false), openOutboxBench(b, d.open(b), true)
			compareDBs(b, base, with, "outbox", func(db *gorm.DB, i int) error {
				return db.Create(&Order{Status: "new", Total: i, Note: "benchmark"}).Error
			})
		})
	}
}

// BenchmarkOutboxRelay measures the relay alone: b.N events are committed
// to the outbox with no relay running, then a relay publishes them all,
// to a memory broker or through Redis (confirmed by its marker), on SQLite
// (WAL) and PostgreSQL. A subscriber of the model channel counts them; the
// benchmark reports events/s from the first event it receives to the last,
// which leaves the relay's start-up out.
func BenchmarkOutboxRelay(b *testing.B) {
	for _, d := range []struct {
		name string
		open func(b *testing.B) gorm.Dialector
	}{
		{"sqlite", func(b *testing.B) gorm.Dialector { return sqliteDialector(b) }},
		{"postgres", func(b *testing.B) gorm.Dialector { return postgres.Open(testenv.PostgresDSN(b)) }},
	} {
		for _, bk := range []string{"memory", "redis"} {
			b.Run(fmt.Sprintf("%s/%s", d.name, bk), func(b *testing.B) {
				var bus broker.Broker = broker.NewMemory(broker.MemoryConfig{SubscriberBuffer: b.N + 1})
				if bk == "redis" {
					rb, err := redisbroker.New(redisbroker.Config{URL: testenv.StartRedis(b).URL})
					if err != nil {
						b.Fatal(err)
					}
					bus = rb
				}
				b.Cleanup(func() { _ = bus.Close(context.Background()) })
				dl := d.open(b)
				w := openOutbox(b, dl, nil, telegraphy.Config{Broker: bus, Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}})
				orders := make([]Order, b.N)
				for i := range orders {
					orders[i] = Order{Status: "new", Total: i}
				}
				if err := w.db.CreateInBatches(orders, 500).Error; err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				sub, err := bus.Subscribe(ctx)
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Close()
				if err := sub.Add(ctx, "telegraphy_test.Order"); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				openOutbox(b, dl, nil, telegraphy.Config{Broker: bus, Logger: slog.New(slog.NewTextHandler(discard{}, nil)),
					Outbox: telegraphy.OutboxConfig{Enabled: true}})
				var first, last time.Time
				timeout := time.After(5 * time.Minute)
				for got := 0; got < b.N; got++ {
					select {
					case <-sub.C():
					case <-timeout:
						b.Fatalf("received %d of %d events (%d dropped by the subscription)", got, b.N, sub.Dropped())
					}
					if got == 0 {
						first = time.Now()
					}
				}
				last = time.Now()
				b.StopTimer()
				if b.N > 1 {
					b.ReportMetric(float64(b.N-1)/last.Sub(first).Seconds(), "events/s")
				}
			})
		}
	}
}
