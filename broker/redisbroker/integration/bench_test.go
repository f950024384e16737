package integration

import (
	"context"
	"path/filepath"
	"slices"
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
// in rounds of one block of each (in rotating order) so that the box's
// noise hits all alike. It reports the costs and the median of the rounds'
// ratios (target: at most 1.15), and checks
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
	var redisRatios, memoryRatios []float64
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
	for round := 0; round*block < b.N; round++ {
		n := min(block, b.N-round*block)
		// Rotate the order so that none of the three always runs first.
		var tp, tr, tm time.Duration
		for k := range 3 {
			switch (round + k) % 3 {
			case 0:
				tp = run(plain, n)
			case 1:
				tr = run(withRedis, n)
			case 2:
				tm = run(withMemory, n)
			}
		}
		plainTime, redisTime, memoryTime = plainTime+tp, redisTime+tr, memoryTime+tm
		redisRatios = append(redisRatios, tr.Seconds()/tp.Seconds())
		memoryRatios = append(memoryRatios, tm.Seconds()/tp.Seconds())
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
	// The median of the per-round ratios: a burst of load from elsewhere
	// on the machine spoils a round, not the result.
	b.ReportMetric(median(redisRatios), "x-plain")
	b.ReportMetric(median(memoryRatios), "memory-x-plain")
	b.ReportMetric(0, "ns/op")
}

// block is how many Creates each variant runs per round.
const block = 50

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
