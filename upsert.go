package telegraphy

import (
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"
	"sync"

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
	// sets are the keys a row is found by: the primary key, and for ON
	// CONFLICT its columns, or else every unique key of the model.
	sets   [][]*schema.Field
	before map[string]reflect.Value // rows before the statement, by primary keyText
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
	u := &upsertState{conflict: conflict, sets: [][]*schema.Field{stmt.Schema.PrimaryFields}}
	st.upsert = u
	if !conflict {
		return st
	}
	oc, _ := c.Expression.(clause.OnConflict)
	u.sets = conflictKeys(db, oc)
	u.before = map[string]reflect.Value{}
	lock := db.Dialector.Name() != "sqlite"
	if err := lockForUpsert(db, u.sets, inputKeys(stmt, u.sets)); err != nil {
		_ = db.AddError(err)
		return st
	}
	for i, keys := range distinctKeys(inputKeys(stmt, u.sets)) {
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

var uniqueKeyCache sync.Map // *schema.Schema -> [][]*schema.Field

// uniqueKeys returns the model's declared unique keys (unique fields and
// unique indexes without a WHERE), the primary key aside.
func uniqueKeys(s *schema.Schema) [][]*schema.Field {
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
	uniqueKeyCache.Store(s, sets)
	return sets
}

// emitReadBack emits the events of a create from maps or with ON
// CONFLICT, reading its rows back by key.
func (p *Plugin) emitReadBack(db *gorm.DB, st *stmtState) {
	stmt, u := db.Statement, st.upsert
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
	msgs := make([]broker.Message, 0, len(input))
	done := map[string]bool{}
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
			continue
		}
		id := keyText(rowKey(stmt, pk, row))
		if done[id] {
			continue
		}
		done[id] = true
		meta := events.Meta{EventType: events.TypeCreate}
		if old, existed := u.before[id]; existed {
			if reflect.DeepEqual(old.Interface(), row.Interface()) {
				continue // left alone, or written with the values it had
			}
			meta = events.Meta{EventType: events.TypeUpdate, Changed: changed}
			if st.m.Options.Channels != nil {
				// Read whole and locked before: it may have moved (audience.go).
				var err error
				if msgs, err = p.audienceMessages(msgs, st.m, row, st.m.Audience(old), meta); err != nil {
					_ = db.AddError(err)
					return
				}
				continue
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
func lockForUpsert(db *gorm.DB, sets [][]*schema.Field, input [][][]any) error {
	stmt := db.Statement
	switch db.Dialector.Name() {
	case "sqlite":
		return sqliteWriteLock(db)
	case "postgres":
		var ids []int64
		for i, keys := range distinctKeys(input) {
			for _, k := range keys {
				h := fnv.New64a()
				h.Write([]byte(stmt.Table))
				for _, f := range sets[i] {
					h.Write([]byte{0})
					h.Write([]byte(f.DBName))
				}
				h.Write([]byte{0})
				h.Write([]byte(keyText(k)))
				ids = append(ids, int64(h.Sum64()))
			}
		}
		if len(ids) == 0 {
			return nil
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
