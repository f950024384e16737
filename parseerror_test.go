package telegraphy_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// TestSyntaxErrorAsWithoutPlugin: a delete whose SQL the database cannot
// parse (a malformed or unfinished condition, an OFFSET MariaDB's DELETE
// does not take) fails with the error GORM gives without the plugin, not
// one quoting the RETURNING the plugin appends, and announces nothing.
// SQLite and MariaDB report where parsing stopped up to the end of the
// statement. (PostgreSQL: TestPostgresSyntaxErrorAsWithoutPlugin.)
func TestSyntaxErrorAsWithoutPlugin(t *testing.T) {
	writes := map[string]func(db *gorm.DB) error{
		"unfinished condition": func(db *gorm.DB) error { return db.Where("total =").Delete(&Order{}).Error },
		"malformed condition":  func(db *gorm.DB) error { return db.Where("total = = 1").Delete(&Order{}).Error },
		"limit and offset": func(db *gorm.DB) error {
			return db.Where("total > 0").Order("id").Limit(1).Offset(1).Delete(&Order{}).Error
		},
		"soft delete, unfinished": func(db *gorm.DB) error { return db.Where("title =").Delete(&Doc{}).Error },
	}
	for _, d := range []dialect{allDialects[0], allDialects[2]} {
		for name, write := range writes {
			t.Run(d.name+"/"+name, func(t *testing.T) {
				plain := openDB(t, d.open(t), nil, &Order{}, &Doc{})
				e := setup(t, d, nil, telegraphy.Config{})
				for _, db := range []*gorm.DB{plain, e.db} {
					if err := db.Create(&[]Order{{ID: 1, Total: 1}, {ID: 2, Total: 2}}).Error; err != nil {
						t.Fatal(err)
					}
				}
				e.rec.Reset()
				want := write(plain)
				got := write(e.db)
				if want == nil && got == nil {
					return // the dialect ran it (SQLite keeps no LIMIT on a delete)
				}
				if got == nil || want == nil || got.Error() != want.Error() {
					t.Fatalf("with the plugin %v\nwithout it      %v", got, want)
				}
				if strings.Contains(got.Error(), "RETURNING") {
					t.Fatalf("the error quotes the plugin's RETURNING: %v", got)
				}
				expect(t, e.rec)
				if n := len(rows(t, e.db)); n != 2 {
					t.Fatalf("%d orders left, want 2", n)
				}
			})
		}
	}
}

// TestPostgresSyntaxErrorAsWithoutPlugin: on PostgreSQL an update or
// delete whose SQL ends unfinished fails with GORM's own error ("syntax
// error at end of input"), not one at the RETURNING the plugin appends,
// however GORM runs it: in its own transaction, in the caller's (which is
// left aborted, as without the plugin, or usable again after a nested
// transaction rolled back), without a transaction, in the one the plugin
// begins (outbox mode), with prepared statements, with one connection in
// the pool. A statement whose error lies before its end keeps that error.
// Nothing is written or announced.
func TestPostgresSyntaxErrorAsWithoutPlugin(t *testing.T) {
	d := allDialects[1]
	writes := []struct {
		name  string
		write func(db *gorm.DB) *gorm.DB
	}{
		{"delete, unfinished", func(db *gorm.DB) *gorm.DB { return db.Where("total =").Delete(&Order{}) }},
		{"delete, unfinished after an argument", func(db *gorm.DB) *gorm.DB { return db.Where("total > ? AND", 0).Delete(&Order{}) }},
		{"update, unfinished", func(db *gorm.DB) *gorm.DB { return db.Model(&Order{}).Where("total =").Update("status", "x") }},
		{"updates, unfinished after an argument", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Order{}).Where("total > ? AND", 0).Updates(map[string]any{"status": "x", "note": "y"})
		}},
		{"delete, malformed", func(db *gorm.DB) *gorm.DB { return db.Where("total = = 1").Delete(&Order{}) }},
		{"update, malformed", func(db *gorm.DB) *gorm.DB { return db.Model(&Order{}).Where("total = = 1").Update("status", "x") }},
		{"soft delete, unfinished before deleted_at", func(db *gorm.DB) *gorm.DB { return db.Where("title =").Delete(&Doc{}) }},
	}
	for _, mode := range txModes {
		t.Run(mode.name, func(t *testing.T) {
			// Each DB its own Config: GORM keeps the pointer it is given
			// (v1.31 does), so two DBs opened with one share their state.
			plainCfg, pluginCfg := mode.gcfg, mode.gcfg
			plain := openDB(t, d.open(t), &plainCfg, &Order{}, &Doc{})
			e := setup(t, d, &pluginCfg, mode.pcfg)
			for _, db := range []*gorm.DB{plain, e.db} {
				if mode.maxOpen > 0 {
					sqlDB, err := db.DB()
					if err != nil {
						t.Fatal(err)
					}
					sqlDB.SetMaxOpenConns(mode.maxOpen)
				}
				if err := db.Create(&[]Order{{ID: 1, Total: 1}, {ID: 2, Total: 2}}).Error; err != nil {
					t.Fatal(err)
				}
			}
			e.rec.Reset()
			for _, w := range writes {
				t.Run(w.name, func(t *testing.T) {
					// A write waiting for a connection it cannot have
					// fails when the context ends, instead of hanging.
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					want := mode.run(plain.WithContext(ctx), w.write)
					got := mode.run(e.db.WithContext(ctx), w.write)
					var wantPg, gotPg *pgconn.PgError
					if !errors.As(want.err, &wantPg) {
						t.Fatalf("without the plugin: %v, want a *pgconn.PgError", want.err)
					}
					if got.err == nil || got.err.Error() != want.err.Error() {
						t.Fatalf("with the plugin %v\nwithout it      %v", got.err, want.err)
					}
					if !errors.As(got.err, &gotPg) || gotPg.Code != wantPg.Code || gotPg.Position != wantPg.Position {
						t.Fatalf("with the plugin %#v\nwithout it      %#v", gotPg, wantPg)
					}
					if got.rows != want.rows {
						t.Fatalf("RowsAffected %d with the plugin, %d without it", got.rows, want.rows)
					}
					if fmt.Sprint(got.after) != fmt.Sprint(want.after) {
						t.Fatalf("the next statement in the transaction:\nwith the plugin %v\nwithout it      %v", got.after, want.after)
					}
					expect(t, e.rec)
					if g, w := rows(t, e.db), rows(t, plain); !reflect.DeepEqual(g, w) || len(g) != 2 {
						t.Fatalf("orders with the plugin %+v\nwithout it          %+v", g, w)
					}
				})
			}
		})
	}
}

// outcome is what a write run in a transaction mode (txModes) gives.
type outcome struct {
	err   error
	rows  int64 // RowsAffected
	after error // of a statement after it in the same transaction
}

func runDirect(db *gorm.DB, write func(*gorm.DB) *gorm.DB) outcome {
	r := write(db)
	return outcome{err: r.Error, rows: r.RowsAffected}
}

func runInTx(db *gorm.DB, write func(*gorm.DB) *gorm.DB) (o outcome) {
	_ = db.Transaction(func(tx *gorm.DB) error {
		r := write(tx)
		o = outcome{err: r.Error, rows: r.RowsAffected, after: tx.Exec("SELECT 1").Error}
		return errors.New("roll back")
	})
	return o
}

func runNested(db *gorm.DB, write func(*gorm.DB) *gorm.DB) (o outcome) {
	err := db.Transaction(func(tx *gorm.DB) error {
		_ = tx.Transaction(func(tx2 *gorm.DB) error {
			r := write(tx2)
			o = outcome{err: r.Error, rows: r.RowsAffected}
			return r.Error
		})
		o.after = tx.Exec("UPDATE orders SET note = 'kept' WHERE id = 1").Error
		return o.after
	})
	if o.after == nil {
		o.after = err
	}
	return o
}

// txMode is one way GORM runs a write: in which transaction, through
// which connection pool.
type txMode struct {
	name      string
	gcfg      gorm.Config
	pcfg      telegraphy.Config
	maxOpen   int
	run       func(*gorm.DB, func(*gorm.DB) *gorm.DB) outcome
	noTx      bool // the write runs in no transaction of GORM's or the caller's
	rollsBack bool // the caller's transaction rolls the write back
}

var txModes = []txMode{
	{name: "GORM's transaction", run: runDirect},
	{name: "no transaction", gcfg: gorm.Config{SkipDefaultTransaction: true}, run: runDirect, noTx: true},
	{name: "caller's transaction", run: runInTx, rollsBack: true},
	{name: "nested transaction", run: runNested},
	{name: "outbox, no transaction", gcfg: gorm.Config{SkipDefaultTransaction: true},
		pcfg: telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}}, run: runDirect, noTx: true},
	{name: "PrepareStmt", gcfg: gorm.Config{PrepareStmt: true}, run: runDirect},
	{name: "PrepareStmt, no transaction", gcfg: gorm.Config{PrepareStmt: true, SkipDefaultTransaction: true}, run: runDirect, noTx: true},
	{name: "PrepareStmt, caller's transaction", gcfg: gorm.Config{PrepareStmt: true}, run: runInTx, rollsBack: true},
	{name: "one connection", maxOpen: 1, run: runDirect},
	{name: "one connection, no transaction", gcfg: gorm.Config{SkipDefaultTransaction: true}, maxOpen: 1, run: runDirect, noTx: true},
	{name: "one connection, caller's transaction", maxOpen: 1, run: runInTx, rollsBack: true},
	{name: "one connection, PrepareStmt, caller's transaction", gcfg: gorm.Config{PrepareStmt: true}, maxOpen: 1, run: runInTx, rollsBack: true},
}

// pairFor opens d twice as mode runs it: without the plugin, and with a
// plugin publishing to a Recorder, Order and Doc registered with order
// and doc. Both hold the orders 1 and 2 and the docs "a" and "b".
func pairFor(t *testing.T, d dialect, mode txMode, order, doc events.Options) (plain *gorm.DB, e env) {
	t.Helper()
	// Each DB its own Config (see TestPostgresSyntaxErrorAsWithoutPlugin).
	plainCfg, pluginCfg := mode.gcfg, mode.gcfg
	plain = openDB(t, d.open(t), &plainCfg, &Order{}, &Doc{})
	e.db = openDB(t, d.open(t), &pluginCfg, &Order{}, &Doc{})
	e.rec = broker.NewRecorder(nil)
	pcfg := mode.pcfg
	pcfg.Broker = e.rec
	e.p = telegraphy.New(pcfg)
	if err := e.p.Register(Order{}, order); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Register(Doc{}, doc); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Use(e.p); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*gorm.DB{plain, e.db} {
		if mode.maxOpen > 0 {
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			sqlDB.SetMaxOpenConns(mode.maxOpen)
		}
		if err := db.Create(&[]Order{{ID: 1, Total: 1}, {ID: 2, Total: 2}}).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Create(&[]Doc{{ID: 1, Title: "a"}, {ID: 2, Title: "b"}}).Error; err != nil {
			t.Fatal(err)
		}
	}
	e.rec.Reset()
	return plain, e
}

// readBeforeRegistrations register Order and Doc so that the plugin reads
// the rows of updates and soft deletes before them (Channels; an update
// assigning no status reads nothing: ChannelFields), or as plain models.
var readBeforeRegistrations = []struct {
	name       string
	order, doc events.Options
}{
	{"Channels",
		events.Options{Channels: func(m any) []string { return []string{"status:" + m.(*Order).Status} }, ChannelFields: []string{"Status"}},
		events.Options{Channels: func(m any) []string { return []string{"title:" + m.(*Doc).Title} }}},
	{"no Channels", events.Options{}, events.Options{}},
}

// sameOutcome fails t unless a write gave got with the plugin and want
// without it: the same error (on PostgreSQL the same SQLSTATE and
// Position), RowsAffected and next statement in the transaction.
func sameOutcome(t *testing.T, d dialect, got, want outcome) {
	t.Helper()
	if fmt.Sprint(got.err) != fmt.Sprint(want.err) {
		t.Fatalf("with the plugin %v\nwithout it      %v", got.err, want.err)
	}
	if d.name == "postgres" && want.err != nil {
		var wantPg, gotPg *pgconn.PgError
		if !errors.As(want.err, &wantPg) {
			t.Fatalf("without the plugin: %v, want a *pgconn.PgError", want.err)
		}
		if !errors.As(got.err, &gotPg) || gotPg.Code != wantPg.Code || gotPg.Position != wantPg.Position {
			t.Fatalf("with the plugin %#v\nwithout it      %#v", gotPg, wantPg)
		}
	}
	if got.rows != want.rows {
		t.Fatalf("RowsAffected %d with the plugin, %d without it", got.rows, want.rows)
	}
	if fmt.Sprint(got.after) != fmt.Sprint(want.after) {
		t.Fatalf("the next statement in the transaction:\nwith the plugin %v\nwithout it      %v", got.after, want.after)
	}
}

// sameTables fails t unless the orders and docs of got and want are the
// same.
func sameTables(t *testing.T, got, want *gorm.DB) {
	t.Helper()
	if g, w := rows(t, got), rows(t, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("orders with the plugin %+v\nwithout it          %+v", g, w)
	}
	docs := func(db *gorm.DB) (out []Doc) {
		if err := db.Session(&gorm.Session{NewDB: true}).Unscoped().Order("id").Find(&out).Error; err != nil {
			t.Fatal(err)
		}
		return out
	}
	g, w := docs(got), docs(want)
	if len(g) != len(w) {
		t.Fatalf("docs with the plugin %+v\nwithout it        %+v", g, w)
	}
	for i := range g {
		if g[i].ID != w[i].ID || g[i].Title != w[i].Title || g[i].DeletedAt.Valid != w[i].DeletedAt.Valid {
			t.Fatalf("docs with the plugin %+v\nwithout it        %+v", g, w)
		}
	}
}

// TestReadBeforeSyntaxErrorAsWithoutPlugin: where the plugin reads the
// rows an update or delete is about to change before the statement, with
// the statement's conditions (the channels of the rows an update may move
// or a soft delete removes, for a model with Channels; the rows of any
// update on MariaDB, which cannot return them; the keys of the rows an
// update changes on SQLite, in a transaction), a statement whose SQL ends
// unfinished or is malformed fails with the error GORM's statement gives
// without the plugin, not the one of the plugin's read ("at or near
// "ORDER"") or, on PostgreSQL, of the query it wraps a write with the
// caller's RETURNING in: on PostgreSQL the same SQLSTATE and Position
// too. RowsAffected, the next statement in the transaction and the tables
// are as without the plugin, and nothing is announced; on every dialect,
// in every transaction mode.
func TestReadBeforeSyntaxErrorAsWithoutPlugin(t *testing.T) {
	writes := []struct {
		name  string
		write func(db *gorm.DB) *gorm.DB
	}{
		{"update, unfinished", func(db *gorm.DB) *gorm.DB { return db.Model(&Order{}).Where("total =").Update("status", "x") }},
		{"updates, unfinished after an argument", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Order{}).Where("total > ? AND", 0).Updates(map[string]any{"status": "x", "note": "y"})
		}},
		{"update, malformed", func(db *gorm.DB) *gorm.DB { return db.Model(&Order{}).Where("total = = 1").Update("status", "x") }},
		{"update of a loaded row, unfinished", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Order{ID: 1}).Where("total =").Update("status", "x")
		}},
		{"update assigning no channel field, unfinished", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Order{}).Where("total =").Update("note", "x")
		}},
		{"update with the caller's RETURNING, unfinished", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Order{}).Clauses(clause.Returning{}).Where("total =").Update("status", "x")
		}},
		{"soft delete, unfinished", func(db *gorm.DB) *gorm.DB { return db.Where("title =").Delete(&Doc{}) }},
		{"soft delete, malformed", func(db *gorm.DB) *gorm.DB { return db.Where("title = = 'a'").Delete(&Doc{}) }},
		{"delete, unfinished", func(db *gorm.DB) *gorm.DB { return db.Where("total =").Delete(&Order{}) }},
		{"delete with the caller's RETURNING, unfinished", func(db *gorm.DB) *gorm.DB {
			return db.Clauses(clause.Returning{}).Where("total =").Delete(&Order{})
		}},
	}
	for _, d := range allDialects {
		for _, reg := range readBeforeRegistrations {
			for _, mode := range txModes {
				t.Run(d.name+"/"+reg.name+"/"+mode.name, func(t *testing.T) {
					plain, e := pairFor(t, d, mode, reg.order, reg.doc)
					for _, w := range writes {
						t.Run(w.name, func(t *testing.T) {
							// A write waiting for a connection it cannot
							// have fails when the context ends.
							ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
							defer cancel()
							want := mode.run(plain.WithContext(ctx), w.write)
							got := mode.run(e.db.WithContext(ctx), w.write)
							if want.err == nil {
								t.Fatal("the write succeeded without the plugin")
							}
							sameOutcome(t, d, got, want)
							expect(t, e.rec)
							sameTables(t, e.db, plain)
						})
					}
				})
			}
		}
	}
}

// TestReadBeforeUnparsedWriteAsWithoutPlugin: an update whose own SQL
// parses, but whose conditions do not parse in the plugin's read before
// it or its RETURNING (on PostgreSQL a RETURNING in the conditions, on
// MariaDB an ORDER BY, which its UPDATE takes), runs as without the
// plugin and is announced by one bulk_update of the rows it changed: the
// failed statement ran nothing. Outside a transaction, the one the plugin
// begins included (outbox mode); on MariaDB, where a failed statement
// leaves the transaction usable, inside one too. (On PostgreSQL the
// failed statement aborts the transaction it ran in, GORM's or the
// caller's: there the write fails. SQLite's UPDATE takes no condition its
// SELECT refuses but RETURNING, whose rows go-sqlite3 leaves unread when
// it executes the statement, with another statement's RowsAffected.)
func TestReadBeforeUnparsedWriteAsWithoutPlugin(t *testing.T) {
	for _, d := range allDialects[1:] {
		cond := "total = 1 RETURNING id"
		if d.name == "mysql" {
			cond = "total = 1 ORDER BY id"
		}
		write := func(db *gorm.DB) *gorm.DB { return db.Model(&Order{}).Where(cond).Update("status", "x") }
		for _, reg := range readBeforeRegistrations {
			for _, mode := range txModes {
				if d.name == "postgres" && !mode.noTx {
					continue
				}
				t.Run(d.name+"/"+reg.name+"/"+mode.name, func(t *testing.T) {
					plain, e := pairFor(t, d, mode, reg.order, reg.doc)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					var queued int64
					if mode.pcfg.Outbox.Enabled {
						queued = outboxRows(t, e.db)
					}
					want := mode.run(plain.WithContext(ctx), write)
					got := mode.run(e.db.WithContext(ctx), write)
					if want.err != nil || want.rows != 1 {
						t.Fatalf("without the plugin: %v, %d rows", want.err, want.rows)
					}
					sameOutcome(t, d, got, want)
					switch {
					case mode.pcfg.Outbox.Enabled:
						expect(t, e.rec)
						if n := outboxRows(t, e.db) - queued; n != 1 {
							t.Fatalf("%d events put in the outbox, want 1", n)
						}
					case mode.rollsBack:
						expect(t, e.rec)
					default:
						expect(t, e.rec, ev{Type: "bulk_update", Count: 1})
					}
					sameTables(t, e.db, plain)
				})
			}
		}
	}
}
