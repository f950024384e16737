//go:build cgo

package bench

import (
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

// openSQLite returns the dialector of the SQLite database at dsn.
func openSQLite(dsn string) (gorm.Dialector, error) { return sqlite.Open(dsn), nil }
