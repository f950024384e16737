package telegraphy

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"gorm.io/gorm"
)

// An update (or soft delete, which GORM runs as an update) that carries
// the caller's own clause.Returning is run by GORM
// as a query whose rows are the caller's, so the plugin cannot read them.
// On PostgreSQL it wraps the statement in a data-modifying CTE that also
// records the keys of the rows it returned in a transaction-local setting,
// and hands GORM the statement's rows unchanged (plus one column GORM's
// scan into the model ignores). The keys are read back after the
// statement: exactly the rows it changed, whatever ran concurrently.

const stashSetting = "telegraphy.keys"

// stashPool stands in for the statement's connection until GORM runs the
// statement's query.
type stashPool struct {
	gorm.ConnPool
	stmt      *gorm.Statement
	ref       string // the table as the statement names it (tableRef)
	done      bool
	collected bool // unstash ran
	deleted   bool // a hard delete: the rows whole (stashRowsQuery), not only keys
	unparsed  bool // GORM's query ran as it built it: nothing recorded

	again func() (gorm.ConnPool, error) // Plugin.beginAgain (connAgain)
}

// QueryContext runs the statement's query wrapped so that it records its
// keys.
func (r *stashPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if r.done || query != r.stmt.SQL.String() {
		return r.ConnPool.QueryContext(ctx, query, args...)
	}
	r.done = true
	r.stmt.ConnPool = r.ConnPool
	wrapped := stashQuery(r.stmt, r.ref, query)
	if r.deleted {
		wrapped = stashRowsQuery(r.stmt, r.ref, query, false)
	}
	rows, err := r.ConnPool.QueryContext(ctx, wrapped, args...)
	if err == nil || !syntaxError("postgres", err) {
		return rows, err
	}
	// Nothing ran, and the error's position is in the wrapping query: run
	// GORM's query as it built it, for its own error (see returningPool).
	r.unparsed = true
	pool, err2 := connAgain(r.again, r.ConnPool)
	if err2 != nil {
		return nil, err2
	}
	r.ConnPool = pool
	rows, err2 = pool.QueryContext(ctx, query, args...)
	if err2 != nil {
		return nil, parsedError(err, err2)
	}
	return rows, nil
}

// stashQuery wraps an UPDATE ... RETURNING so that it also records the
// keys of the rows it returns.
func stashQuery(stmt *gorm.Statement, ref, query string) string {
	table := stmt.Quote(ref)
	var keys, cols strings.Builder
	for i, n := range stmt.Schema.PrimaryFieldDBNames {
		fmt.Fprintf(&keys, `, %s.%s::text AS "telegraphy_k%d"`, table, stmt.Quote(n), i)
		if i > 0 {
			cols.WriteString(", ")
		}
		fmt.Fprintf(&cols, `"telegraphy_k%d"`, i)
	}
	return `WITH "telegraphy_w" AS (` + strings.TrimRight(query, " ;\n\t") + keys.String() +
		"\n), \"telegraphy_s\" AS (SELECT set_config('" + stashSetting + "', COALESCE(json_agg(json_build_array(" + cols.String() +
		"))::text, '[]'), true) FROM \"telegraphy_w\")\nSELECT \"telegraphy_w\".* FROM \"telegraphy_w\" CROSS JOIN \"telegraphy_s\""
}

// stash makes an update (or soft delete) with the caller's RETURNING
// record its keys;
// false when it cannot (not PostgreSQL, no table name to qualify the key
// with, a statement GORM does not scan into the model).
func (p *Plugin) stash(db *gorm.DB, st *stmtState) bool {
	return p.stashWith(db, st, false)
}

// stashDeleted makes a hard delete with the caller's RETURNING on
// PostgreSQL record the rows it deleted; false when it cannot, as stash.
func (p *Plugin) stashDeleted(db *gorm.DB, st *stmtState) bool {
	return p.stashWith(db, st, true)
}

func (p *Plugin) stashWith(db *gorm.DB, st *stmtState, deleted bool) bool {
	stmt := db.Statement
	if _, ok := stmt.Clauses["RETURNING"]; !ok || db.Dialector.Name() != "postgres" || stmt.Table == "" {
		return false
	}
	// GORM scans the rows into the model (stmt.ReflectValue); the extra
	// column matches none of its fields.
	t := stmt.ReflectValue.Type()
	if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != stmt.Schema.ModelType {
		return false
	}
	if !p.beginOwnTx(db, st) { // the setting lives as long as the transaction
		return true
	}
	st.stash = &stashPool{ConnPool: stmt.ConnPool, stmt: stmt, ref: tableRef(db), deleted: deleted,
		again: func() (gorm.ConnPool, error) { return p.beginAgain(db, st) }}
	stmt.ConnPool = st.stash
	return true
}

// unstash puts the statement's connection back if its query never ran,
// and reads the keys (or rows) it recorded, once.
func unstash(db *gorm.DB, st *stmtState) {
	r := st.stash
	if db.Statement.ConnPool == gorm.ConnPool(r) {
		db.Statement.ConnPool = r.ConnPool
	}
	if !r.done || r.collected || r.unparsed || db.Error != nil {
		return // unparsed: the rows are counted (emitRows)
	}
	r.collected = true
	stmt := db.Statement
	if r.deleted {
		rows, _, err := readStashedRows(db, false)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		sortByKey(stmt.Schema, rows)
		st.rows, st.keys, st.stashed = rows, keysOf(stmt.Schema, rows), true
		return
	}
	var raw sql.NullString
	if err := queryOne(stmt, &raw, "SELECT current_setting('"+stashSetting+"', true)"); err != nil {
		_ = db.AddError(fmt.Errorf("telegraphy: read the keys %s returned: %w", stmt.Table, err))
		return
	}
	var texts [][]string
	if err := json.Unmarshal([]byte(raw.String), &texts); err != nil {
		_ = db.AddError(fmt.Errorf("telegraphy: read the keys %s returned: %w", stmt.Table, err))
		return
	}
	s := stmt.Schema
	keys := make([][]any, 0, len(texts))
	tmp := reflect.New(s.ModelType).Elem()
	for _, text := range texts {
		if len(text) != len(s.PrimaryFields) {
			continue
		}
		key := make([]any, len(text))
		for i, f := range s.PrimaryFields {
			if err := f.Set(stmt.Context, tmp, text[i]); err != nil {
				_ = db.AddError(fmt.Errorf("telegraphy: read the keys %s returned: %w", stmt.Table, err))
				return
			}
			key[i], _ = f.ValueOf(stmt.Context, tmp)
		}
		keys = append(keys, key)
	}
	st.keys, st.stashed = keys, true
}

// collectDeleted reads the rows a hard delete with the caller's RETURNING
// recorded right after the statement, before a hook's statement may
// replace them, and settles a transaction the plugin began for the
// statement.
func (p *Plugin) collectDeleted(db *gorm.DB) {
	st := peekState(db)
	if st != nil && st.stash != nil {
		unstash(db, st)
	}
	settle(db, st, p.afterDelete)
}
