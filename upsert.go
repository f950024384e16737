package telegraphy

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Creates whose rows the plugin cannot take from the values it was given
// read them back in the statement's transaction:
//
//   - creates from a map or a slice of maps: the map holds only the
//     columns it sets (and, after GORM's create, the generated key), so
//     the rows are read back by key for their defaults and generated
//     columns;
//   - creates from structs whose values are not what the statement
//     stores (leavesValues): columns Select or Omit leaves out, read-only
//     and generated columns, and on MySQL (no RETURNING) zero fields the
//     database fills with a default expression and times with more
//     fractional digits than their column keeps; and creates of a model
//     with a column whose type stores another value than the Go value
//     (storesOther: fixed-point numbers, char(n), single-precision
//     floats, dates, uuids); read back by key like maps;
//   - creates with INSERT IGNORE / INSERT OR IGNORE: as ON CONFLICT DO
//     NOTHING below; INSERT OR REPLACE, which deletes the rows it meets,
//     is announced as one bulk_update;
//   - creates with ON CONFLICT (clause.OnConflict, and Save of a row that
//     was not there to update): the rows with the conflict key are read,
//     and locked where the database can, before the statement, and read
//     again after it. A row absent before and present after was inserted
//     (create); a row present before whose columns changed was updated by
//     the conflict clause (update, carrying the row as written); a row
//     left as it was gets no event.

// upsertState is what a create from maps or with ON CONFLICT learned
// before its statement.
type upsertState struct {
	conflict bool // ON CONFLICT, or an INSERT modifier that skips rows
	replace  bool // INSERT OR REPLACE: the rows it deleted are not known
	// sets are the keys a row is found by: the primary key, and for ON
	// CONFLICT its columns, or else every unique key of the model.
	sets   [][]*schema.Field
	before map[string]reflect.Value // rows before the statement, by primary keyText

	pg *upsertPool // PostgreSQL: the rows the statement wrote, as it reported them

	// Where the statement may meet a row by a unique key the plugin did
	// not read (MySQL's ON DUPLICATE KEY answers to every unique key,
	// SQLite's ON CONFLICT without a target too), a row not read before
	// the statement but holding one of the keys given after it was
	// inserted, or updated by such a key:
	//
	//   - MySQL (mysqlCheck): exact when every unique key of the table
	//     (asked of the database) is one the plugin read, at REPEATABLE
	//     READ or SERIALIZABLE (gap locks), and GORM filled in the keys
	//     of the rows from RETURNING (MariaDB), or the statement has one
	//     row, or every row was given a key; else one bulk_update
	//     replaces the events;
	//   - SQLite (byRowid): with the write lock held from before the
	//     read, a row not read before but holding a rowid not above the
	//     table's largest before the statement existed, so the statement
	//     updated it.
	mysqlCheck bool
	unknown    int // rows given without any key the plugin could read
	byRowid    bool
	maxRowid   int64
	rowidErr   error
}

// insertModifier reports whether a create's INSERT modifier (clause.Insert)
// lets the statement skip rows, as MySQL's INSERT IGNORE and SQLite's
// INSERT OR IGNORE do, or replace the rows it meets, as SQLite's INSERT OR
// REPLACE does (deleting every row that holds one of the new row's unique
// keys). PostgreSQL has neither.
func insertModifier(db *gorm.DB) (skip, replace bool) {
	if db.Dialector.Name() == "postgres" {
		return false, false
	}
	c, ok := db.Statement.Clauses["INSERT"]
	if !ok {
		return false, false
	}
	ins, ok := c.Expression.(clause.Insert)
	if !ok {
		return false, false
	}
	m := strings.ToUpper(ins.Modifier)
	return strings.Contains(m, "IGNORE"), strings.Contains(m, "REPLACE")
}

// leavesValues reports whether a create from structs stores other values
// than the structs hold in a column: a column Select or Omit leaves out
// (the database's default goes in), a field GORM does not write on
// create (read-only and generated columns), or, where GORM reads nothing
// back after an INSERT (no RETURNING: MySQL), a zero field whose default
// is an expression the database computes; a time whose stored value the
// plugin does not compute (asStored): on MySQL/MariaDB one with more
// fractional digits than its column keeps (finerTime), on PostgreSQL one
// with a serializer, or with a zone offset in a timestamp without time
// zone (zonedTime). The primary key is not counted: GORM fills in a
// generated one.
func leavesValues(db *gorm.DB) bool {
	stmt := db.Statement
	if stmt.Schema == nil {
		return false
	}
	var selected map[string]bool
	restricted := false
	if len(stmt.Selects) > 0 || len(stmt.Omits) > 0 {
		selected, restricted = stmt.SelectAndOmitColumns(true, false)
	}
	returning := 0 // 1: GORM's create has RETURNING, -1: it has not; 0: not asked yet
	mysql := db.Dialector.Name() == "mysql"
	pg := db.Dialector.Name() == "postgres"
	for _, f := range stmt.Schema.Fields {
		if f.DBName == "" || f.PrimaryKey {
			continue
		}
		if !f.Creatable {
			return true
		}
		if v, ok := selected[f.DBName]; ok && !v || !ok && restricted && f.AutoCreateTime == 0 && f.AutoUpdateTime == 0 {
			return true
		}
		if f.HasDefaultValue && f.DefaultValueInterface == nil {
			if returning == 0 {
				returning = -1
				if slices.Contains(db.Callback().Create().Clauses, "RETURNING") {
					returning = 1
				}
			}
			if returning < 0 && anyZero(stmt, f) {
				return true
			}
		}
		if mysql && finerTime(db, f) || pg && isTimeField(f) && (f.Serializer != nil || naiveTimestamp(f) && zonedTime(db, f)) {
			return true
		}
	}
	return false
}

// finerTime reports whether f is a time column (time.Time, *time.Time,
// gorm.DeletedAt, sql.NullTime in a DATETIME or TIMESTAMP column) and one
// of the statement's structs holds a time in it with more fractional
// second digits than the column keeps: MySQL rounds such a time to the
// column, MariaDB truncates it (and sql_mode TIME_TRUNCATE_FRACTIONAL
// makes MySQL truncate), so the row is read back rather than guessed. A
// zero time GORM fills in on create (autoCreateTime, autoUpdateTime) is
// judged by a time of db.NowFunc: the MySQL dialector's own rounds to the
// column's default precision, one the application sets may not.
func finerTime(db *gorm.DB, f *schema.Field) bool {
	if !isTimeField(f) {
		return false
	}
	typ := strings.ToLower(f.TagSettings["TYPE"])
	if typ != "" && typ != "time" && !strings.HasPrefix(typ, "datetime") && !strings.HasPrefix(typ, "timestamp") {
		return false // a time of day, text: as the struct holds it; a date: storesOther
	}
	cp := *f // the dialector may set the copy's precision to its default
	unit := int(math.Pow10(9 - min(9, digitsIn(db.Dialector.DataTypeOf(&cp)))))
	return anyStructTime(db, f, func(t time.Time) bool { return t.Nanosecond()%unit != 0 })
}

// isTimeField reports whether f's Go type is time.Time, gorm.DeletedAt or
// sql.NullTime, or a pointer to one.
func isTimeField(f *schema.Field) bool {
	switch f.IndirectFieldType {
	case reflect.TypeFor[time.Time](), reflect.TypeFor[gorm.DeletedAt](), reflect.TypeFor[sql.NullTime]():
		return true
	}
	return false
}

// digitsIn returns the number in parentheses of a column type
// ("datetime(3) NULL": 3), 0 without one.
func digitsIn(typ string) int {
	i := strings.IndexByte(typ, '(')
	if i < 0 {
		return 0
	}
	j := strings.IndexByte(typ[i:], ')')
	if j < 0 {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(typ[i+1 : i+j]))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// anyZero reports whether f is zero in any of the statement's structs.
func anyZero(stmt *gorm.Statement, f *schema.Field) bool {
	zero := false
	each(stmt.ReflectValue, func(v reflect.Value) {
		if _, z := f.ValueOf(stmt.Context, v); z {
			zero = true
		}
	})
	return zero
}

// isMapCreate reports whether a create's values are a map or maps.
func isMapCreate(stmt *gorm.Statement) bool {
	switch stmt.Dest.(type) {
	case map[string]any, *map[string]any, []map[string]any, *[]map[string]any:
		return true
	}
	return false
}

// beginReadBack prepares a create of m's rows that reads them back (from
// maps, from structs whose values are not what the statement stores, with
// ON CONFLICT): it runs in a transaction (the plugin's own if the statement
// has none) and, for ON CONFLICT, the rows it may meet are read and locked
// first. st is the statement's state; nil when the create reads nothing
// back.
func (p *Plugin) beginReadBack(db *gorm.DB, m *model.Model, st *stmtState) *stmtState {
	stmt := db.Statement
	c, conflict := stmt.Clauses["ON CONFLICT"]
	skip, replace := insertModifier(db)
	if !conflict && !skip && !replace && !isMapCreate(stmt) && !storesOther(db, m) && !leavesValues(db) {
		return st
	}
	if st == nil {
		if st = p.begin(db, events.OpCreate); st == nil {
			return nil
		}
	}
	if !p.beginOwnTx(db, st) {
		return st
	}
	u := &upsertState{conflict: conflict || skip, replace: replace, sets: [][]*schema.Field{stmt.Schema.PrimaryFields}}
	st.upsert = u
	if replace {
		return st // announced as one bulk_update (emitReadBack)
	}
	pg := db.Dialector.Name() == "postgres" && stmt.Table != ""
	if pg {
		u.pg = &upsertPool{ConnPool: stmt.ConnPool, stmt: stmt, ref: tableRef(db)}
		stmt.ConnPool = u.pg
	}
	if !u.conflict {
		return st
	}
	oc, _ := c.Expression.(clause.OnConflict)
	if !conflict {
		// INSERT IGNORE skips a row that meets any unique key, as ON
		// CONFLICT DO NOTHING without a target does.
		oc = clause.OnConflict{DoNothing: true}
	}
	if pg && oc.DoNothing && len(oc.DoUpdates) == 0 && !oc.UpdateAll {
		// The statement reports the rows it inserted, and updates none.
		return st
	}
	u.sets = conflictKeys(db, oc)
	u.before = map[string]reflect.Value{}
	lock := db.Dialector.Name() != "sqlite"
	if !pg {
		if err := lockForUpsert(db); err != nil {
			_ = db.AddError(err)
			return st
		}
	}
	input := inputKeys(stmt, u.sets)
	switch db.Dialector.Name() {
	case "mysql":
		u.mysqlCheck = true
		for _, keys := range input {
			if !slices.ContainsFunc(keys, func(k []any) bool { return k != nil }) {
				u.unknown++
			}
		}
	case "sqlite":
		if len(oc.DoUpdates) > 0 && !oc.UpdateAll && len(oc.Columns) == 0 && oc.OnConstraint == "" {
			u.byRowid = true
			u.maxRowid, u.rowidErr = maxRowid(db)
		}
	}
	for i, keys := range distinctKeys(input) {
		rows, err := readByKey(db, u.sets[i], keys, lock)
		if err != nil {
			_ = db.AddError(err)
			return st
		}
		for j := 0; j < rows.Len(); j++ {
			u.before[keyText(rowKey(stmt, stmt.Schema.PrimaryFields, rows.Index(j)))] = rows.Index(j)
		}
	}
	return st
}

// conflictKeys returns the keys an upsert's rows are found by: the
// primary key, and the columns ON CONFLICT names; without them (and
// always on MySQL, whose ON DUPLICATE KEY answers to every unique key and
// ignores the columns) each unique key the model declares.
func conflictKeys(db *gorm.DB, oc clause.OnConflict) [][]*schema.Field {
	s := db.Statement.Schema
	sets := [][]*schema.Field{s.PrimaryFields}
	var named []*schema.Field
	for _, col := range oc.Columns {
		f := s.LookUpField(col.Name)
		if f == nil {
			named = nil
			break
		}
		named = append(named, f)
	}
	add := func(set []*schema.Field) {
		for _, have := range sets {
			if slices.Equal(have, set) {
				return
			}
		}
		sets = append(sets, set)
	}
	if named != nil {
		add(named)
	}
	if named == nil || db.Dialector.Name() == "mysql" {
		for _, set := range uniqueKeys(s) {
			add(set)
		}
	}
	return sets
}

// uniqueKeyCache holds the unique keys of at most uniqueKeyMax schemas
// (a DB opened anew parses its models anew); beyond that they are found
// for each statement.
var (
	uniqueKeyCache sync.Map // *schema.Schema -> [][]*schema.Field
	uniqueKeyCount int      // guarded by uniqueKeyMu
	// uniqueKeyMu serialises the computation: Schema.ParseIndexes
	// writes to the schema's fields, so two concurrent first upserts
	// of one model must not both call it.
	uniqueKeyMu sync.Mutex
)

const uniqueKeyMax = 1024

// uniqueKeys returns the model's declared unique keys (unique fields and
// unique indexes without a WHERE), the primary key aside.
func uniqueKeys(s *schema.Schema) [][]*schema.Field {
	if v, ok := uniqueKeyCache.Load(s); ok {
		return v.([][]*schema.Field)
	}
	uniqueKeyMu.Lock()
	defer uniqueKeyMu.Unlock()
	if v, ok := uniqueKeyCache.Load(s); ok {
		return v.([][]*schema.Field)
	}
	var sets [][]*schema.Field
	for _, f := range s.Fields {
		if f.Unique && !f.PrimaryKey && f.DBName != "" {
			sets = append(sets, []*schema.Field{f})
		}
	}
	for _, idx := range s.ParseIndexes() {
		if idx.Class != "UNIQUE" || idx.Where != "" || len(idx.Fields) == 0 {
			continue
		}
		var set []*schema.Field
		for _, o := range idx.Fields {
			if o.Field == nil || o.Expression != "" {
				set = nil
				break
			}
			set = append(set, o.Field)
		}
		if set != nil {
			sets = append(sets, set)
		}
	}
	if uniqueKeyCount < uniqueKeyMax {
		uniqueKeyCache.Store(s, sets)
		uniqueKeyCount++
	}
	return sets
}

// emitReadBack emits the events of a create from maps or with ON
// CONFLICT: on PostgreSQL from the rows the statement reported, elsewhere
// by reading its rows back by key.
func (p *Plugin) emitReadBack(db *gorm.DB, st *stmtState) {
	if st.upsert.pg != nil {
		p.emitWritten(db, func() { p.emitReported(db, st) })
		return
	}
	stmt, u := db.Statement, st.upsert
	if db.Error != nil {
		if db.RowsAffected > 0 {
			// Written before GORM's error, in the statement's transaction,
			// which decides whether the rows stay (see beforeCreate);
			// GORM may not have filled in their keys.
			p.emitWritten(db, func() { p.emitBulk(db, st, int64(len(inputKeys(stmt, u.sets)))) })
		}
		return
	}
	if db.RowsAffected == 0 {
		return
	}
	if u.replace {
		// Which rows INSERT OR REPLACE deleted to make room is not known.
		p.emitBulk(db, st, int64(len(inputKeys(stmt, u.sets))))
		return
	}
	pk := stmt.Schema.PrimaryFields
	input := inputKeys(stmt, u.sets)
	after := make([]map[string]reflect.Value, len(u.sets))
	for i, keys := range distinctKeys(input) {
		rows, err := readByKey(db, u.sets[i], keys, false)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		after[i] = make(map[string]reflect.Value, rows.Len())
		for j := 0; j < rows.Len(); j++ {
			after[i][keyText(rowKey(stmt, u.sets[i], rows.Index(j)))] = rows.Index(j)
		}
	}
	changed := conflictAssigns(stmt, st)
	msgs := make([]broker.Message, 0, len(input))
	done := map[string]bool{}
	var created []reflect.Value // rows not read before the statement
	for _, keys := range input {
		// The row now holding one of the input row's keys; none when
		// the statement neither inserted it nor holds its key.
		var row reflect.Value
		for i, key := range keys {
			if key != nil {
				if r, ok := after[i][keyText(key)]; ok {
					row = r
					break
				}
			}
		}
		if !row.IsValid() {
			// A key given in another form than the table keeps (an
			// upper-case uuid, a char(n) key PostgreSQL pads, MySQL's
			// case-insensitive collations, a number as text) names its
			// row by the database's comparison, not by its text.
			var err error
			if row, err = rowOfKey(db, u.sets, keys); err != nil {
				_ = db.AddError(err)
				return
			}
			if !row.IsValid() {
				continue
			}
		}
		id := keyText(rowKey(stmt, pk, row))
		if done[id] {
			continue
		}
		done[id] = true
		old, existed := u.before[id]
		if !existed {
			created = append(created, row)
			continue
		}
		if reflect.DeepEqual(old.Interface(), row.Interface()) {
			continue // left alone, or written with the values it had
		}
		meta := events.Meta{EventType: events.TypeUpdate, Changed: changed}
		var err error
		if st.m.Options.Channels != nil {
			// Read whole and locked before: it may have moved (audience.go).
			msgs, err = p.audienceMessages(msgs, st.m, row, st.m.Audience(old), meta)
		} else {
			var msg broker.Message
			if msg, err = p.modelMessage(st.m, row, meta); err == nil {
				msgs = append(msgs, msg)
			}
		}
		if err != nil {
			_ = db.AddError(err)
			return
		}
	}
	if u.mysqlCheck && len(created) > 0 && !p.mysqlCreatesExact(db, st, len(input)) {
		p.emitBulk(db, st, int64(len(input)))
		return
	}
	existedBefore := map[string]bool{}
	if u.byRowid && len(created) > 0 {
		var err error
		if existedBefore, err = rowsUpTo(db, created, u.maxRowid, u.rowidErr); err != nil {
			p.emitBulk(db, st, int64(len(input)))
			return
		}
	}
	for _, row := range created {
		meta := events.Meta{EventType: events.TypeCreate}
		if existedBefore[keyText(rowKey(stmt, pk, row))] {
			meta = events.Meta{EventType: events.TypeUpdate, Changed: changed}
			if st.m.Options.Channels != nil {
				// Not read before: which channels it was in is unknown.
				p.emitBulk(db, st, int64(len(input)))
				return
			}
		}
		msg, err := p.modelMessage(st.m, row, meta)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		msgs = append(msgs, msg)
	}
	p.emit(db, st.tx, msgs)
}

// mysqlCreatesExact reports whether the rows of a MySQL upsert not read
// before it were inserted by it (see upsertState).
func (p *Plugin) mysqlCreatesExact(db *gorm.DB, st *stmtState, rows int) bool {
	stmt, u := db.Statement, st.upsert
	if _, returning := stmt.Clauses["RETURNING"]; !returning && rows > 1 && u.unknown > 0 {
		// GORM numbered the rows from the first id inserted; a row
		// that met a key took an id too.
		return false
	}
	if weak, err := p.belowRepeatableRead(db, st); err != nil || weak {
		return false
	}
	keys, err := mysqlUniqueKeys(db)
	if err != nil {
		return false
	}
	for _, cols := range keys {
		read := slices.ContainsFunc(u.sets, func(set []*schema.Field) bool {
			if len(set) != len(cols) {
				return false
			}
			for _, f := range set {
				if !slices.Contains(cols, f.DBName) {
					return false
				}
			}
			return true
		})
		if !read {
			return false
		}
	}
	return true
}

// mysqlUniqueKeys returns the columns of each unique index of the
// statement's table, as the database has them (an index on an expression
// has a column "").
func mysqlUniqueKeys(db *gorm.DB) ([][]string, error) {
	stmt := db.Statement
	// The database a TableName such as "otherdb.t" names, else the
	// connection's.
	name := readTable(stmt)
	database, table := "DATABASE()", []any{name}
	if i := strings.IndexByte(name, '.'); i >= 0 {
		database, table = "?", []any{name[:i], name[i+1:]}
	}
	rows, err := stmt.ConnPool.QueryContext(stmt.Context, "SELECT INDEX_NAME, COALESCE(COLUMN_NAME, '') FROM information_schema.STATISTICS "+
		"WHERE TABLE_SCHEMA = "+database+" AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX", table...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	last := ""
	for rows.Next() {
		var index, column string
		if err := rows.Scan(&index, &column); err != nil {
			return nil, err
		}
		if index != last || len(out) == 0 {
			out = append(out, nil)
			last = index
		}
		out[len(out)-1] = append(out[len(out)-1], column)
	}
	return out, rows.Err()
}

// wroteBeforeError reports whether a write that runs in the plugin's own
// transaction and that GORM reports failed had written its rows first
// (GORM's scan of what the statement returned into the caller's values;
// the After hooks run once the transaction has ended, see settle):
// without the plugin the statement would have committed them on its own,
// so the plugin commits its transaction too.
func wroteBeforeError(db *gorm.DB, st *stmtState) bool {
	if db.Error == nil || st.started == nil {
		return false
	}
	if u := st.upsert; u != nil && u.pg != nil {
		return u.pg.ok
	}
	return db.RowsAffected > 0
}

// emitBulk emits one bulk_update for count rows of an upsert whose rows
// the plugin cannot tell apart.
func (p *Plugin) emitBulk(db *gorm.DB, st *stmtState, count int64) {
	msg, err := newMessage(st.m.Name, events.Meta{EventType: events.TypeBulkUpdate, Count: count}, []byte("null"), []string{st.m.Name})
	if err != nil {
		_ = db.AddError(err)
		return
	}
	p.emit(db, st.tx, []broker.Message{msg})
}

// maxRowid returns the largest rowid of the statement's SQLite table (0
// when empty).
func maxRowid(db *gorm.DB) (int64, error) {
	stmt := db.Statement
	var n sql.NullInt64
	err := queryOne(stmt, &n, "SELECT max(rowid) FROM "+stmt.Quote(readTable(stmt)))
	if err != nil {
		return 0, fmt.Errorf("telegraphy: read the largest rowid of %s: %w", readTable(stmt), err)
	}
	return n.Int64, nil
}

// rowsUpTo returns, by primary keyText, which of rows have a rowid not
// above max: rows that existed before the statement (SQLite gives a new
// row a rowid above the largest, unless that is the largest possible).
func rowsUpTo(db *gorm.DB, rows []reflect.Value, max int64, before error) (map[string]bool, error) {
	if before != nil {
		return nil, before
	}
	stmt := db.Statement
	s := stmt.Schema
	keys := make([][]any, len(rows))
	for i, row := range rows {
		keys[i] = rowKey(stmt, s.PrimaryFields, row)
	}
	column, values := schema.ToQueryValues(clause.CurrentTable, s.PrimaryFieldDBNames, keys)
	r, err := reader(db).Select(append([]string{"rowid"}, s.PrimaryFieldDBNames...)).
		Where(clause.IN{Column: column, Values: values}).Rows()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := map[string]bool{}
	tmp := reflect.New(s.ModelType).Elem()
	for r.Next() {
		var rowid int64
		vals := make([]any, 1+len(s.PrimaryFields))
		vals[0] = &rowid
		for i := range s.PrimaryFields {
			vals[i+1] = new(any)
		}
		if err := r.Scan(vals...); err != nil {
			return nil, err
		}
		for i, f := range s.PrimaryFields {
			if err := f.Set(stmt.Context, tmp, *vals[i+1].(*any)); err != nil {
				return nil, err
			}
		}
		out[keyText(rowKey(stmt, s.PrimaryFields, tmp))] = rowid <= max
	}
	return out, r.Err()
}

// conflictAssigns returns the JSON names of the columns an upsert's
// conflict clause assigns.
func conflictAssigns(stmt *gorm.Statement, st *stmtState) []string {
	var changed []string
	if c, ok := stmt.Clauses["ON CONFLICT"]; ok {
		if oc, ok := c.Expression.(clause.OnConflict); ok {
			seen := map[string]bool{}
			for _, a := range oc.DoUpdates {
				if name, ok := changedName(st.m, stmt.Schema, a.Column.Name); ok && !seen[name] {
					seen[name] = true
					changed = append(changed, name)
				}
			}
		}
	}
	return changed
}

// upsertPool stands in for the connection of a create from maps or with
// ON CONFLICT on PostgreSQL until GORM runs its INSERT, and makes the
// statement report each row it wrote and whether it inserted it
// (xmax = 0: the row version was created by an insert, not by the
// conflict clause's update; rows DO NOTHING skipped are not reported):
//
//   - GORM executes the INSERT (nothing to return to it): the plugin
//     appends RETURNING and reads the rows itself;
//   - GORM queries it (its RETURNING of defaults and keys, or the
//     caller's clause.Returning): the statement is wrapped so that GORM
//     gets its rows as it asked for them and the rows written wait in a
//     transaction-local setting (stashRowsQuery), read right after the
//     statement (collectReported).
type upsertPool struct {
	gorm.ConnPool
	stmt *gorm.Statement
	ref  string // the table as the statement names it (tableRef)

	done     bool          // the INSERT was sent
	stashed  bool          // through GORM's query: the rows wait in the setting
	ok       bool          // rows and inserted hold what the statement wrote
	rows     reflect.Value // []Model
	inserted []bool
}

const insertedColumn = "telegraphy_inserted"

// ExecContext runs the INSERT with RETURNING and answers GORM as the
// driver would.
func (r *upsertPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if r.done || query != r.stmt.SQL.String() {
		return r.ConnPool.ExecContext(ctx, query, args...)
	}
	r.done = true
	r.stmt.ConnPool = r.ConnPool
	t := r.stmt.Quote(r.ref)
	rows, err := r.ConnPool.QueryContext(ctx, strings.TrimRight(query, " ;\n\t")+
		"\nRETURNING "+t+".*, ("+t+".xmax = 0) AS "+insertedColumn, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out, inserted, n, err := scanModelRows(ctx, r.stmt.Schema, rows, math.MaxInt, insertedColumn)
	if err != nil {
		return nil, err
	}
	r.rows, r.inserted, r.ok = out, inserted, true
	return returningResult{n: n, pg: true}, nil
}

// QueryContext runs GORM's INSERT ... RETURNING wrapped so that it leaves
// the rows it wrote in the transaction.
func (r *upsertPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if r.done || query != r.stmt.SQL.String() {
		return r.ConnPool.QueryContext(ctx, query, args...)
	}
	r.done, r.stashed = true, true
	r.stmt.ConnPool = r.ConnPool
	return r.ConnPool.QueryContext(ctx, stashRowsQuery(r.stmt, r.ref, query, true), args...)
}

// collectReported runs right after GORM's INSERT (collectCreate), before
// any other statement (association saves, hooks) may replace the setting:
// it puts the statement's connection back, takes the stashed column out
// of the maps GORM scanned it into, and reads the rows the statement
// wrote.
func (p *Plugin) collectReported(db *gorm.DB, st *stmtState) {
	if st.upsert == nil || st.upsert.pg == nil {
		return
	}
	r := st.upsert.pg
	if db.Statement.ConnPool == gorm.ConnPool(r) {
		db.Statement.ConnPool = r.ConnPool
	}
	if !r.stashed {
		return
	}
	dropStashColumn(db.Statement.Dest)
	// After an error GORM reports once the INSERT ran (its scan into
	// the caller's values), the rows are read when the transaction is
	// the plugin's: it commits them, as autocommit would have without
	// the plugin. A read that fails then adds nothing to GORM's error.
	if db.Error != nil && st.started == nil {
		return
	}
	rows, inserted, err := readStashedRows(db, true)
	if err != nil {
		if db.Error == nil {
			_ = db.AddError(err)
		}
		return
	}
	r.rows, r.inserted, r.ok = rows, inserted, true
}

// emitReported emits the events of the rows an upsert or a create from
// maps reported on PostgreSQL: create for a row it inserted; update for a
// row its conflict clause updated, unless the row was read before the
// statement and holds the values it had.
func (p *Plugin) emitReported(db *gorm.DB, st *stmtState) {
	r, u := st.upsert.pg, st.upsert
	if !r.ok {
		return
	}
	stmt := db.Statement
	changed := conflictAssigns(stmt, st)
	msgs := make([]broker.Message, 0, r.rows.Len())
	for i := 0; i < r.rows.Len(); i++ {
		row := r.rows.Index(i)
		meta := events.Meta{EventType: events.TypeCreate}
		if !r.inserted[i] {
			old, existed := u.before[keyText(rowKey(stmt, stmt.Schema.PrimaryFields, row))]
			if existed && reflect.DeepEqual(old.Interface(), row.Interface()) {
				continue // written with the values it had
			}
			meta = events.Meta{EventType: events.TypeUpdate, Changed: changed}
			if st.m.Options.Channels != nil {
				if !existed {
					// Not read before: which channels it was in is unknown.
					p.emitBulk(db, st, int64(r.rows.Len()))
					return
				}
				// Read whole and locked before: it may have moved (audience.go).
				var err error
				if msgs, err = p.audienceMessages(msgs, st.m, row, st.m.Audience(old), meta); err != nil {
					if db.Error == nil {
						_ = db.AddError(err)
					}
					return
				}
				continue
			}
		}
		msg, err := p.modelMessage(st.m, row, meta)
		if err != nil {
			if db.Error == nil {
				_ = db.AddError(err)
			}
			return
		}
		msgs = append(msgs, msg)
	}
	p.emit(db, st.tx, msgs)
}

// dropStashColumn removes the column stashRowsQuery adds from the maps
// GORM scanned a statement's rows into.
func dropStashColumn(dest any) {
	switch d := dest.(type) {
	case map[string]any:
		delete(d, stashColumn)
	case *map[string]any:
		delete(*d, stashColumn)
	case []map[string]any:
		for _, m := range d {
			delete(m, stashColumn)
		}
	case *[]map[string]any:
		for _, m := range *d {
			delete(m, stashColumn)
		}
	}
}

// inputKeys returns, for each row a create writes (in order), its key
// in each set, nil where unknown: while a column of it is left to the
// database (a zero auto-increment key before the insert, or a key the
// database did not report after it), or a map does not set it.
func inputKeys(stmt *gorm.Statement, sets [][]*schema.Field) [][][]any {
	var out [][][]any
	fromMap := func(m map[string]any) {
		keys := make([][]any, len(sets))
		for i, set := range sets {
			keys[i] = mapKey(m, set)
		}
		out = append(out, keys)
	}
	switch d := stmt.Dest.(type) {
	case map[string]any:
		fromMap(d)
	case *map[string]any:
		fromMap(*d)
	case []map[string]any:
		for _, m := range d {
			fromMap(m)
		}
	case *[]map[string]any:
		for _, m := range *d {
			fromMap(m)
		}
	default:
		each(stmt.ReflectValue, func(v reflect.Value) {
			keys := make([][]any, len(sets))
		set:
			for i, set := range sets {
				key := make([]any, len(set))
				for j, f := range set {
					var zero bool
					key[j], zero = f.ValueOf(stmt.Context, v)
					if zero && f.HasDefaultValue && f.DefaultValueInterface == nil {
						continue set
					}
				}
				keys[i] = key
			}
			out = append(out, keys)
		})
	}
	return out
}

// distinctKeys returns, for each key set, the distinct known keys of
// input (as inputKeys gives them).
func distinctKeys(input [][][]any) [][][]any {
	if len(input) == 0 {
		return nil
	}
	out := make([][][]any, len(input[0]))
	seen := make([]map[string]bool, len(out))
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	for _, keys := range input {
		for i, key := range keys {
			if key == nil {
				continue
			}
			if t := keyText(key); !seen[i][t] {
				seen[i][t] = true
				out[i] = append(out[i], key)
			}
		}
	}
	return out
}

// mapKey returns the key a map sets (by column or field name), nil when
// it lacks a column of it or sets one to an expression.
func mapKey(m map[string]any, fields []*schema.Field) []any {
	if m == nil {
		return nil
	}
	key := make([]any, len(fields))
	for i, f := range fields {
		v, ok := m[f.DBName]
		if !ok {
			if v, ok = m[f.Name]; !ok {
				return nil
			}
		}
		switch v.(type) {
		case nil, clause.Expression:
			return nil
		}
		key[i] = v
	}
	return key
}

// rowKey returns the values of fields in the row v.
func rowKey(stmt *gorm.Statement, fields []*schema.Field, v reflect.Value) []any {
	key := make([]any, len(fields))
	for i, f := range fields {
		key[i], _ = f.ValueOf(stmt.Context, v)
	}
	return key
}

// keyText is a key's comparable form: the values as text, so that a key
// given in a map (an int, a string) meets the same key read into the
// model's fields (a uint, a custom string type).
func keyText(key []any) string {
	var sb strings.Builder
	for i, v := range key {
		if i > 0 {
			sb.WriteByte(0)
		}
		rv := reflect.ValueOf(v)
		for rv.Kind() == reflect.Pointer && !rv.IsNil() {
			rv = rv.Elem()
		}
		if rv.IsValid() {
			v = rv.Interface()
		}
		fmt.Fprint(&sb, v)
	}
	return sb.String()
}

// rowOfKey reads the row that one of an input row's keys names, as the
// database compares the key with its columns; none when no key names
// exactly one row.
func rowOfKey(db *gorm.DB, sets [][]*schema.Field, keys [][]any) (reflect.Value, error) {
	for i, key := range keys {
		if key == nil {
			continue
		}
		rows, err := readByKey(db, sets[i], [][]any{key}, false)
		if err != nil {
			return reflect.Value{}, err
		}
		if rows.Len() == 1 {
			return rows.Index(0), nil
		}
	}
	return reflect.Value{}, nil
}

// readByKey reads the rows whose fields hold one of keys, in the
// statement's transaction, locking them with lock.
func readByKey(db *gorm.DB, fields []*schema.Field, keys [][]any, lock bool) (reflect.Value, error) {
	s := db.Statement.Schema
	rows := reflect.New(reflect.SliceOf(s.ModelType))
	if len(keys) == 0 {
		return rows.Elem(), nil
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.DBName
	}
	column, values := schema.ToQueryValues(clause.CurrentTable, names, keys)
	q := reader(db).Where(clause.IN{Column: column, Values: values}).Order(pkOrder(s))
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Find(rows.Interface()).Error; err != nil {
		return reflect.Value{}, fmt.Errorf("telegraphy: read rows of %s created: %w", s.Table, err)
	}
	return rows.Elem(), nil
}

// lockForUpsert takes, before an upsert's read, the lock that keeps its
// keys from changing hands between the read and the statement: SQLite's
// write lock (sqliteWriteLock). MySQL's FOR UPDATE takes gap locks at
// REPEATABLE READ; PostgreSQL needs none, its statement reports what it
// did.
func lockForUpsert(db *gorm.DB) error {
	if db.Dialector.Name() == "sqlite" {
		return sqliteWriteLock(db)
	}
	return nil
}

// sqliteLockSQL is a write to the statement's table that changes
// nothing: run in a transaction, it takes SQLite's write lock.
func sqliteLockSQL(stmt *gorm.Statement) string {
	pk := stmt.Quote(stmt.Schema.PrimaryFieldDBNames[0])
	return "UPDATE " + stmt.Quote(readTable(stmt)) + " SET " + pk + " = " + pk + " WHERE 0"
}

// sqliteWriteLock takes SQLite's write lock for the statement's
// transaction by a write that changes nothing, so that a read before the
// statement and the statement see one state: a transaction that reads
// first and writes second fails with "database is locked" when another
// writer commits in between, where the statement alone would have waited
// for the lock.
func sqliteWriteLock(db *gorm.DB) error {
	stmt := db.Statement
	if _, err := stmt.ConnPool.ExecContext(stmt.Context, sqliteLockSQL(stmt)); err != nil {
		return fmt.Errorf("telegraphy: lock %s before reading it: %w", readTable(stmt), err)
	}
	return nil
}
