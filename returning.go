package telegraphy

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"weak"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// The rows an update or delete changed are taken from the statement
// itself where the database can say: the plugin appends RETURNING to the
// SQL that GORM built and executes, and reads the rows it returns. The
// statement, its conditions and every clause stay exactly as GORM built
// them, so the rows it changes are the rows it would change without the
// plugin, and the events name exactly those rows, whatever ran
// concurrently. Where the database cannot (MySQL and MariaDB updates,
// MySQL deletes), the plugin reads and locks the matching rows first (see
// selectAffected).

// returningPool stands in for a statement's connection until GORM
// executes the statement: it runs that one write with RETURNING, keeps
// the rows, puts the statement's connection back and answers GORM with a
// result that counts them. Every other call passes through.
type returningPool struct {
	gorm.ConnPool
	stmt    *gorm.Statement
	suffix  string
	limit   int
	dialect string // the Dialector's Name

	direct *readBack // set where the driver connection reads the rows (readback.go)

	again func() (gorm.ConnPool, error) // PostgreSQL: Plugin.beginAgain (connAgain)

	done  bool
	rows  reflect.Value // []Model: the first limit+1 rows returned
	count int64
	bulk  bool // the rows are not known, only their count
}

// returningResult is the sql.Result of a write run through returningPool.
type returningResult struct {
	n  int64
	pg bool
}

var errNoLastInsertID = errors.New("telegraphy: LastInsertId is not supported by this driver")

func (r returningResult) LastInsertId() (int64, error) {
	if r.pg {
		return 0, errNoLastInsertID // as pgx answers
	}
	return 0, nil
}

func (r returningResult) RowsAffected() (int64, error) { return r.n, nil }

// ExecContext runs the statement's write with RETURNING.
func (r *returningPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if r.done || query != r.stmt.SQL.String() {
		// Not the statement's write (another callback's statement).
		return r.ConnPool.ExecContext(ctx, query, args...)
	}
	r.done = true
	r.stmt.ConnPool = r.ConnPool
	if r.direct != nil {
		return r.execDirect(ctx, query, args)
	}
	rows, err := r.ConnPool.QueryContext(ctx, strings.TrimRight(query, " ;\n\t")+r.suffix, args...)
	if err != nil {
		if syntaxError(r.dialect, err) {
			// Nothing ran, and the error quotes the plugin's RETURNING:
			// run the statement as GORM built it, for its own error.
			pool, err2 := connAgain(r.again, r.ConnPool)
			if err2 != nil {
				return nil, err2
			}
			r.ConnPool = pool
			res, err2 := pool.ExecContext(ctx, query, args...)
			if err2 != nil {
				return nil, parsedError(err, err2)
			}
			r.bulk = true
			r.count, err = res.RowsAffected()
			return res, err
		}
		return nil, err
	}
	defer rows.Close()
	out, _, n, err := scanModelRows(ctx, r.stmt.Schema, rows, r.limit+1, "")
	if err != nil {
		return nil, err
	}
	r.count = n
	sortByKey(r.stmt.Schema, out)
	r.rows = out
	return returningResult{n: r.count, pg: r.dialect == "postgres"}, nil
}

// connAgain returns the connection to run GORM's statement on after the
// plugin's version of it failed to parse: on PostgreSQL, where that
// aborted a transaction the plugin began for the statement, the one again
// (Plugin.beginAgain) begins in its place; else pool.
func connAgain(again func() (gorm.ConnPool, error), pool gorm.ConnPool) (gorm.ConnPool, error) {
	if again == nil {
		return pool, nil
	}
	p, err := again()
	if err != nil || p == nil {
		return pool, err
	}
	return p, nil
}

// parsedError returns the error to give for GORM's statement, run again
// after the plugin's version of it failed with err, a syntax error, and
// failing with err2: its own, unless PostgreSQL parsed it, then refused it
// in the transaction the plugin's statement aborted. GORM's statement
// then has no syntax error, and there is no other error to give.
func parsedError(err, err2 error) error {
	if sqlState(err2) == inFailedTransaction {
		return err
	}
	return err2
}

// scanModelRows reads rows into a []Model, each column into its field as
// GORM's Scan puts it there (NULLs, serializers, custom types), without
// GORM's per-query setup: at most limit rows, the others only counted.
// The boolean column named flag, when not "", is read into flags, one per
// row kept. n is the number of rows.
func scanModelRows(ctx context.Context, s *schema.Schema, rows *sql.Rows, limit int, flag string) (out reflect.Value, flags []bool, n int64, err error) {
	cols, err := rows.Columns()
	if err != nil {
		return reflect.Value{}, nil, 0, err
	}
	fields := make([]*schema.Field, len(cols))
	at := -1
	for i, c := range cols {
		if flag != "" && c == flag {
			at = i
		} else if f := s.LookUpField(c); f != nil && f.Readable {
			fields[i] = f
		}
	}
	vals := make([]any, len(cols))
	out = reflect.MakeSlice(reflect.SliceOf(s.ModelType), 0, 1)
	for rows.Next() {
		n++
		if int(n) > limit {
			continue
		}
		var b sql.NullBool
		for i, f := range fields {
			switch {
			case i == at:
				vals[i] = &b
			case f != nil:
				vals[i] = f.NewValuePool.Get()
			default:
				vals[i] = new(any)
			}
		}
		if err := rows.Scan(vals...); err != nil {
			return reflect.Value{}, nil, 0, err
		}
		out = reflect.Append(out, reflect.Zero(s.ModelType))
		v := out.Index(out.Len() - 1)
		for i, f := range fields {
			if f == nil {
				continue
			}
			err := f.Set(ctx, v, vals[i])
			f.NewValuePool.Put(vals[i])
			if err != nil {
				return reflect.Value{}, nil, 0, err
			}
		}
		if at >= 0 {
			flags = append(flags, b.Bool)
		}
	}
	if err := rows.Err(); err != nil {
		return reflect.Value{}, nil, 0, err
	}
	return out, flags, n, nil
}

// syntaxError reports whether err is the parse error of a statement that
// the database refused before running any of it. The messages quote the
// text where parsing stopped, up to the end of the statement ("near
// '...RETURNING *'", "near \"RETURNING\"" where GORM's statement would
// fail with "incomplete input" or "at end of input"), so a write the
// plugin extended fails with another error than the statement GORM
// built: the plugin runs GORM's statement again for its own error.
//
// SQLite and MySQL/MariaDB leave the transaction usable. On PostgreSQL
// the failed statement aborts the transaction it ran in, GORM's or the
// caller's, as GORM's own statement would have; but PostgreSQL parses a
// statement before it refuses it in an aborted transaction (postgres.c,
// exec_simple_query and exec_parse_message), so GORM's statement run
// there fails with its own syntax error, or with inFailedTransaction when
// it parses, and runs nothing either way. Outside a transaction it runs as
// GORM would run it; so it does in a transaction the plugin began for the
// statement (outbox mode, a read before the write), which the plugin
// rolls back and begins again first (Plugin.beginAgain). The plugin's
// reads before a write, built from the statement's conditions, fail the
// same way (unparsedRead).
func syntaxError(dialect string, err error) bool {
	msg := err.Error()
	switch dialect {
	case "mysql":
		return strings.HasPrefix(msg, "Error 1064 (42000)")
	case "sqlite":
		return msg == "incomplete input" || strings.HasSuffix(msg, ": syntax error")
	case "postgres":
		return sqlState(err) == "42601" // syntax_error
	}
	return false
}

// inFailedTransaction is PostgreSQL's SQLSTATE for a statement refused
// because its transaction is aborted.
const inFailedTransaction = "25P02"

// sqlState returns the SQLSTATE of a database error that tells it
// through a SQLState method (pgx's *pgconn.PgError), else "": the plugin
// imports no driver.
func sqlState(err error) string {
	var e interface{ SQLState() string }
	if errors.As(err, &e) {
		return e.SQLState()
	}
	return ""
}

// returningSuffix returns the RETURNING clause the plugin appends to the
// statement's op ("UPDATE" or "DELETE"), or "" when the database cannot
// return the rows it changed. It starts a line of its own, after any
// "--" comment a clause may have left at the end.
func (p *Plugin) returningSuffix(db *gorm.DB, op string) string {
	stmt := db.Statement
	switch db.Dialector.Name() {
	case "postgres":
		if ref := tableRef(db); ref != "" {
			// Qualified: an UPDATE ... FROM may name other tables
			// with the same columns. The alias when the statement
			// gives one.
			return "\nRETURNING " + stmt.Quote(ref) + ".*"
		}
		return "\nRETURNING *"
	case "sqlite":
		// SQLite has RETURNING since 3.35 (GORM's SQLite dialect uses it
		// for every create); it may reference only the table written.
		return "\nRETURNING *"
	case "mysql":
		// MariaDB has DELETE ... RETURNING since 10.5, for single-table
		// deletes (the only ones GORM builds); UPDATE has none.
		// MariaDB refuses a DELETE through an alias or a join: it fails
		// with its own error, without the plugin's text.
		if op == "DELETE" && !throughAlias(db) && p.mariaDBReturning(db) {
			return "\nRETURNING *"
		}
	}
	return ""
}

var mariaDBReturning sync.Map // serverKey -> bool

// mariaDBReturning reports whether the server is MariaDB 10.5 or later,
// asking it once per database handle.
func (p *Plugin) mariaDBReturning(db *gorm.DB) bool {
	key := serverKey(db)
	if v, ok := mariaDBReturning.Load(key); ok {
		return v.(bool)
	}
	var version string
	if err := db.Session(&gorm.Session{NewDB: true, SkipHooks: true}).Raw("SELECT VERSION()").Scan(&version).Error; err != nil {
		return false // not cached: asked again next time
	}
	ok := isMariaDB105(version)
	mariaDBReturning.Store(key, ok)
	return ok
}

// serverKey identifies the database a statement's DB opened, for what
// is asked of the server once: a weak pointer to its *sql.DB (whose
// entries forgetDB drops once the DB is collected), else its
// *gorm.Config (one per gorm.Open). One plugin may serve several
// databases.
func serverKey(db *gorm.DB) any {
	if sqlDB := sqlDBOf(db.Config.ConnPool); sqlDB != nil {
		return weak.Make(sqlDB)
	}
	return db.Config
}

// isMariaDB105 reports whether a VERSION() string is MariaDB 10.5 or
// later.
func isMariaDB105(version string) bool {
	if !strings.Contains(version, "MariaDB") {
		return false
	}
	var major, minor int
	for i, part := range strings.SplitN(strings.SplitN(version, "-", 2)[0], ".", 3) {
		n := 0
		for _, c := range part {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		switch i {
		case 0:
			major = n
		case 1:
			minor = n
		}
	}
	return major > 10 || major == 10 && minor >= 5
}

// watch makes the statement's write report its rows through RETURNING;
// false when the database cannot or the statement already returns rows
// to the caller (GORM then runs it as a query whose rows are the
// caller's).
func (p *Plugin) watch(db *gorm.DB, st *stmtState, op string) bool {
	stmt := db.Statement
	if _, ok := stmt.Clauses["RETURNING"]; ok {
		return false
	}
	suffix := p.returningSuffix(db, op)
	if suffix == "" {
		return false
	}
	r := &returningPool{
		ConnPool: stmt.ConnPool,
		stmt:     stmt,
		suffix:   suffix,
		limit:    p.bulkLimit(st.m),
		dialect:  db.Dialector.Name(),
	}
	r.direct = p.directReadBack(db, st, op, suffix)
	if r.dialect == "postgres" {
		r.again = func() (gorm.ConnPool, error) { return p.beginAgain(db, st) }
	}
	st.ret = r
	stmt.ConnPool = r
	return true
}

// unwatch puts the statement's connection back if its write never ran.
func unwatch(db *gorm.DB, st *stmtState) {
	if st.ret != nil && db.Statement.ConnPool == gorm.ConnPool(st.ret) {
		db.Statement.ConnPool = st.ret.ConnPool
	}
}

// sortByKey orders rows (a []Model) by primary key, as the reads by key
// return them; RETURNING gives the order the database wrote them in.
func sortByKey(s *schema.Schema, rows reflect.Value) {
	if rows.Len() < 2 {
		return
	}
	keys := keysOf(s, rows)
	if slices.IsSortedFunc(keys, compareKeys) {
		return // the reads by key return their rows in key order
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return compareKeys(keys[idx[a]], keys[idx[b]]) < 0 })
	sorted := reflect.MakeSlice(rows.Type(), rows.Len(), rows.Len())
	for i, j := range idx {
		sorted.Index(i).Set(rows.Index(j))
	}
	reflect.Copy(rows, sorted)
}

// compareKeys compares two primary keys column by column: numbers as
// numbers, strings as strings, anything else by its text.
func compareKeys(a, b []any) int {
	for i := range a {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func compareValues(a, b any) int {
	va, vb := reflect.Indirect(reflect.ValueOf(a)), reflect.Indirect(reflect.ValueOf(b))
	if va.IsValid() && vb.IsValid() && va.Kind() == vb.Kind() {
		switch va.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return cmp.Compare(va.Int(), vb.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return cmp.Compare(va.Uint(), vb.Uint())
		case reflect.Float32, reflect.Float64:
			return cmp.Compare(va.Float(), vb.Float())
		case reflect.String:
			return strings.Compare(va.String(), vb.String())
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// peekState returns the statement's state without taking it (loadState
// takes it in the after callback).
func peekState(db *gorm.DB) *stmtState {
	v, ok := db.Statement.Settings.Load(stateKey{db.Statement})
	if !ok {
		return nil
	}
	return v.(*stmtState)
}

// A PostgreSQL statement that GORM runs as a query (an INSERT with its
// RETURNING of defaults and keys, a write with the caller's
// clause.Returning) hands its rows to GORM, so the plugin cannot append
// its own RETURNING. stashRowsQuery wraps it in a data-modifying CTE that
// gives GORM the statement's rows as it asked for them, plus one column
// (stashColumn) that GORM's scan into a model ignores, and leaves each
// row the statement wrote, whole, in a transaction-local setting, read
// back by readStashedRows. The wrapped query's WHERE is a one-time
// filter, evaluated before the first row is returned: the setting is
// written even when the statement writes no row.

const (
	rowsSetting = "telegraphy.rows"
	stashColumn = "telegraphy_row"
)

// stashRowsQuery wraps query (an INSERT or DELETE ... RETURNING on the
// statement's table, ref as the statement names it) as described above; with inserted, each row also says
// whether the statement inserted it (xmax = 0) or its ON CONFLICT clause
// updated it. GORM gets the columns it asked for, by name, when the
// RETURNING clause names plain columns; otherwise (RETURNING *, raw
// expressions) the stashed column too, which collectReported takes out
// of maps.
func stashRowsQuery(stmt *gorm.Statement, ref, query string, inserted bool) string {
	t := stmt.Quote(ref)
	row := "to_jsonb(" + t + ")"
	if inserted {
		row += " || jsonb_build_object('" + insertedColumn + "', " + t + ".xmax = 0)"
	}
	return `WITH "telegraphy_w" AS (` + strings.TrimRight(query, " ;\n\t") + ", " + row + ` AS "` + stashColumn + `"` +
		"\n), \"telegraphy_s\" AS (SELECT set_config('" + rowsSetting + "', COALESCE(jsonb_agg(\"" + stashColumn +
		"\"), '[]')::text, true) IS NOT NULL AS \"ok\" FROM \"telegraphy_w\")\n" +
		`SELECT ` + returnedColumns(stmt) + ` FROM "telegraphy_w" WHERE (SELECT "ok" FROM "telegraphy_s")`
}

// returnedColumns lists the columns of the statement's RETURNING clause
// as the wrapping query selects them from "telegraphy_w".
func returnedColumns(stmt *gorm.Statement) string {
	c := stmt.Clauses["RETURNING"]
	ret, _ := c.Expression.(clause.Returning)
	if len(ret.Columns) == 0 {
		return `"telegraphy_w".*`
	}
	var sb strings.Builder
	for i, col := range ret.Columns {
		name := col.Name
		if col.Alias != "" {
			name = col.Alias
		}
		if col.Raw || name == "*" || name == clause.PrimaryKey || name == clause.CurrentTable {
			return `"telegraphy_w".*`
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(`"telegraphy_w".`)
		stmt.QuoteTo(&sb, name)
	}
	return sb.String()
}

// readStashedRows reads the rows a statement wrapped by stashRowsQuery
// left in the transaction, in the order it wrote them, with their
// inserted flags when asked for.
func readStashedRows(db *gorm.DB, inserted bool) (reflect.Value, []bool, error) {
	stmt := db.Statement
	flag, col := "", ""
	if inserted {
		flag = insertedColumn
		col = `, ("e"."v"->>'` + insertedColumn + `')::boolean AS "` + insertedColumn + `"`
	}
	q := `SELECT "r".*` + col + ` FROM jsonb_array_elements(COALESCE(NULLIF(current_setting('` + rowsSetting +
		`', true), ''), '[]')::jsonb) WITH ORDINALITY AS "e"("v", "n") CROSS JOIN LATERAL jsonb_populate_record(NULL::` +
		stmt.Quote(readTable(stmt)) + `, "e"."v") AS "r" ORDER BY "e"."n"`
	rows, err := stmt.ConnPool.QueryContext(stmt.Context, q)
	if err != nil {
		return reflect.Value{}, nil, fmt.Errorf("telegraphy: read the rows written to %s: %w", readTable(stmt), err)
	}
	defer rows.Close()
	out, flags, _, err := scanModelRows(stmt.Context, stmt.Schema, rows, math.MaxInt, flag)
	if err != nil {
		return reflect.Value{}, nil, fmt.Errorf("telegraphy: read the rows written to %s: %w", readTable(stmt), err)
	}
	return out, flags, nil
}
