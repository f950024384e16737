package telegraphy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// On SQLite an UPDATE ... RETURNING costs far more than the UPDATE: SQLite
// collects the returned rows in an ephemeral table whose page cache (about
// 90 KiB) it allocates and frees on every statement, and the C allocator
// hands that memory back to the system each time, so every statement
// page-faults it in again (measured: 18 page faults per statement, 2–4× the
// UPDATE's own time; the same statement costs what the plain UPDATE costs
// with MALLOC_TRIM_THRESHOLD_ raised). So on SQLite, inside a transaction,
// the plugin runs the statement as GORM built it and reads the rows it
// changed by key right after it, on the same connection: SQLite has one
// writer, and the transaction holds the write lock from the UPDATE to its
// commit, so the rows read are the rows as written. The keys are those of
// the loaded instance when the statement names one row by its full key;
// otherwise the plugin takes the write lock and selects the keys with the
// statement's WHERE just before it, when no other writer can change what
// it matches.
//
// Those reads run inside the driver call that executes the statement (the
// wrapped connection of conn.go does them when the statement's context
// carries a readBack), with statements prepared once per connection and
// without database/sql's rows: database/sql holds the connection for the
// call, so nothing else runs on it in between, and a read costs one step
// of a prepared statement.

// readBackKey is the context key of a *readBack.
type readBackKey struct{}

// readBack asks the wrapped driver connection that executes a statement's
// write to also read the rows the write changed, in the same driver call.
type readBack struct {
	// suffix is appended to the write to make it return its rows
	// (RETURNING); used when reread is false, or when the connection is
	// not in a transaction after all.
	suffix string

	// reread: run the write as it is and read the rows by key after it.
	// keys are the keys of the rows, or, when keysQuery is set, are
	// selected by it (with keysArgs, at most limit+1) after lock has taken
	// the write lock. reads has the statements.
	reread    bool
	keys      [][]any
	keysQuery string
	keysArgs  []any
	reads     *tableReads
	limit     int

	// Filled by the connection.
	reached bool
	cols    []string
	rows    [][]driver.Value // at most limit+1
	count   int64            // rows the write changed
	bulk    bool             // the rows are not known: count only
}

// readBackCacheSize bounds the statements a connection keeps prepared for
// the reads of readBack.
const readBackCacheSize = 32

// readBack executes query with args as rb asks. A failure of a read does
// not fail the write: rb.bulk says the rows are not known.
func (c *conn) readBack(ctx context.Context, query string, args []driver.NamedValue, rb *readBack) (driver.Result, error) {
	// Afresh: database/sql runs the write again on another connection
	// after driver.ErrBadConn.
	rb.reached, rb.cols, rb.rows, rb.count, rb.bulk = true, nil, nil, 0, false
	// The plugin's reads take the caller's cancellation from the write
	// only: go-sqlite3 steps a statement in a goroutine of its own when
	// its context can be cancelled.
	rctx := context.WithoutCancel(ctx)
	if !rb.reread || c.tx == nil {
		rb.reread = false
		rows, err := c.query(ctx, strings.TrimRight(query, " ;\n\t")+rb.suffix, args)
		if err != nil {
			if !syntaxError("sqlite", err) {
				return nil, err
			}
			// Nothing ran, and the error names the plugin's RETURNING:
			// run the statement as GORM built it, for its own error.
			res, err := c.execNamed(ctx, query, args)
			if err != nil {
				return nil, err
			}
			rb.bulk = true
			rb.count, err = res.RowsAffected()
			return res, err
		}
		if err := rb.collect(rows, true); err != nil {
			return nil, err
		}
		return driver.RowsAffected(rb.count), nil
	}
	if rb.keysQuery != "" {
		rb.keys = nil
		if err := c.selectKeys(rctx, rb); err != nil {
			rb.bulk = true // the write still runs, as GORM built it
		}
	}
	res, err := c.execNamed(ctx, query, args)
	if err != nil {
		return nil, err
	}
	if rb.count, err = res.RowsAffected(); err != nil {
		return nil, err
	}
	if rb.bulk || rb.count == 0 {
		return res, nil
	}
	if rb.keysQuery != "" && int64(len(rb.keys)) != rb.count {
		// OR IGNORE skipped some of the rows selected: which is not
		// known.
		rb.bulk = true
		return res, nil
	}
	for keys := rb.keys; len(keys) > 0; {
		n := min(len(keys), readBatch)
		rows, err := c.cachedQuery(rctx, rb.reads.byKeys[n], slices.Concat(keys[:n]...))
		if err == nil {
			err = rb.collect(rows, false)
		}
		if err != nil {
			rb.bulk, rb.rows = true, nil
			break
		}
		keys = keys[n:]
	}
	return res, nil
}

// readBatch is the most rows one read by key asks for.
const readBatch = 16

// tableReads are the statements of the reads of one table.
type tableReads struct {
	lock   string                // takes SQLite's write lock
	byKeys [readBatch + 1]string // byKeys[n] reads the rows of n keys
}

type tableReadsKey struct {
	s     *schema.Schema
	table string
}

// tableReadsCache holds the tableReads of at most tableReadsMax tables;
// beyond that they are built for each statement.
var (
	tableReadsCache sync.Map // tableReadsKey -> *tableReads
	tableReadsCount atomic.Int64
)

const tableReadsMax = 1024

// readsOf returns the statements reading the statement's table: `SELECT *
// FROM "t" WHERE "id" IN (?,...)`, or for a composite key `("a" = ? AND
// "b" = ?) OR ...`.
func readsOf(stmt *gorm.Statement) *tableReads {
	k := tableReadsKey{stmt.Schema, stmt.Table}
	if r, ok := tableReadsCache.Load(k); ok {
		return r.(*tableReads)
	}
	table := stmt.Quote(stmt.Table)
	pk := make([]string, len(stmt.Schema.PrimaryFieldDBNames))
	for i, n := range stmt.Schema.PrimaryFieldDBNames {
		pk[i] = stmt.Quote(n)
	}
	r := &tableReads{lock: sqliteLockSQL(stmt)}
	for n := 1; n <= readBatch; n++ {
		var b strings.Builder
		b.WriteString("SELECT * FROM " + table + " WHERE ")
		if len(pk) == 1 {
			b.WriteString(pk[0] + " IN (?" + strings.Repeat(",?", n-1) + ")")
		} else {
			for i := range n {
				if i > 0 {
					b.WriteString(" OR ")
				}
				b.WriteString("(" + strings.Join(pk, " = ? AND ") + " = ?)")
			}
		}
		r.byKeys[n] = b.String()
	}
	if tableReadsCount.Load() < tableReadsMax {
		if _, loaded := tableReadsCache.LoadOrStore(k, r); !loaded {
			tableReadsCount.Add(1)
		}
	}
	return r
}

// selectKeys takes the write lock and selects the keys of the rows the
// write will change.
func (c *conn) selectKeys(ctx context.Context, rb *readBack) error {
	if err := c.cachedExec(ctx, rb.reads.lock); err != nil {
		return err
	}
	rows, err := c.cachedQuery(ctx, rb.keysQuery, rb.keysArgs)
	if err != nil {
		return err
	}
	defer rows.Close()
	k := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(k); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		key := make([]any, len(k))
		for i, v := range k {
			key[i] = ownBytes(v)
		}
		rb.keys = append(rb.keys, key)
		if len(rb.keys) > rb.limit {
			rb.bulk = true
			break
		}
	}
	return nil
}

// collect reads rows into rb; with counting, every row counts as one the
// write changed.
func (rb *readBack) collect(rows driver.Rows, counting bool) error {
	if rb.cols == nil {
		rb.cols = rows.Columns()
	}
	for {
		dest := make([]driver.Value, len(rb.cols))
		if err := rows.Next(dest); err == io.EOF {
			break
		} else if err != nil {
			rows.Close()
			return err
		}
		if counting {
			rb.count++
		}
		if len(rb.rows) > rb.limit {
			continue // counted only: the statement is a bulk one
		}
		for i, v := range dest {
			dest[i] = ownBytes(v)
		}
		rb.rows = append(rb.rows, dest)
	}
	return rows.Close()
}

// ownBytes copies a []byte the driver may reuse on its next row.
func ownBytes(v driver.Value) driver.Value {
	if b, ok := v.([]byte); ok {
		return append([]byte(nil), b...)
	}
	return v
}

// execNamed executes query on the driver connection, preparing it where
// the driver cannot execute directly.
func (c *conn) execNamed(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if res, err := c.exec(ctx, query, args); !errors.Is(err, driver.ErrSkip) {
		return res, err
	}
	si, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	defer si.Close()
	return stmtExec(ctx, si, args)
}

// query runs query on the driver connection, preparing it where the
// driver cannot query directly; closing the rows closes that statement.
func (c *conn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if rows, err := c.QueryContext(ctx, query, args); !errors.Is(err, driver.ErrSkip) {
		return rows, err
	}
	si, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := stmtQuery(ctx, si, args)
	if err != nil {
		si.Close()
		return nil, err
	}
	return closingRows{rows, si}, nil
}

// closingRows closes its statement with the rows.
type closingRows struct {
	driver.Rows
	si driver.Stmt
}

func (r closingRows) Close() error {
	err := r.Rows.Close()
	if err2 := r.si.Close(); err == nil {
		err = err2
	}
	return err
}

// cachedQuery runs query with vals on a statement prepared once per
// connection. A statement that fails is closed and prepared again next
// time.
func (c *conn) cachedQuery(ctx context.Context, query string, vals []any) (driver.Rows, error) {
	si, args, err := c.cachedStmt(ctx, query, vals)
	if err != nil {
		return nil, err
	}
	rows, err := stmtQuery(ctx, si, args)
	if err != nil {
		c.dropStmt(query)
	}
	return rows, err
}

// cachedExec executes query on a statement prepared once per connection.
func (c *conn) cachedExec(ctx context.Context, query string) error {
	si, _, err := c.cachedStmt(ctx, query, nil)
	if err != nil {
		return err
	}
	if _, err := stmtExec(ctx, si, nil); err != nil {
		c.dropStmt(query)
		return err
	}
	return nil
}

// cachedStmt is a statement prepared by cachedStmt, with the connection's
// use count at its last use.
type cachedStmt struct {
	si   driver.Stmt
	used uint64
}

// cachedStmt returns the connection's statement for query, preparing it
// the first time, and vals as its arguments. With readBackCacheSize
// statements prepared already, the least recently used is closed.
func (c *conn) cachedStmt(ctx context.Context, query string, vals []any) (driver.Stmt, []driver.NamedValue, error) {
	args, err := c.namedValues(vals)
	if err != nil {
		return nil, nil, err
	}
	c.uses++
	if cs, ok := c.stmts[query]; ok {
		cs.used = c.uses
		return cs.si, args, nil
	}
	si, err := c.prepare(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*cachedStmt, readBackCacheSize)
	}
	if len(c.stmts) >= readBackCacheSize {
		lru, oldest := "", c.uses
		for q, cs := range c.stmts {
			if cs.used < oldest {
				lru, oldest = q, cs.used
			}
		}
		c.dropStmt(lru)
	}
	c.stmts[query] = &cachedStmt{si: si, used: c.uses}
	return si, args, nil
}

func (c *conn) dropStmt(query string) {
	if cs, ok := c.stmts[query]; ok {
		cs.si.Close()
		delete(c.stmts, query)
	}
}

// closeStmts closes the statements cachedQuery prepared.
func (c *conn) closeStmts() {
	for _, cs := range c.stmts {
		cs.si.Close()
	}
	c.stmts = nil
}

// namedValues converts vals as database/sql converts a statement's
// arguments: the driver's NamedValueChecker, else the default converter
// (which calls driver.Valuer).
func (c *conn) namedValues(vals []any) ([]driver.NamedValue, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	nv := make([]driver.NamedValue, len(vals))
	for i, v := range vals {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
		err := c.CheckNamedValue(&nv[i])
		if errors.Is(err, driver.ErrSkip) {
			nv[i].Value, err = driver.DefaultParameterConverter.ConvertValue(v)
		}
		if err != nil {
			return nil, err
		}
	}
	return nv, nil
}

// prepare prepares query with the driver's own statement.
func (c *conn) prepare(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	si, err := c.Conn.Prepare(query)
	if err == nil && ctx.Err() != nil {
		_ = si.Close()
		return nil, ctx.Err()
	}
	return si, err
}

func stmtExec(ctx context.Context, si driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := si.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	dargs, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 database/sql does the same for older drivers
	return si.Exec(dargs)
}

func stmtQuery(ctx context.Context, si driver.Stmt, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := si.(driver.StmtQueryContext); ok {
		return q.QueryContext(ctx, args)
	}
	dargs, err := namedValueToValue(args)
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 database/sql does the same for older drivers
	return si.Query(dargs)
}

// directReadBack returns the request that makes the statement's write read
// its rows in the driver call (see above), or nil where the plugin reads
// them through database/sql: not SQLite, or a connection pool that does
// not hand its statements straight to the driver connection (GORM's
// prepared statements, another plugin's wrapper).
func (p *Plugin) directReadBack(db *gorm.DB, st *stmtState, op, suffix string) *readBack {
	stmt := db.Statement
	if db.Dialector.Name() != "sqlite" {
		return nil
	}
	switch stmt.ConnPool.(type) {
	case *sql.Tx, *sql.DB, *sql.Conn:
	default:
		return nil
	}
	rb := &readBack{suffix: suffix, limit: p.bulkLimit(st.m)}
	if st.state != inTx || p.sqliteReturning || op != "UPDATE" || stmt.SQL.Len() != 0 || stmt.Table == "" ||
		stmt.TableExpr != nil && stmt.TableExpr.SQL != stmt.Quote(stmt.Table) {
		return rb
	}
	for _, name := range []string{"LIMIT", "ORDER BY", "FROM"} {
		if _, ok := stmt.Clauses[name]; ok {
			return rb // the statement picks or joins rows a select would not
		}
	}
	s := stmt.Schema
	rb.reads = readsOf(stmt)
	if key, ok := instanceKey(stmt); ok {
		rb.reread, rb.keys = true, [][]any{key}
		return rb
	}
	exprs := whereExprs(stmt)
	if len(exprs) == 0 {
		return rb
	}
	// Built on a session of its own, so that a failure is not the
	// statement's.
	b := &gorm.Statement{Table: stmt.Table, Schema: s, Context: stmt.Context, Clauses: map[string]clause.Clause{}}
	b.DB = &gorm.DB{Config: db.Config, Statement: b}
	b.WriteString("SELECT ")
	for i, n := range s.PrimaryFieldDBNames {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteQuoted(n)
	}
	b.WriteString(" FROM ")
	b.WriteQuoted(stmt.Table)
	b.WriteString(" WHERE ")
	clause.Where{Exprs: exprs}.Build(b)
	// On a line of its own: a condition may end in a "--" comment.
	b.WriteString("\nORDER BY ")
	for i, n := range s.PrimaryFieldDBNames {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteQuoted(n)
	}
	b.WriteString(" LIMIT " + strconv.Itoa(rb.limit+1))
	if b.DB.Error != nil {
		return rb
	}
	rb.reread = true
	rb.keysQuery, rb.keysArgs = b.SQL.String(), b.Vars
	return rb
}

// instanceKey returns the full primary key of the instance the statement
// writes, when it writes one struct whose key is set.
func instanceKey(stmt *gorm.Statement) ([]any, bool) {
	rv := reflect.Indirect(stmt.ReflectValue)
	if rv.Kind() != reflect.Struct || whereHasOr(stmt) {
		return nil, false
	}
	key := make([]any, len(stmt.Schema.PrimaryFields))
	for i, f := range stmt.Schema.PrimaryFields {
		var zero bool
		if key[i], zero = f.ValueOf(stmt.Context, rv); zero {
			return nil, false
		}
	}
	return key, true
}

// whereHasOr reports whether the statement's WHERE has an Or condition
// at its top level: GORM builds the loaded row's key AND the other
// conditions OR the Or ones ("id = 1 OR id = 2"), so the key does not
// name every row the statement changes.
func whereHasOr(stmt *gorm.Statement) bool {
	c, ok := stmt.Clauses["WHERE"]
	if !ok {
		return false
	}
	w, ok := c.Expression.(clause.Where)
	if !ok {
		return false
	}
	for _, e := range w.Exprs {
		if _, ok := e.(clause.OrConditions); ok {
			return true
		}
	}
	return false
}

// execDirect executes the statement's write with r.direct in its context,
// so that the driver connection reads the rows it changed.
func (r *returningPool) execDirect(ctx context.Context, query string, args []any) (sql.Result, error) {
	rb := r.direct
	res, err := r.ConnPool.ExecContext(context.WithValue(ctx, readBackKey{}, rb), query, args...)
	if err != nil {
		return nil, err
	}
	if !rb.reached {
		// An unwrapped connection ran the write as it is.
		r.bulk = true
		r.count, err = res.RowsAffected()
		return res, err
	}
	r.count, r.bulk = rb.count, rb.bulk
	if !r.bulk {
		if r.rows, err = rb.structs(ctx, r.stmt.Schema); err != nil {
			r.bulk, r.rows = true, reflect.Value{}
		} else {
			sortByKey(r.stmt.Schema, r.rows)
		}
	}
	if rb.reread {
		return res, nil
	}
	return returningResult{n: r.count, pg: r.dialect == "postgres"}, nil
}

// structs returns the rows read as a []Model, each column set in its
// field as GORM's Scan sets it: through the field's scan value where that
// is a sql.Scanner (nullable types, serializers), else by the field's
// setter, given what database/sql's Scan gives the field's scan value.
func (rb *readBack) structs(ctx context.Context, s *schema.Schema) (reflect.Value, error) {
	fields := make([]*schema.Field, len(rb.cols))
	for i, c := range rb.cols {
		if f := s.LookUpField(c); f != nil && f.Readable {
			fields[i] = f
		}
	}
	out := reflect.MakeSlice(reflect.SliceOf(s.ModelType), len(rb.rows), len(rb.rows))
	for i, row := range rb.rows {
		v := out.Index(i)
		for j, f := range fields {
			if f == nil {
				continue
			}
			if err := setColumn(ctx, f, v, row[j]); err != nil {
				return reflect.Value{}, err
			}
		}
	}
	return out, nil
}

func setColumn(ctx context.Context, f *schema.Field, v reflect.Value, src driver.Value) error {
	pv := f.NewValuePool.Get()
	defer f.NewValuePool.Put(pv)
	if sc, ok := pv.(sql.Scanner); ok {
		if err := sc.Scan(src); err != nil {
			return err
		}
		return f.Set(ctx, v, pv)
	}
	if t := f.IndirectFieldType; t.Kind() == reflect.String {
		// A number in a text field (SQLite keeps "2.50" given to a
		// numeric column as 2.5): database/sql's Scan formats it in full,
		// GORM's setter to the field's precision.
		switch x := src.(type) {
		case float64:
			return f.Set(ctx, v, strconv.FormatFloat(x, 'g', -1, 64))
		case int64:
			return f.Set(ctx, v, strconv.FormatInt(x, 10))
		case bool:
			return f.Set(ctx, v, strconv.FormatBool(x))
		case time.Time:
			return f.Set(ctx, v, x.Format(time.RFC3339Nano))
		}
	}
	return f.Set(ctx, v, src)
}
