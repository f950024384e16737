package telegraphy_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// openBench opens a fresh file-backed SQLite database in WAL mode with
// seedRows orders, with or without the plugin. With it, events go to a
// memory broker with one subscriber that drains them.
func openBench(b *testing.B, withPlugin bool, seedRows int) *gorm.DB {
	b.Helper()
	return openBenchOn(b, sqlite.Open(filepath.Join(b.TempDir(), "bench.db")+"?_journal_mode=WAL&_busy_timeout=5000"),
		withPlugin, seedRows)
}

// openBenchOn opens dialector with seedRows orders, with or without the
// plugin, as openBench describes.
func openBenchOn(b *testing.B, dialector gorm.Dialector, withPlugin bool, seedRows int) *gorm.DB {
	b.Helper()
	return openBenchWith(b, dialector, withPlugin, seedRows, nil)
}

// openBenchWith is openBenchOn calling setup, if not nil, on the plugin
// before the DB uses it.
func openBenchWith(b *testing.B, dialector gorm.Dialector, withPlugin bool, seedRows int, setup func(*telegraphy.Plugin)) *gorm.DB {
	b.Helper()
	db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		b.Fatal(err)
	}
	sqlDB, _ := db.DB()
	b.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&Order{}); err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= seedRows; i++ {
		if err := db.Create(&Order{Status: "new", Total: i}).Error; err != nil {
			b.Fatal(err)
		}
	}
	if !withPlugin {
		return db
	}
	p := telegraphy.New(telegraphy.Config{Broker: drainedMemory(b)})
	if err := p.Register(Order{}, events.Options{}); err != nil {
		b.Fatal(err)
	}
	if setup != nil {
		setup(p)
	}
	if err := db.Use(p); err != nil {
		b.Fatal(err)
	}
	return db
}

// drainedMemory returns a memory broker with one subscriber that drains
// the model channel, both closed when b ends (after what b registers
// later).
func drainedMemory(b *testing.B) *broker.Memory {
	ctx := context.Background()
	mem := broker.NewMemory()
	sub, err := mem.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.Add(ctx, "telegraphy_test.Order"); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range sub.C() {
		}
	}()
	b.Cleanup(func() {
		sub.Close()
		wg.Wait()
		mem.Close(ctx)
	})
	return mem
}

// compare runs op on a database without the plugin (the baseline) and on
// one with it, alternating one operation each (in alternating order), so
// both see the same machine noise. It reports the mean ns/op of each side
// and their ratio plugin/base; the benchmark's own ns/op covers both sides.
func compare(b *testing.B, seedRows int, op func(db *gorm.DB, i int) error) {
	compareDBs(b, openBench(b, false, seedRows), openBench(b, true, seedRows), "plugin", op)
}

// compareDBs runs op alternately on base and with, as compare describes,
// and reports "base-ns/op", "<label>-ns/op" and "<label>/base".
func compareDBs(b *testing.B, base, with *gorm.DB, label string, op func(db *gorm.DB, i int) error) {
	var tBase, tWith time.Duration
	timed := func(db *gorm.DB, i int, acc *time.Duration) {
		t0 := time.Now()
		if err := op(db, i); err != nil {
			b.Fatal(err)
		}
		*acc += time.Since(t0)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			timed(base, i, &tBase)
			timed(with, i, &tWith)
		} else {
			timed(with, i, &tWith)
			timed(base, i, &tBase)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(tBase.Nanoseconds())/n, "base-ns/op")
	b.ReportMetric(float64(tWith.Nanoseconds())/n, label+"-ns/op")
	b.ReportMetric(float64(tWith)/float64(tBase), label+"/base")
}

// BenchmarkCreate compares a single-row Create with and without the
// plugin. Target: plugin/base at most 1.10.
func BenchmarkCreate(b *testing.B) {
	compare(b, 0, func(db *gorm.DB, i int) error {
		return db.Create(&Order{Status: "new", Total: i, Note: "benchmark"}).Error
	})
}

// BenchmarkUpdateByKey measures the update strategy for one loaded row:
// on SQLite, the UPDATE as GORM built it, then the row read by key in the
// same driver call. Target: plugin/base at most 1.25.
func BenchmarkUpdateByKey(b *testing.B) {
	compare(b, 100, updateByKey)
}

// BenchmarkUpdateByCondition measures the update strategy for an update by
// condition touching 10 rows, one event each: on SQLite, the write lock,
// the keys selected with the statement's WHERE, the UPDATE, then the rows
// read by key, in one driver call. Target: plugin/base at most 1.6.
func BenchmarkUpdateByCondition(b *testing.B) {
	compare(b, 100, updateByCondition)
}

func updateByKey(db *gorm.DB, i int) error {
	return db.Model(&Order{ID: uint(i%100 + 1)}).Update("total", i).Error
}

func updateByCondition(db *gorm.DB, i int) error {
	lo := i%90 + 1
	return db.Model(&Order{}).Where("id BETWEEN ? AND ?", lo, lo+9).Update("total", i).Error
}

// BenchmarkUpdateByKeyReturning compares, on SQLite, the plugin reading
// the row by key after the UPDATE ("reread") with the plugin taking it
// from RETURNING (the baseline here, "base"), as it does on PostgreSQL.
func BenchmarkUpdateByKeyReturning(b *testing.B) {
	compareStrategies(b, updateByKey)
}

// BenchmarkUpdateByConditionReturning is BenchmarkUpdateByKeyReturning for
// the update by condition of 10 rows.
func BenchmarkUpdateByConditionReturning(b *testing.B) {
	compareStrategies(b, updateByCondition)
}

func compareStrategies(b *testing.B, op func(db *gorm.DB, i int) error) {
	open := func(setup func(*telegraphy.Plugin)) *gorm.DB {
		return openBenchWith(b, sqlite.Open(filepath.Join(b.TempDir(), "bench.db")+"?_journal_mode=WAL&_busy_timeout=5000"), true, 100, setup)
	}
	compareDBs(b, open(telegraphy.UseReturningOnSQLite), open(nil), "reread", op)
}

// BenchmarkUpsert compares a two-row upsert (one row updated by its
// conflict clause, one inserted) with and without the plugin, which reads
// the rows by key before and after the statement.
func BenchmarkUpsert(b *testing.B) {
	compare(b, 100, func(db *gorm.DB, i int) error {
		return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"total"})}).
			Create(&[]Order{{ID: uint(i%100 + 1), Status: "new", Total: i}, {Status: "new", Total: i}}).Error
	})
}
