package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// openBenchPostgres opens a fresh PostgreSQL schema with seedRows orders,
// with or without the plugin, as openBench does for SQLite.
func openBenchPostgres(b *testing.B, withPlugin bool, seedRows int) *gorm.DB {
	b.Helper()
	db, err := gorm.Open(postgres.Open(testenv.PostgresDSN(b)), &gorm.Config{Logger: logger.Discard})
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
	if err := db.Use(p); err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkUpdateByKeyPostgres is BenchmarkUpdateByKey on PostgreSQL.
// Target: plugin/base at most 1.25.
func BenchmarkUpdateByKeyPostgres(b *testing.B) {
	compareDBs(b, openBenchPostgres(b, false, 100), openBenchPostgres(b, true, 100), "plugin", func(db *gorm.DB, i int) error {
		return db.Model(&Order{ID: uint(i%100 + 1)}).Update("total", i).Error
	})
}

// BenchmarkUpdateByConditionPostgres is BenchmarkUpdateByCondition on
// PostgreSQL. Target: plugin/base at most 1.6.
func BenchmarkUpdateByConditionPostgres(b *testing.B) {
	compareDBs(b, openBenchPostgres(b, false, 100), openBenchPostgres(b, true, 100), "plugin", func(db *gorm.DB, i int) error {
		lo := i%90 + 1
		return db.Model(&Order{}).Where("id BETWEEN ? AND ?", lo, lo+9).Update("total", i).Error
	})
}
