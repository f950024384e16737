//go:build !cgo

package bench

import (
	"errors"

	"gorm.io/gorm"
)

// openSQLite fails: the SQLite driver (github.com/mattn/go-sqlite3) is C,
// and this binary was built without cgo.
func openSQLite(string) (gorm.Dialector, error) {
	return nil, errors.New("--db sqlite needs a binary built with cgo: a C compiler (gcc or clang) and CGO_ENABLED=1")
}
