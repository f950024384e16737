package telegraphy

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
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
	conflict bool
	fields   []*schema.Field          // the conflict key: ON CONFLICT's columns, else the primary key
	before   map[string]reflect.Value // rows with the key before the statement, by keyText
}

// isMapCreate reports whether a create's values are a map or maps.
func isMapCreate(stmt *gorm.Statement) bool {
	switch stmt.Dest.(type) {
	case map[string]any, *map[string]any, []map[string]any, *[]map[string]any:
		return true
	}
	return false
}

// beginReadBack prepares a create from maps or with ON CONFLICT: it runs
// in a transaction (the plugin's own if the statement has none) and, for
// ON CONFLICT, the rows it may meet are read and locked first. st is the
// statement's state; nil when the create is neither.
func (p *Plugin) beginReadBack(db *gorm.DB, st *stmtState) *stmtState {
	stmt := db.Statement
	c, conflict := stmt.Clauses["ON CONFLICT"]
	if !conflict && !isMapCreate(stmt) {
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
	u := &upsertState{conflict: conflict, fields: stmt.Schema.PrimaryFields}
	st.upsert = u
	if !conflict {
		return st
	}
	if oc, ok := c.Expression.(clause.OnConflict); ok && len(oc.Columns) > 0 {
		// MySQL's ON DUPLICATE KEY ignores the columns and answers to
		// every unique key: the rows are found by the key the caller
		// named (see docs/delivery.md).
		fields := make([]*schema.Field, 0, len(oc.Columns))
		for _, col := range oc.Columns {
			f := stmt.Schema.LookUpField(col.Name)
			if f == nil {
				fields = nil
				break
			}
			fields = append(fields, f)
		}
		if fields != nil {
			u.fields = fields
		}
	}
	keys, _ := createKeys(stmt, u.fields)
	if err := lockForUpsert(db, keys); err != nil {
		_ = db.AddError(err)
		return st
	}
	rows, err := readByKey(db, u.fields, keys, db.Dialector.Name() != "sqlite")
	if err != nil {
		_ = db.AddError(err)
		return st
	}
	u.before = make(map[string]reflect.Value, rows.Len())
	for i := 0; i < rows.Len(); i++ {
		u.before[keyText(rowKey(stmt, u.fields, rows.Index(i)))] = rows.Index(i)
	}
	return st
}

// emitReadBack emits the events of a create from maps or with ON
// CONFLICT, reading its rows back by key.
func (p *Plugin) emitReadBack(db *gorm.DB, st *stmtState) {
	stmt, u := db.Statement, st.upsert
	keys, order := createKeys(stmt, u.fields)
	if len(keys) == 0 {
		return
	}
	rows, err := readByKey(db, u.fields, keys, false)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	after := make(map[string]reflect.Value, rows.Len())
	for i := 0; i < rows.Len(); i++ {
		after[keyText(rowKey(stmt, u.fields, rows.Index(i)))] = rows.Index(i)
	}
	var changed []string
	if c, ok := stmt.Clauses["ON CONFLICT"]; ok {
		if oc, ok := c.Expression.(clause.OnConflict); ok {
			seen := map[string]bool{}
			for _, a := range oc.DoUpdates {
				if name, ok := st.m.Column(a.Column.Name); ok && !seen[name] {
					seen[name] = true
					changed = append(changed, name)
				}
			}
		}
	}
	msgs := make([]broker.Message, 0, len(order))
	for _, k := range order {
		row, ok := after[k]
		if !ok {
			continue // not inserted: the conflict clause left another row alone
		}
		meta := events.Meta{EventType: events.TypeCreate}
		if old, existed := u.before[k]; existed {
			if reflect.DeepEqual(old.Interface(), row.Interface()) {
				continue // left alone, or written with the values it had
			}
			meta = events.Meta{EventType: events.TypeUpdate, Changed: changed}
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

// createKeys returns the distinct known keys (values of fields) of the
// rows a create writes, and their keyTexts in the order of the rows. A
// row's key is unknown while a column of it is left to the database (a
// zero auto-increment key before the insert, or a key the database did
// not report after it).
func createKeys(stmt *gorm.Statement, fields []*schema.Field) (keys [][]any, order []string) {
	seen := map[string]bool{}
	add := func(key []any) {
		if key == nil {
			return
		}
		t := keyText(key)
		if !seen[t] {
			seen[t] = true
			keys = append(keys, key)
			order = append(order, t)
		}
	}
	switch d := stmt.Dest.(type) {
	case map[string]any:
		add(mapKey(d, fields))
	case *map[string]any:
		add(mapKey(*d, fields))
	case []map[string]any:
		for _, m := range d {
			add(mapKey(m, fields))
		}
	case *[]map[string]any:
		for _, m := range *d {
			add(mapKey(m, fields))
		}
	default:
		each(stmt.ReflectValue, func(v reflect.Value) {
			key := make([]any, len(fields))
			for i, f := range fields {
				var zero bool
				key[i], zero = f.ValueOf(stmt.Context, v)
				if zero && f.HasDefaultValue && f.DefaultValueInterface == nil {
					return
				}
			}
			add(key)
		})
	}
	return keys, order
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
	column, values := schema.ToQueryValues(db.Statement.Table, names, keys)
	q := reader(db).Where(clause.IN{Column: column, Values: values}).Order(pkOrder(s))
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Find(rows.Interface()).Error; err != nil {
		return reflect.Value{}, fmt.Errorf("telegraphy: read rows of %s created: %w", s.Table, err)
	}
	return rows.Elem(), nil
}

// lockForUpsert takes, before an upsert's read, the locks that keep its
// keys from changing hands between the read and the statement.
//
// SQLite: the write lock (sqliteWriteLock).
//
// PostgreSQL: a transaction-scoped advisory lock per key, so that no
// other upsert through the plugin inserts a key this one read as absent
// (FOR UPDATE locks only rows that exist). Taken in key order, so two
// upserts never wait for each other's.
func lockForUpsert(db *gorm.DB, keys [][]any) error {
	stmt := db.Statement
	switch db.Dialector.Name() {
	case "sqlite":
		return sqliteWriteLock(db)
	case "postgres":
		if len(keys) == 0 {
			return nil
		}
		ids := make([]int64, len(keys))
		for i, k := range keys {
			h := fnv.New64a()
			h.Write([]byte(stmt.Table))
			h.Write([]byte{0})
			h.Write([]byte(keyText(k)))
			ids[i] = int64(h.Sum64())
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
		var sb strings.Builder
		sb.WriteString("SELECT pg_advisory_xact_lock(k) FROM (VALUES ")
		args := make([]any, len(ids))
		for i, id := range ids {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "($%d::bigint)", i+1)
			args[i] = id
		}
		sb.WriteString(") AS v(k) ORDER BY k")
		rows, err := stmt.ConnPool.QueryContext(stmt.Context, sb.String(), args...)
		if err != nil {
			return fmt.Errorf("telegraphy: lock keys of %s for an upsert: %w", stmt.Table, err)
		}
		for rows.Next() {
		}
		err = rows.Err()
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("telegraphy: lock keys of %s for an upsert: %w", stmt.Table, err)
		}
	}
	return nil
}

// sqliteWriteLock takes SQLite's write lock for the statement's
// transaction by a write that changes nothing, so that a read before the
// statement and the statement see one state: a transaction that reads
// first and writes second fails with "database is locked" when another
// writer commits in between, where the statement alone would have waited
// for the lock.
func sqliteWriteLock(db *gorm.DB) error {
	stmt := db.Statement
	pk := stmt.Quote(stmt.Schema.PrimaryFieldDBNames[0])
	q := "UPDATE " + stmt.Quote(stmt.Table) + " SET " + pk + " = " + pk + " WHERE 0"
	if _, err := stmt.ConnPool.ExecContext(stmt.Context, q); err != nil {
		return fmt.Errorf("telegraphy: lock %s before reading it: %w", stmt.Table, err)
	}
	return nil
}
