package telegraphy_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// benchWrites returns a benchmark of op on a fresh file-backed SQLite
// database in WAL mode, with or without the plugin. With it, events go to a
// memory broker with one subscriber that drains them.
func benchWrites(withPlugin bool, seedRows int, op func(db *gorm.DB, i int) error) func(b *testing.B) {
	return func(b *testing.B) {
		dir, err := os.MkdirTemp("", "telegraphy-bench")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
		db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "bench.db")+"?_journal_mode=WAL&_busy_timeout=5000"),
			&gorm.Config{Logger: logger.Discard})
		if err != nil {
			b.Fatal(err)
		}
		sqlDB, _ := db.DB()
		defer sqlDB.Close()
		if err := db.AutoMigrate(&Order{}); err != nil {
			b.Fatal(err)
		}
		for i := 1; i <= seedRows; i++ {
			if err := db.Create(&Order{Status: "new", Total: i}).Error; err != nil {
				b.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		if withPlugin {
			ctx := context.Background()
			mem := broker.NewMemory()
			defer mem.Close(ctx)
			sub, err := mem.Subscribe(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := sub.Add(ctx, "telegraphy_test.Order"); err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range sub.C() {
				}
			}()
			defer wg.Wait()
			defer sub.Close()
			p := telegraphy.New(telegraphy.Config{Broker: mem})
			if err := p.Register(Order{}, events.Options{}); err != nil {
				b.Fatal(err)
			}
			if err := db.Use(p); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := op(db, i); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
	}
}

// compare runs the baseline and then the plugin variant of op as
// sub-benchmarks, and a third sub-benchmark "ratio" that reports their
// ns/op ratio (plugin / base) measured in this same run.
func compare(b *testing.B, seedRows int, op func(db *gorm.DB, i int) error) {
	var ns [2]float64
	for i, with := range []bool{false, true} {
		name := map[bool]string{false: "base", true: "plugin"}[with]
		run := benchWrites(with, seedRows, op)
		b.Run(name, func(b *testing.B) {
			run(b)
			ns[i] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
	}
	b.Run("ratio", func(b *testing.B) {
		if ns[0] > 0 {
			b.ReportMetric(ns[1]/ns[0], "plugin/base")
		}
	})
}

// BenchmarkCreate compares a single-row Create with and without the
// plugin. Target: ratio at most 1.10.
func BenchmarkCreate(b *testing.B) {
	compare(b, 0, func(db *gorm.DB, i int) error {
		return db.Create(&Order{Status: "new", Total: i, Note: "benchmark"}).Error
	})
}

// BenchmarkUpdateByKey measures the update strategy for one loaded row:
// the plugin re-reads the row after the UPDATE.
func BenchmarkUpdateByKey(b *testing.B) {
	compare(b, 100, func(db *gorm.DB, i int) error {
		return db.Model(&Order{ID: uint(i%100 + 1)}).Update("total", i).Error
	})
}

// BenchmarkUpdateByCondition measures the update strategy for an update by
// condition touching 10 rows: the plugin selects their keys first and
// re-reads them after.
func BenchmarkUpdateByCondition(b *testing.B) {
	compare(b, 100, func(db *gorm.DB, i int) error {
		lo := i%90 + 1
		return db.Model(&Order{}).Where("id BETWEEN ? AND ?", lo, lo+9).Update("total", i).Error
	})
}
