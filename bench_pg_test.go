package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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

// BenchmarkUpsertPostgres is BenchmarkUpsert on PostgreSQL: the statement
// reports which row it inserted and which it updated (RETURNING with
// xmax), after a locked read of the row it may update.
func BenchmarkUpsertPostgres(b *testing.B) {
	compareDBs(b, openBenchPostgres(b, false, 100), openBenchPostgres(b, true, 100), "plugin", func(db *gorm.DB, i int) error {
		return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"total"})}).
			Create(&[]Order{{ID: uint(i%100 + 1), Status: "new", Total: i}, {Status: "new", Total: i}}).Error
	})
}

// BenchmarkUpsertDoNothingPostgres: a two-row upsert with DO NOTHING,
// which the plugin answers from the statement alone (no read before).
func BenchmarkUpsertDoNothingPostgres(b *testing.B) {
	compareDBs(b, openBenchPostgres(b, false, 100), openBenchPostgres(b, true, 100), "plugin", func(db *gorm.DB, i int) error {
		return db.Clauses(clause.OnConflict{DoNothing: true}).
			Create(&[]Order{{ID: uint(i%100 + 1), Status: "new", Total: i}, {Status: "new", Total: i}}).Error
	})
}
