package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// openBenchPostgres opens a fresh PostgreSQL schema with seedRows orders,
// with or without the plugin, as openBench does for SQLite.
func openBenchPostgres(b *testing.B, withPlugin bool, seedRows int) *gorm.DB {
	b.Helper()
	return openBenchOn(b, postgres.Open(testenv.PostgresDSN(b)), withPlugin, seedRows)
}

// BenchmarkUpdateByKeyPostgres is BenchmarkUpdateByKey on PostgreSQL.
// Target: plugin/base at most 1.25.
func BenchmarkUpdateByKeyPostgres(b *testing.B) {
	compareDBs(b, openBenchPostgres(b, false, 100), openBenchPostgres(b, true, 100), "plugin", updateByKey)
}

// BenchmarkUpdateByConditionPostgres is BenchmarkUpdateByCondition on
// PostgreSQL. Target: plugin/base at most 1.6.
func BenchmarkUpdateByConditionPostgres(b *testing.B) {
	compareDBs(b, openBenchPostgres(b, false, 100), openBenchPostgres(b, true, 100), "plugin", updateByCondition)
}
