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
	"gorm.io/gorm"
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
	type outcome struct {
		err   error
		rows  int64 // RowsAffected
		after error // of a statement after it in the same transaction
	}
	direct := func(db *gorm.DB, write func(*gorm.DB) *gorm.DB) outcome {
		r := write(db)
		return outcome{err: r.Error, rows: r.RowsAffected}
	}
	inTx := func(db *gorm.DB, write func(*gorm.DB) *gorm.DB) (o outcome) {
		_ = db.Transaction(func(tx *gorm.DB) error {
			r := write(tx)
			o = outcome{err: r.Error, rows: r.RowsAffected, after: tx.Exec("SELECT 1").Error}
			return errors.New("roll back")
		})
		return o
	}
	nested := func(db *gorm.DB, write func(*gorm.DB) *gorm.DB) (o outcome) {
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
	modes := []struct {
		name    string
		gcfg    gorm.Config
		pcfg    telegraphy.Config
		maxOpen int
		run     func(*gorm.DB, func(*gorm.DB) *gorm.DB) outcome
	}{
		{name: "GORM's transaction", run: direct},
		{name: "no transaction", gcfg: gorm.Config{SkipDefaultTransaction: true}, run: direct},
		{name: "caller's transaction", run: inTx},
		{name: "nested transaction", run: nested},
		{name: "outbox, no transaction", gcfg: gorm.Config{SkipDefaultTransaction: true},
			pcfg: telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}}, run: direct},
		{name: "PrepareStmt", gcfg: gorm.Config{PrepareStmt: true}, run: direct},
		{name: "PrepareStmt, no transaction", gcfg: gorm.Config{PrepareStmt: true, SkipDefaultTransaction: true}, run: direct},
		{name: "PrepareStmt, caller's transaction", gcfg: gorm.Config{PrepareStmt: true}, run: inTx},
		{name: "one connection", maxOpen: 1, run: direct},
		{name: "one connection, no transaction", gcfg: gorm.Config{SkipDefaultTransaction: true}, maxOpen: 1, run: direct},
		{name: "one connection, caller's transaction", maxOpen: 1, run: inTx},
		{name: "one connection, PrepareStmt, caller's transaction", gcfg: gorm.Config{PrepareStmt: true}, maxOpen: 1, run: inTx},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			gcfg := mode.gcfg
			plain := openDB(t, d.open(t), &gcfg, &Order{}, &Doc{})
			gcfg = mode.gcfg
			e := setup(t, d, &gcfg, mode.pcfg)
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
