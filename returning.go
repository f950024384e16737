package telegraphy

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"

	"gorm.io/gorm"
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
	stmt   *gorm.Statement
	suffix string
	limit  int
	pg     bool

	direct *readBack // set where the driver connection reads the rows (readback.go)

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
		return nil, err
	}
	defer rows.Close()
	s := r.stmt.Schema
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	// Each column goes to its field as GORM's Scan puts it there (NULLs,
	// serializers, custom types), without GORM's per-query setup.
	fields := make([]*schema.Field, len(cols))
	for i, c := range cols {
		if f := s.LookUpField(c); f != nil && f.Readable {
			fields[i] = f
		}
	}
	vals := make([]any, len(cols))
	out := reflect.MakeSlice(reflect.SliceOf(s.ModelType), 0, 1)
	for rows.Next() {
		r.count++
		if int(r.count) > r.limit+1 {
			continue // counted only: the statement is a bulk one
		}
		for i, f := range fields {
			if f != nil {
				vals[i] = f.NewValuePool.Get()
			} else {
				vals[i] = new(any)
			}
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, err
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
				return nil, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sortByKey(r.stmt.Schema, out)
	r.rows = out
	return returningResult{n: r.count, pg: r.pg}, nil
}

// returningSuffix returns the RETURNING clause the plugin appends to the
// statement's op ("UPDATE" or "DELETE"), or "" when the database cannot
// return the rows it changed. It starts a line of its own, after any
// "--" comment a clause may have left at the end.
func (p *Plugin) returningSuffix(db *gorm.DB, op string) string {
	stmt := db.Statement
	switch db.Dialector.Name() {
	case "postgres":
		if stmt.Table != "" {
			// Qualified: an UPDATE ... FROM may name other tables
			// with the same columns. stmt.Table is the alias when
			// db.Table gave one.
			return "\nRETURNING " + stmt.Quote(stmt.Table) + ".*"
		}
		return "\nRETURNING *"
	case "sqlite":
		// SQLite has RETURNING since 3.35 (GORM's SQLite dialect uses it
		// for every create); it may reference only the table written.
		return "\nRETURNING *"
	case "mysql":
		// MariaDB has DELETE ... RETURNING since 10.5, for single-table
		// deletes (the only ones GORM builds); UPDATE has none.
		if op == "DELETE" && p.mariaDBReturning(db) {
			return "\nRETURNING *"
		}
	}
	return ""
}

var mariaDBReturning sync.Map // *Plugin -> bool

// mariaDBReturning reports whether the server is MariaDB 10.5 or later,
// asking it once per plugin.
func (p *Plugin) mariaDBReturning(db *gorm.DB) bool {
	if v, ok := mariaDBReturning.Load(p); ok {
		return v.(bool)
	}
	var version string
	if err := db.Session(&gorm.Session{NewDB: true, SkipHooks: true}).Raw("SELECT VERSION()").Scan(&version).Error; err != nil {
		return false // not cached: asked again next time
	}
	ok := isMariaDB105(version)
	mariaDBReturning.Store(p, ok)
	return ok
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
		pg:       db.Dialector.Name() == "postgres",
	}
	r.direct = p.directReadBack(db, st, op, suffix)
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
