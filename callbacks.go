package telegraphy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// stmtState carries what the before callback learned to the after
// callback of the same statement.
type stmtState struct {
	m     *model.Model
	tx    *txn
	state txState

	// started is the transaction the plugin began because the statement
	// had none (SkipDefaultTransaction) but needs its reads and write to
	// be atomic; restore is the connection to put back afterwards. keep:
	// commit it although GORM reports an error, which came after the
	// write (wroteBeforeError). settled: the statement's events were
	// emitted and that transaction ended right after the write (settle).
	started *gorm.DB
	restore gorm.ConnPool
	keep    bool
	settled bool

	addedSet bool
	soft     bool
	changed  []string
	bulk     bool
	keys     [][]any       // primary keys of the affected rows, in order
	rows     reflect.Value // the rows to announce: returned by the write, or (hard delete) read before it

	ret *returningPool // the rows the write returned (returning.go)

	stash   *stashPool // the keys an update with the caller's RETURNING recorded (stash.go)
	stashed bool       // st.keys are those keys

	upsert *upsertState // creates from maps and with ON CONFLICT (upsert.go)

	before map[string][]string // channels each row was in, by keyText (audience.go)

	// unparsed is the syntax error of the plugin's read before the write
	// that aborted GORM's or the caller's transaction (unparsedRead).
	unparsed error
}

type stateKey struct{ stmt *gorm.Statement }

func loadState(db *gorm.DB) *stmtState {
	v, ok := db.Statement.Settings.LoadAndDelete(stateKey{db.Statement})
	if !ok {
		return nil
	}
	return v.(*stmtState)
}

// begin checks that the statement's connection is followed by the plugin
// and returns the state for the after callback; nil when the statement
// emits nothing or already failed.
func (p *Plugin) begin(db *gorm.DB, op events.Operation) *stmtState {
	m, tx, state := p.target(db, op)
	if m == nil {
		return nil
	}
	st := &stmtState{m: m, tx: tx, state: state}
	db.Statement.Settings.Store(stateKey{db.Statement}, st)
	if p.outbox != nil && !p.beginOwnTx(db, st) {
		// Outbox mode: a write outside a transaction runs in one the
		// plugin begins, so its outbox rows commit with it.
		return nil
	}
	return st
}

// target returns the model of a statement that emits op events and where
// its events go; a nil model when it emits nothing (another table than
// the model's: table.go), already failed, or runs on a connection the
// plugin does not follow (an error on db).
func (p *Plugin) target(db *gorm.DB, op events.Operation) (*model.Model, *txn, txState) {
	if db.Error != nil {
		// The statement will not run (a Before hook failed): it wrote
		// nothing, which the after callbacks read from RowsAffected (GORM
		// leaves a reused chain's previous count in place).
		if !db.DryRun && p.model(db) != nil {
			db.RowsAffected = 0
		}
		return nil, nil, untracked
	}
	return p.targetOf(db, op)
}

// targetOf is target without the check of db.Error: for a statement
// GORM reports failed after its write wrote rows (see beforeCreate).
func (p *Plugin) targetOf(db *gorm.DB, op events.Operation) (*model.Model, *txn, txState) {
	if db.DryRun {
		return nil, nil, untracked
	}
	m := p.model(db)
	if m == nil || !m.Options.Operations.Has(op) || m.Options.Operations&events.OpNone != 0 || !ownTable(db, op) {
		return nil, nil, untracked
	}
	tx, state, err := p.track(db)
	if state == untracked {
		_ = db.AddError(fmt.Errorf("telegraphy: writing %s: %w", m.Name, err))
		return nil, nil, untracked
	}
	return m, tx, state
}

// beginOwnTx starts a transaction for a statement that runs outside one,
// so that its pre-reads, write and re-reads see one state.
func (p *Plugin) beginOwnTx(db *gorm.DB, st *stmtState) bool {
	if err := p.ownTx(db, st); err != nil {
		_ = db.AddError(err)
		return false
	}
	return true
}

// ownTx is beginOwnTx, returning its error.
func (p *Plugin) ownTx(db *gorm.DB, st *stmtState) error {
	if st.state != noTx {
		return nil
	}
	tx := db.Session(&gorm.Session{NewDB: true}).Begin()
	if tx.Error != nil {
		return tx.Error
	}
	st.started = tx
	st.restore = db.Statement.ConnPool
	db.Statement.ConnPool = tx.Statement.ConnPool
	var err error
	if st.tx, st.state, err = p.track(tx); st.state != inTx {
		return fmt.Errorf("telegraphy: transaction begun for %s: %w", st.m.Name, err)
	}
	return nil
}

// beginAgain rolls back the transaction the plugin began for the
// statement, which a statement of the plugin's that PostgreSQL could not
// parse has aborted, and begins another in its place: the statement then
// runs as it runs without the plugin, where it needs no transaction. It
// returns the statement's new connection, or nil when the statement's
// transaction is not the plugin's (nothing to do).
func (p *Plugin) beginAgain(db *gorm.DB, st *stmtState) (gorm.ConnPool, error) {
	if st.started == nil {
		return nil, nil
	}
	st.started.Rollback()
	db.Statement.ConnPool = st.restore
	st.started, st.restore, st.tx, st.state = nil, nil, nil, noTx
	if err := p.ownTx(db, st); err != nil {
		return nil, err
	}
	return db.Statement.ConnPool, nil
}

// settle ends, right after the write, a transaction the plugin began for
// it: complete (the statement's after callback) reads what the plugin
// reads after the write, emits the events and commits, before GORM saves
// associations and runs the After hooks. Those then run outside any
// transaction, as they do without the plugin: each of their statements
// commits on its own, and one that fails (which on PostgreSQL would
// abort the plugin's transaction, and so undo the write) leaves the write
// in place. The after callback then finds the state settled and does
// nothing.
func settle(db *gorm.DB, st *stmtState, complete func(*gorm.DB)) {
	if st == nil || st.started == nil {
		return
	}
	complete(db)
	st.settled = true
	db.Statement.Settings.Store(stateKey{db.Statement}, st)
}

// finish commits or rolls back a transaction begun by beginOwnTx.
func (p *Plugin) finish(db *gorm.DB, st *stmtState) {
	if st.started == nil {
		return
	}
	if db.Error != nil && !st.keep {
		st.started.Rollback()
	} else if err := st.started.Commit().Error; err != nil && db.Error == nil {
		_ = db.AddError(err)
	}
	db.Statement.ConnPool = st.restore
}

// emit sends msgs to the statement's transaction tx, or publishes them
// now when there is none. It keeps msgs.
func (p *Plugin) emit(db *gorm.DB, tx *txn, msgs []broker.Message) {
	if len(msgs) == 0 {
		return
	}
	stampOrigin(db.Statement.Context, msgs)
	if tx != nil {
		tx.add(p, msgs, true)
		return
	}
	p.publish(db.Statement.Context, msgs)
}

// A create from structs needs no state between its callbacks unless the
// plugin begins a transaction for it (outbox mode): the after callback
// finds the model and the transaction again, which costs less than
// keeping them. Creates from maps and with ON CONFLICT read their rows
// back (upsert.go).
//
// A write GORM reports failed after its statement wrote rows (an After
// hook, an association that could not be saved) is announced all the
// same: its events go to the statement's transaction, which decides
// whether the rows stay (GORM's own rolls back, the caller's is the
// caller's to commit), and without a transaction the rows have stayed.
// So that "wrote rows" means this statement's rows, the before callbacks
// set RowsAffected to zero (GORM leaves the previous count of a reused
// chain in place when a statement does not run).

func (p *Plugin) beforeCreate(db *gorm.DB) {
	var st *stmtState
	var m *model.Model
	if p.outbox != nil {
		if st = p.begin(db, events.OpCreate); st == nil {
			return
		}
		m = st.m
	} else if m, _, _ = p.target(db, events.OpCreate); m == nil {
		return
	}
	db.RowsAffected = 0
	p.beginReadBack(db, m, st)
}

// collectCreate runs right after GORM's INSERT: it collects the rows the
// statement reported, announces them and settles a transaction the plugin
// began for the create (see settle).
func (p *Plugin) collectCreate(db *gorm.DB) {
	st := peekState(db)
	if st != nil {
		p.collectReported(db, st)
	}
	p.announceCreate(db, st)
	settle(db, st, p.afterCreate)
}

// announceCreate announces a create's rows once its statement has run,
// before GORM saves associations and runs AfterCreate/AfterSave hooks: the
// event carries the row as inserted, not what a hook then sets in the
// struct without saving it, and comes before the events of the writes a
// hook makes. An error GORM reports later (a hook, an association) does
// not take the event back: the statement's transaction decides whether
// the rows stay (see beforeCreate). st is the statement's state, if any.
func (p *Plugin) announceCreate(db *gorm.DB, st *stmtState) {
	var m *model.Model
	var tx *txn
	if st != nil {
		if st.upsert != nil {
			p.emitReadBack(db, st)
			return
		}
		m, tx = st.m, st.tx
	} else if p.outbox != nil || db.RowsAffected == 0 {
		return
	} else if m, tx, _ = p.targetOf(db, events.OpCreate); m == nil {
		return
	}
	if db.RowsAffected == 0 {
		return
	}
	failed := db.Error
	if failed != nil {
		db.Error = nil
		defer restoreError(db, failed)
	}
	if v := reflect.Indirect(db.Statement.ReflectValue); v.Kind() == reflect.Struct {
		if failed != nil && !hasKey(m, v) {
			return
		}
		msg, err := p.modelMessage(m, asStored(db, m, v), events.Meta{EventType: events.TypeCreate})
		if err != nil {
			_ = db.AddError(err)
			return
		}
		p.emit(db, tx, []broker.Message{msg})
		return
	}
	var msgs []broker.Message
	each(db.Statement.ReflectValue, func(v reflect.Value) {
		if db.Error != nil || failed != nil && !hasKey(m, v) {
			return
		}
		msg, err := p.modelMessage(m, asStored(db, m, v), events.Meta{EventType: events.TypeCreate})
		if err != nil {
			_ = db.AddError(err)
			return
		}
		msgs = append(msgs, msg)
	})
	if db.Error == nil {
		p.emit(db, tx, msgs)
	}
}

// afterCreate ends a transaction the plugin began for the create that
// collectCreate did not settle.
func (p *Plugin) afterCreate(db *gorm.DB) {
	if st := loadState(db); st != nil && !st.settled {
		st.keep = wroteBeforeError(db, st)
		p.finish(db, st)
	}
}

// hasKey reports whether the struct v holds its whole primary key: after
// an error GORM may not have filled in every generated key.
func hasKey(m *model.Model, v reflect.Value) bool {
	_, zero := m.PKValues(v)
	return !zero
}

// restoreError puts back the error GORM reported, joined with any error
// the plugin added meanwhile.
func restoreError(db *gorm.DB, failed error) {
	added := db.Error
	db.Error = failed
	if added != nil {
		_ = db.AddError(added)
	}
}

// each calls fn with every struct in v: a struct, or a slice or array of
// structs or pointers to them.
func each(v reflect.Value, fn func(reflect.Value)) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		fn(v)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			for e.Kind() == reflect.Pointer || e.Kind() == reflect.Interface {
				if e.IsNil() {
					break
				}
				e = e.Elem()
			}
			if e.Kind() == reflect.Struct {
				fn(e)
			}
		}
	}
}

// modelMessage builds the message of one model event for the struct v.
func (p *Plugin) modelMessage(m *model.Model, v reflect.Value, meta events.Meta) (broker.Message, error) {
	now := time.Now()
	enc, err := m.Encode(v, meta, now)
	if err != nil {
		return broker.Message{}, err
	}
	if m.Options.Channels == nil {
		return broker.Message{EventID: enc.ID, Channels: []string{m.Name, enc.RecordChannel}, Data: enc.Data, Time: now}, nil
	}
	// A soft-deleted row is in no channel of Options.Channels (Audience).
	channels := append([]string{m.Name, enc.RecordChannel}, m.Audience(v)...)
	return broker.Message{EventID: enc.ID, Channels: channels, Data: enc.Data, Time: now}, nil
}

func (p *Plugin) bulkLimit(m *model.Model) int {
	if m.Options.BulkLimit != 0 {
		return m.Options.BulkLimit
	}
	return p.cfg.BulkLimit
}

// whereExprs returns the statement's WHERE expressions.
func whereExprs(stmt *gorm.Statement) []clause.Expression {
	if c, ok := stmt.Clauses["WHERE"]; ok {
		if w, ok := c.Expression.(clause.Where); ok {
			return append([]clause.Expression(nil), w.Exprs...)
		}
	}
	return nil
}

// reader returns a fresh query on the model's table (readTable) and the
// statement's connection, without hooks or soft-delete scoping. Its
// columns are qualified by clause.CurrentTable, which it names.
func reader(db *gorm.DB) *gorm.DB {
	return db.Session(&gorm.Session{NewDB: true, SkipHooks: true}).Unscoped().Table(readTable(db.Statement))
}

func pkOrder(s *schema.Schema) clause.OrderBy {
	var ob clause.OrderBy
	for _, n := range s.PrimaryFieldDBNames {
		ob.Columns = append(ob.Columns, clause.OrderByColumn{Column: clause.Column{Name: n}})
	}
	return ob
}

// preselect reads cols (nil: whole rows) of the rows matched by where,
// at most limit+1, ordered by primary key, locking them where the dialect
// can. It returns a pointer to a slice of the model type.
func preselect(db *gorm.DB, where []clause.Expression, limit int, cols []string) (reflect.Value, error) {
	s := db.Statement.Schema
	q := reader(db).Clauses(clause.Where{Exprs: where}, endLine{}).Order(pkOrder(s)).Limit(limit + 1)
	if cols != nil {
		q = q.Select(cols)
	}
	if db.Dialector.Name() != "sqlite" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	rows := reflect.New(reflect.SliceOf(s.ModelType))
	if err := q.Find(rows.Interface()).Error; err != nil {
		// As the database gave it: with the statement's conditions, it
		// is mostly the error the statement itself would fail with.
		return reflect.Value{}, err
	}
	return rows, nil
}

// endLine ends the WHERE clause of a statement with a line break (see
// its ModifyStatement): a condition ending in a "--" comment, which
// GORM's statement runs as written, would comment out what the plugin
// adds after it (ORDER BY, LIMIT, FOR UPDATE). A statement modifier,
// not a clause: it builds nothing itself.
type endLine struct{}

func (endLine) Build(clause.Builder) {}
func (endLine) ModifyStatement(stmt *gorm.Statement) {
	if c, ok := stmt.Clauses["WHERE"]; ok {
		if w, ok := c.Expression.(clause.Where); ok && len(w.Exprs) > 0 {
			c.AfterExpression = clause.Expr{SQL: "\n"}
			stmt.Clauses["WHERE"] = c
		}
	}
}

// keysOf returns the primary key values of each row, as the statement's
// schema reads them.
func keysOf(s *schema.Schema, rows reflect.Value) [][]any {
	rows = reflect.Indirect(rows)
	out := make([][]any, rows.Len())
	for i := range out {
		k := make([]any, len(s.PrimaryFields))
		for j, f := range s.PrimaryFields {
			k[j], _ = f.ValueOf(context.Background(), rows.Index(i))
		}
		out[i] = k
	}
	return out
}

// reread reads the rows with the given keys after the write, in key
// order.
func reread(db *gorm.DB, keys [][]any) (reflect.Value, error) {
	s := db.Statement.Schema
	column, values := schema.ToQueryValues(clause.CurrentTable, s.PrimaryFieldDBNames, keys)
	rows := reflect.New(reflect.SliceOf(s.ModelType))
	err := reader(db).Where(clause.IN{Column: column, Values: values}).Order(pkOrder(s)).Find(rows.Interface()).Error
	if err != nil {
		return reflect.Value{}, fmt.Errorf("telegraphy: read rows after %s: %w", s.Table, err)
	}
	return rows.Elem(), nil
}

// updateReplaces reports whether the update is SQLite's UPDATE OR
// REPLACE (clause.Update{Modifier: "OR REPLACE"}).
func updateReplaces(db *gorm.DB) bool {
	if db.Dialector.Name() != "sqlite" {
		return false
	}
	c, ok := db.Statement.Clauses["UPDATE"]
	if !ok {
		return false
	}
	u, ok := c.Expression.(clause.Update)
	return ok && strings.Contains(strings.ToUpper(u.Modifier), "REPLACE")
}

// collectUpdate runs right after GORM's UPDATE: it settles a transaction
// the plugin began for the statement.
func (p *Plugin) collectUpdate(db *gorm.DB) { settle(db, peekState(db), p.afterUpdate) }

func (p *Plugin) beforeUpdate(db *gorm.DB) {
	st := p.begin(db, events.OpUpdate)
	if st == nil {
		return
	}
	db.RowsAffected = 0 // see beforeCreate
	stmt := db.Statement
	// Build the SET and WHERE the way gorm:update will, so the rows it is
	// about to change can be read first.
	for _, c := range stmt.Schema.UpdateClauses {
		stmt.AddClause(c)
	}
	if stmt.SQL.Len() == 0 {
		if _, ok := stmt.Clauses["SET"]; !ok {
			set := callbacks.ConvertToAssignments(stmt)
			if len(set) == 0 {
				return // gorm:update does nothing either
			}
			stmt.AddClause(set)
			st.addedSet = true
		}
	}
	if c, ok := stmt.Clauses["SET"]; ok {
		if set, ok := c.Expression.(clause.Set); ok {
			seen := make(map[string]bool, len(set))
			for _, a := range set {
				if f := stmt.Schema.LookUpField(a.Column.Name); f != nil && f.PrimaryKey {
					// The rows cannot be read back by their old keys:
					// say how many changed instead.
					st.bulk = true
				}
				if name, ok := changedName(st.m, stmt.Schema, a.Column.Name); ok && !seen[name] {
					seen[name] = true
					st.changed = append(st.changed, name)
				}
			}
		}
	}
	if updateReplaces(db) {
		// UPDATE OR REPLACE deletes the rows that hold a unique key the
		// update gives another: which ones is not known.
		st.bulk = true
	}
	where := whereExprs(stmt)
	if len(where) == 0 && !stmt.AllowGlobalUpdate {
		return // gorm:update refuses it with ErrMissingWhereClause
	}
	if !st.bulk && st.m.Options.Channels != nil {
		p.readAudience(db, st, where)
	}
	if st.bulk || p.watch(db, st, "UPDATE") || p.stash(db, st) || st.before != nil {
		return
	}
	p.selectAffected(db, st, where, true)
}

// selectAffected finds the keys of the rows the statement will touch:
// from the loaded instance when it names exactly one row by its full
// primary key, else by reading them (and locking them where possible)
// inside the statement's transaction.
func (p *Plugin) selectAffected(db *gorm.DB, st *stmtState, where []clause.Expression, pkOnly bool) {
	if !p.beginOwnTx(db, st) {
		return
	}
	limit := p.bulkLimit(st.m)
	stmt := db.Statement
	if _, limited := stmt.Clauses["LIMIT"]; limited || limit < 0 {
		// With LIMIT (MySQL runs UPDATE/DELETE ... LIMIT) the rows the
		// statement picks are not known in advance: count them instead.
		st.bulk = true
		return
	}
	if pkOnly && !whereHasOr(stmt) {
		if rv := reflect.Indirect(stmt.ReflectValue); rv.Kind() == reflect.Struct {
			key := make([]any, len(stmt.Schema.PrimaryFields))
			complete := true
			for i, f := range stmt.Schema.PrimaryFields {
				var zero bool
				key[i], zero = f.ValueOf(stmt.Context, rv)
				complete = complete && !zero
			}
			if complete {
				st.keys = [][]any{key}
				return
			}
		}
	}
	var cols []string
	if pkOnly {
		cols = stmt.Schema.PrimaryFieldDBNames
	}
	rows, ok := p.readLocked(db, st, where, limit, cols)
	if !ok {
		return
	}
	st.keys = keysOf(stmt.Schema, rows)
	if !pkOnly {
		st.rows = rows
	}
}

// readLocked reads cols (nil: whole rows) of the rows matched by where,
// locked (SQLite: under its write lock, taken first), into a []Model; false
// when the statement's rows cannot be read apart from it, are more than
// limit, or the read failed (st.bulk set, or an error on db).
func (p *Plugin) readLocked(db *gorm.DB, st *stmtState, where []clause.Expression, limit int, cols []string) (reflect.Value, bool) {
	if namedByExpression(db.Statement) {
		// db.Table("tickets AS t"), a subquery, another schema: the
		// statement's conditions may name what the plugin's read, which
		// names the table, would not.
		st.bulk = true
		return reflect.Value{}, false
	}
	if c, ok := db.Statement.Clauses["FROM"]; ok {
		if from, ok := c.Expression.(clause.From); ok && (len(from.Tables) > 0 || len(from.Joins) > 0) {
			// UPDATE ... FROM: its conditions may name the other tables,
			// so the rows cannot be selected apart from the statement.
			st.bulk = true
			return reflect.Value{}, false
		}
	}
	if db.Dialector.Name() == "mysql" {
		if weak, err := p.belowRepeatableRead(db, st); err != nil || weak {
			// No gap locks: a row committed between the read and the
			// statement may be changed too (isolation.go).
			st.bulk = true
			return reflect.Value{}, false
		}
	}
	if db.Dialector.Name() == "sqlite" {
		if err := sqliteWriteLock(db); err != nil {
			_ = db.AddError(err)
			return reflect.Value{}, false
		}
	}
	rows, err := preselect(db, where, limit, cols)
	if err != nil {
		if db.Dialector.Name() == "postgres" {
			if syntaxError("postgres", err) {
				p.unparsedRead(db, st, err)
				return reflect.Value{}, false
			}
			// The failed read has aborted the transaction: its error
			// is the statement's, as GORM without the plugin would
			// return it (a condition naming no column, say).
			_ = db.AddError(err)
			return reflect.Value{}, false
		}
		// The statement itself may still run (or fail with its own
		// error): say how many rows it changed.
		st.bulk = true
		return reflect.Value{}, false
	}
	if rows.Elem().Len() > limit {
		st.bulk = true
		return reflect.Value{}, false
	}
	return rows.Elem(), true
}

// unparsedRead follows a read before the write that PostgreSQL could not
// parse: the error quotes the plugin's SQL (at or near its ORDER BY, or
// at a position in it), where GORM's statement fails with its own. The
// read ran nothing, so GORM's statement runs as GORM built it, for its
// own error or result, and the rows it changes are only counted. In the
// transaction the plugin began, which the read aborted, it runs in a new
// one, as it runs without a transaction. In GORM's or the caller's,
// aborted as GORM's own failed statement aborts it, PostgreSQL parses
// GORM's statement and refuses it: with its own syntax error, or, when it
// parses, with inFailedTransaction, which the after callbacks replace by
// the read's error (unparsedError), as the RETURNING the plugin appends
// does (returningPool).
func (p *Plugin) unparsedRead(db *gorm.DB, st *stmtState, err error) {
	st.bulk = true
	if st.started == nil {
		st.unparsed = err
		return
	}
	if _, err := p.beginAgain(db, st); err != nil {
		_ = db.AddError(err)
	}
}

// unparsedError gives a statement that PostgreSQL refused in the
// transaction the plugin's read before it aborted the read's error, when
// GORM's statement itself parsed: there is no other error to give.
func unparsedError(db *gorm.DB, st *stmtState) {
	if st.unparsed != nil && sqlState(db.Error) == inFailedTransaction {
		db.Error = st.unparsed
	}
}

// namedByExpression reports whether the statement names its table by an
// expression (db.Table with an alias, a subquery or a schema) rather than
// by its name alone, or as the model declares it (a TableName with a
// schema: GORM's stmt.Table then holds the name without it).
func namedByExpression(stmt *gorm.Statement) bool {
	e := stmt.TableExpr
	return e != nil && e.SQL != stmt.Quote(stmt.Table) && e.SQL != stmt.Table && e.SQL != stmt.Quote(stmt.Schema.Table)
}

// throughAlias reports whether the statement names its table by an alias
// or by an expression that is more than one table.
func throughAlias(db *gorm.DB) bool {
	if !namedByExpression(db.Statement) {
		return false
	}
	alias, ok := tableAlias(db)
	return !ok || alias != ""
}

func (p *Plugin) afterUpdate(db *gorm.DB) {
	st := loadState(db)
	if st == nil || st.settled {
		return
	}
	unwatch(db, st)
	if st.stash != nil {
		unstash(db, st)
	}
	if st.addedSet {
		delete(db.Statement.Clauses, "SET")
	}
	unparsedError(db, st)
	st.keep = wroteBeforeError(db, st)
	if db.RowsAffected > 0 {
		p.emitWritten(db, func() {
			p.emitRows(db, st, events.TypeBulkUpdate, events.Meta{EventType: events.TypeUpdate, Changed: st.changed})
		})
	}
	p.finish(db, st)
}

// emitWritten runs emit for a statement that wrote rows, also when GORM
// reported an error after the write (see beforeCreate): with the error
// set aside, so that the plugin's reads run, and put back after.
func (p *Plugin) emitWritten(db *gorm.DB, emit func()) {
	failed := db.Error
	if failed == nil {
		emit()
		return
	}
	db.Error = nil
	emit()
	restoreError(db, failed)
}

// emitRows emits one event per affected row (as the write returned it,
// read back after the write, or as read before it for hard deletes), or
// one bulk event.
func (p *Plugin) emitRows(db *gorm.DB, st *stmtState, bulkType string, meta events.Meta) {
	count := db.RowsAffected
	if r := st.ret; r != nil {
		if !r.done {
			return
		}
		st.bulk = st.bulk || r.bulk || r.count > int64(p.bulkLimit(st.m))
		st.rows = r.rows
	} else if st.stashed {
		count = int64(len(st.keys))
		st.bulk = st.bulk || count > int64(p.bulkLimit(st.m))
	} else if !st.bulk && int64(len(st.keys)) < db.RowsAffected {
		// The locks of the read before did not cover every row the
		// statement changed (MySQL below REPEATABLE READ, a PostgreSQL
		// hard delete with the caller's RETURNING at READ COMMITTED): say
		// how many.
		st.bulk = true
	}
	if st.before != nil && !st.bulk && !sawEvery(db, st, st.rows) {
		st.bulk = true // a row changed that the read before could not see (audience.go)
	}
	if st.bulk {
		meta.EventType, meta.Changed, meta.Count = bulkType, nil, count
		msg, err := newMessage(st.m.Name, meta, []byte("null"), []string{st.m.Name})
		if err != nil {
			_ = db.AddError(err)
			return
		}
		p.emit(db, st.tx, []broker.Message{msg})
		return
	}
	if len(st.keys) == 0 && st.ret == nil {
		return
	}
	rows := st.rows
	if !rows.IsValid() {
		var err error
		if rows, err = reread(db, st.keys); err != nil {
			_ = db.AddError(err)
			return
		}
	}
	msgs := make([]broker.Message, 0, rows.Len())
	for i := 0; i < rows.Len(); i++ {
		if st.before != nil {
			var err error
			was := st.before[keyText(rowKey(db.Statement, db.Statement.Schema.PrimaryFields, rows.Index(i)))]
			if msgs, err = p.audienceMessages(msgs, st.m, rows.Index(i), was, meta); err != nil {
				_ = db.AddError(err)
				return
			}
			continue
		}
		msg, err := p.modelMessage(st.m, rows.Index(i), meta)
		if err != nil {
			_ = db.AddError(err)
			return
		}
		msgs = append(msgs, msg)
	}
	p.emit(db, st.tx, msgs)
}

func (p *Plugin) beforeDelete(db *gorm.DB) {
	st := p.begin(db, events.OpDelete)
	if st == nil {
		return
	}
	db.RowsAffected = 0 // see beforeCreate
	stmt := db.Statement
	soft := len(stmt.Schema.DeleteClauses) > 0 && !stmt.Unscoped
	var where []clause.Expression
	if soft {
		// The soft-delete clause turns the statement into an UPDATE with
		// its full WHERE (keys, deleted_at IS NULL) and builds it now;
		// gorm:delete then runs it as built.
		for _, c := range stmt.Schema.DeleteClauses {
			stmt.AddClause(c)
		}
		where = whereExprs(stmt)
	} else {
		where = append(whereExprs(stmt), deleteKeyConds(stmt)...)
	}
	if len(where) == 0 && !stmt.AllowGlobalUpdate {
		return // gorm:delete refuses it with ErrMissingWhereClause
	}
	st.soft = soft
	op := "DELETE"
	if soft {
		op = "UPDATE" // what the soft-delete clause built
	}
	if soft && st.m.Options.Channels != nil {
		if p.readAudience(db, st, where); st.bulk {
			return
		}
	}
	if p.watch(db, st, op) || (soft && p.stash(db, st)) || (!soft && p.stashDeleted(db, st)) || st.before != nil {
		return
	}
	// A hard delete reads the whole rows first: afterwards they are gone.
	// A soft delete re-reads them like an update.
	p.selectAffected(db, st, where, soft)
}

// deleteKeyConds are the key conditions gorm:delete adds from the
// instances being deleted.
func deleteKeyConds(stmt *gorm.Statement) []clause.Expression {
	var out []clause.Expression
	_, vals := schema.GetIdentityFieldValuesMap(stmt.Context, stmt.ReflectValue, stmt.Schema.PrimaryFields)
	if column, values := schema.ToQueryValues(stmt.Table, stmt.Schema.PrimaryFieldDBNames, vals); len(values) > 0 {
		out = append(out, clause.IN{Column: column, Values: values})
	}
	if stmt.ReflectValue.CanAddr() && stmt.Dest != stmt.Model && stmt.Model != nil {
		_, vals = schema.GetIdentityFieldValuesMap(stmt.Context, reflect.ValueOf(stmt.Model), stmt.Schema.PrimaryFields)
		if column, values := schema.ToQueryValues(stmt.Table, stmt.Schema.PrimaryFieldDBNames, vals); len(values) > 0 {
			out = append(out, clause.IN{Column: column, Values: values})
		}
	}
	return out
}

func (p *Plugin) afterDelete(db *gorm.DB) {
	st := loadState(db)
	if st == nil || st.settled {
		return
	}
	unwatch(db, st)
	if st.stash != nil {
		unstash(db, st)
	}
	unparsedError(db, st)
	st.keep = wroteBeforeError(db, st)
	if db.RowsAffected > 0 {
		p.emitWritten(db, func() {
			p.emitRows(db, st, events.TypeBulkDelete, events.Meta{EventType: events.TypeDelete, Soft: st.soft})
		})
	}
	p.finish(db, st)
}

// changedName returns the JSON name meta.changed gives the column col of
// a statement of the model m, whose schema is s, and whether it may be
// named. The statement names its columns by the database's naming
// strategy (NoLowerCase, a NameReplacer), which may differ from the one
// m was parsed with: the column is matched to m's field by its Go name.
func changedName(m *model.Model, s *schema.Schema, col string) (string, bool) {
	if f := s.LookUpField(col); f != nil && f.DBName == col {
		return m.FieldColumn(f.BindName())
	}
	return m.Column(col)
}
