package telegraphy

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// On MySQL and MariaDB the rows an update or delete by condition (and an
// upsert) will touch are read and locked before the statement. At
// REPEATABLE READ and SERIALIZABLE the locking read takes gap locks, so
// no row can enter the condition before the statement runs; below, it
// takes none, and the plugin sends a bulk event instead of per-row
// events. The isolation level of a transaction is the one BeginTx was
// given, or else the session's (@@transaction_isolation, @@tx_isolation
// before MariaDB 11.1), asked once per transaction.

var isolationVariable sync.Map // serverKey -> string: the variable the server knows

// belowRepeatableRead reports whether the statement's MySQL transaction
// runs at READ COMMITTED or READ UNCOMMITTED.
func (p *Plugin) belowRepeatableRead(db *gorm.DB, st *stmtState) (bool, error) {
	t := st.tx
	if t != nil {
		switch t.isolation {
		case sql.LevelReadUncommitted, sql.LevelReadCommitted, sql.LevelWriteCommitted:
			return true, nil
		case sql.LevelDefault:
		default:
			return false, nil
		}
		t.mu.Lock()
		weak := t.weak
		t.mu.Unlock()
		if weak != 0 {
			return weak > 0, nil
		}
	}
	level, err := p.sessionIsolation(db)
	if err != nil {
		return false, err
	}
	weak := strings.Contains(level, "COMMITTED") // READ-COMMITTED, READ-UNCOMMITTED
	if t != nil {
		t.mu.Lock()
		t.weak = -1
		if weak {
			t.weak = 1
		}
		t.mu.Unlock()
	}
	return weak, nil
}

// sessionIsolation asks the server for the session's isolation level.
func (p *Plugin) sessionIsolation(db *gorm.DB) (string, error) {
	stmt := db.Statement
	names := []string{"transaction_isolation", "tx_isolation"}
	if v, ok := isolationVariable.Load(serverKey(db)); ok {
		names = []string{v.(string)}
	}
	var err error
	for _, name := range names {
		var level string
		if err = queryOne(stmt, &level, "SELECT @@"+name); err == nil {
			isolationVariable.Store(serverKey(db), name)
			return strings.ToUpper(level), nil
		}
	}
	return "", fmt.Errorf("telegraphy: ask the isolation level: %w", err)
}

// queryOne runs query on the statement's connection and scans its one
// row into dest. It does not use QueryRowContext: GORM's prepared
// statement pools answer a query they failed to prepare (MariaDB before
// 11.1 refuses @@transaction_isolation, for one) with an empty *sql.Row,
// whose Scan panics.
func queryOne(stmt *gorm.Statement, dest any, query string, args ...any) error {
	return queryRow(stmt, []any{dest}, query, args...)
}

// queryRow is queryOne for a row of several columns, scanned into dests.
func queryRow(stmt *gorm.Statement, dests []any, query string, args ...any) error {
	rows, err := stmt.ConnPool.QueryContext(stmt.Context, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dests...); err != nil {
		return err
	}
	return rows.Close()
}
