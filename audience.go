package telegraphy

import (
	"reflect"
	"slices"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// An update can move a row between the channels Options.Channels gives
// it (an order passed from one user to another, a task reassigned, a
// document made private, a soft delete or a restore). Before each update
// and soft delete of a model with Channels, the plugin reads the rows the
// statement is about to change, in the statement's transaction and
// locking them (FOR UPDATE; on SQLite under the write lock taken first),
// and keeps the channels each was in (model.Audience: none while it is
// soft-deleted). After the write it compares them with the channels of
// the row as written:
//
//   - channels in both get "update";
//   - channels only after get "enter", with the whole row;
//   - channels only before get "leave", with the key and no data;
//   - the model channel and the record channel get "update" as always.
//
// A soft delete sends "delete" (meta.soft) to the model and record
// channels and to every channel the row was in before or is given after.
//
// The locks keep every row the read saw as it saw it until the write.
// A row the write changed that the read did not see (one that came to
// match the statement's conditions in a transaction that committed
// between the read and the statement, at READ COMMITTED) has an unknown
// past: the statement then sends its bulk event instead, as above
// BulkLimit.

// readAudience reads the rows an update (or soft delete) with where is
// about to change, for a model with Channels: it fills st.before with the
// channels each row is in, and st.keys with their keys. It sets st.bulk
// where the statement is a bulk one.
func (p *Plugin) readAudience(db *gorm.DB, st *stmtState, where []clause.Expression) {
	stmt := db.Statement
	if cols, known := assigned(stmt); known && !st.soft && !st.m.Moves(cols) {
		return // the channels of no row can change: every one gets update
	}
	if !p.beginOwnTx(db, st) {
		return
	}
	limit := p.bulkLimit(st.m)
	if _, limited := stmt.Clauses["LIMIT"]; limited || limit < 0 {
		st.bulk = true
		return
	}
	var cols []string // nil: whole rows
	for _, name := range st.m.AudienceFields() {
		f := stmt.Schema.LookUpField(name)
		if f == nil {
			st.bulk = true // not a field of the statement's schema
			return
		}
		cols = append(cols, f.DBName)
	}
	rows, ok := p.readLocked(db, st, where, limit, cols)
	if !ok {
		return
	}
	st.keys = keysOf(stmt.Schema, rows)
	st.before = make(map[string][]string, rows.Len())
	for i, key := range st.keys {
		st.before[keyText(key)] = st.m.Audience(rows.Index(i))
	}
}

// assigned returns the fields (Go names) the statement's SET assigns;
// false when it has none to look at (its SQL already built) or assigns a
// column that is no field of the schema, either of which may be any.
func assigned(stmt *gorm.Statement) ([]string, bool) {
	c, ok := stmt.Clauses["SET"]
	if !ok {
		return nil, false
	}
	set, ok := c.Expression.(clause.Set)
	if !ok {
		return nil, false
	}
	out := make([]string, len(set))
	for i, a := range set {
		f := stmt.Schema.LookUpField(a.Column.Name)
		if f == nil {
			return nil, false
		}
		out[i] = f.Name
	}
	return out, true
}

// sawEvery reports whether the read before the write saw every row the
// write changed: rows (as the write returned them) or else st.keys.
func sawEvery(db *gorm.DB, st *stmtState, rows reflect.Value) bool {
	keys := st.keys
	if rows.IsValid() {
		keys = keysOf(db.Statement.Schema, rows)
	}
	for _, k := range keys {
		if _, ok := st.before[keyText(k)]; !ok {
			return false
		}
	}
	return true
}

// audienceMessages appends to msgs the events of the row v, as written by
// an update or soft delete (meta), that was in the channels was before:
// see the comment at the top of this file.
func (p *Plugin) audienceMessages(msgs []broker.Message, m *model.Model, v reflect.Value, was []string, meta events.Meta) ([]broker.Message, error) {
	now := time.Now()
	enc, err := m.Encode(v, meta, now)
	if err != nil {
		return msgs, err
	}
	base := []string{m.Name, enc.RecordChannel}
	if meta.EventType == events.TypeDelete {
		channels := appendNew(base, was)
		channels = appendNew(channels, m.Channels(v))
		return append(msgs, broker.Message{EventID: enc.ID, Channels: channels, Data: enc.Data, Time: now}), nil
	}
	is := m.Audience(v)
	var stay, enter, leave []string
	for _, c := range is {
		if slices.Contains(was, c) {
			stay = appendNew(stay, []string{c})
		} else {
			enter = appendNew(enter, []string{c})
		}
	}
	for _, c := range was {
		if !slices.Contains(is, c) {
			leave = appendNew(leave, []string{c})
		}
	}
	msgs = append(msgs, broker.Message{EventID: enc.ID, Channels: append(base, stay...), Data: enc.Data, Time: now})
	if len(enter) > 0 {
		e, err := m.Encode(v, events.Meta{EventType: events.TypeEnter}, now)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, broker.Message{EventID: e.ID, Channels: enter, Data: e.Data, Time: now})
	}
	if len(leave) > 0 {
		e, err := m.EncodeKey(v, events.Meta{EventType: events.TypeLeave}, now)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, broker.Message{EventID: e.ID, Channels: leave, Data: e.Data, Time: now})
	}
	return msgs, nil
}

// appendNew appends to dst the channels of add it does not hold yet.
func appendNew(dst, add []string) []string {
	for _, c := range add {
		if !slices.Contains(dst, c) {
			dst = append(dst, c)
		}
	}
	return dst
}
