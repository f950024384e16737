package integration

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

func openSQLite(b *testing.B) *gorm.DB {
	b.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(b.TempDir(), "bench.db")+"?_journal_mode=WAL&_busy_timeout=5000"),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	sqlDB, _ := db.DB()
	b.Cleanup(func() { _ = sqlDB.Close() })
	if err := db.AutoMigrate(&Order{}); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkCreate measures a single-row Create (its own transaction) on a
// SQLite WAL file, with the plugin publishing through the Redis broker,
// against plain GORM on another file of the same kind, in the same run,
// alternating blocks of 100 so that the box's noise hits both alike. It
// reports both costs and their ratio (target: at most 1.15), and checks
// that every event reached Redis. The plugin with the in-process broker is
// measured alongside (memory-x-plain), to tell the plugin's share from the
// Redis broker's.
func BenchmarkCreate(b *testing.B) {
	url := testenv.StartRedis(b).URL
	plain := openSQLite(b)
	withRedis := openSQLite(b)
	bus, err := redisbroker.New(redisbroker.Config{URL: url})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close(context.Background())
	p := telegraphy.New(telegraphy.Config{Broker: bus})
	if err := p.Register(Order{}, events.Options{Name: "shop.Order"}); err != nil {
		b.Fatal(err)
	}
	if err := withRedis.Use(p); err != nil {
		b.Fatal(err)
	}
	withMemory := openSQLite(b)
	pm := telegraphy.New(telegraphy.Config{Broker: broker.NewMemory()})
	if err := pm.Register(Order{}, events.Options{Name: "shop.Order"}); err != nil {
		b.Fatal(err)
	}
	if err := withMemory.Use(pm); err != nil {
		b.Fatal(err)
	}
	var plainTime, redisTime, memoryTime time.Duration
	run := func(db *gorm.DB, n int) time.Duration {
		start := time.Now()
		for range n {
			if err := db.Create(&Order{Status: "new"}).Error; err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += 100 {
		n := min(100, b.N-done)
		plainTime += run(plain, n)
		redisTime += run(withRedis, n)
		memoryTime += run(withMemory, n)
	}
	b.StopTimer()
	// Two channels per event: the model's and the record's.
	deadline := time.Now().Add(30 * time.Second)
	for bus.Stats().Published < uint64(2*b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := bus.Stats(); st.Published != uint64(2*b.N) || st.Dropped != 0 {
		b.Fatalf("published %d of %d, dropped %d", st.Published, 2*b.N, st.Dropped)
	}
	b.ReportMetric(float64(plainTime.Nanoseconds())/float64(b.N), "plain-ns/op")
	b.ReportMetric(float64(redisTime.Nanoseconds())/float64(b.N), "redis-ns/op")
	b.ReportMetric(redisTime.Seconds()/plainTime.Seconds(), "x-plain")
	b.ReportMetric(memoryTime.Seconds()/plainTime.Seconds(), "memory-x-plain")
	b.ReportMetric(0, "ns/op")
}
