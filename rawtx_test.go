package telegraphy_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/telegraphy-go/telegraphy"
)

// rawForms are the statements that begin, commit and roll back a
// transaction on each database, in several spellings.
var rawForms = map[string][][3]string{
	"sqlite": {
		{"BEGIN", "COMMIT", "ROLLBACK"},
		{"begin immediate transaction;", "END TRANSACTION", "ROLLBACK TRANSACTION"},
	},
	"postgres": {
		{"BEGIN", "COMMIT", "ROLLBACK"},
		{"START TRANSACTION ISOLATION LEVEL READ COMMITTED", "END", "ABORT"},
		{"begin work", "COMMIT WORK;", "rollback work"},
	},
	"mysql": {
		{"START TRANSACTION", "COMMIT", "ROLLBACK"},
		{"BEGIN WORK", "COMMIT AND NO CHAIN", "ROLLBACK AND NO CHAIN"},
	},
}

// TestRawTransaction: a transaction begun and ended with SQL on one
// connection (db.Connection) publishes its events once its COMMIT ran,
// none before, and none when it is rolled back, as a transaction begun
// with db.Begin does.
func TestRawTransaction(t *testing.T) {
	for _, d := range allDialects {
		for _, f := range rawForms[d.name] {
			begin, commit, rollback := f[0], f[1], f[2]
			t.Run(d.name+"/"+begin, func(t *testing.T) {
				e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
				run := func(status, end string) {
					t.Helper()
					err := e.db.Connection(func(conn *gorm.DB) error {
						tx := conn.Session(&gorm.Session{}) // each statement its own
						if err := tx.Exec(begin).Error; err != nil {
							return err
						}
						if err := tx.Create(&Order{Status: status}).Error; err != nil {
							return err
						}
						if err := tx.Model(&Order{}).Where("status = ?", status).Update("total", 5).Error; err != nil {
							return err
						}
						if n := e.rec.Len(); n != 0 {
							t.Errorf("%d events before %s:%s", n, end, describe(e.rec.Events()))
						}
						return tx.Exec(end).Error
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				run("rolled back", rollback)
				if got := rows(t, e.db); len(got) != 0 {
					t.Fatalf("table after %s: %+v", rollback, got)
				}
				expect(t, e.rec)
				run("kept", commit)
				id := rows(t, e.db)[0].ID
				expect(t, e.rec, ev{Type: "create", PK: id, Data: order(id, "kept", 0, "")},
					ev{Type: "update", PK: id, Data: order(id, "kept", 5, ""), Changed: []string{"total"}})
			})
		}
	}
}

// TestRawTransactionSavepoint: ROLLBACK TO a savepoint in a transaction
// begun with SQL drops the events after it; the others are published on
// COMMIT.
func TestRawTransactionSavepoint(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
			err := e.db.Connection(func(conn *gorm.DB) error {
				tx := conn.Session(&gorm.Session{})
				for _, step := range []func() error{
					func() error { return tx.Exec(rawForms[d.name][0][0]).Error },
					func() error { return tx.Create(&Order{Status: "kept"}).Error },
					func() error { return tx.SavePoint("sp").Error },
					func() error { return tx.Create(&Order{Status: "undone"}).Error },
					func() error { return tx.RollbackTo("sp").Error },
					func() error { return tx.Exec("COMMIT").Error },
				} {
					if err := step(); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got := rows(t, e.db)
			if len(got) != 1 || got[0].Status != "kept" {
				t.Fatalf("table %+v", got)
			}
			expect(t, e.rec, ev{Type: "create", PK: got[0].ID, Data: order(got[0].ID, "kept", 0, "")})
		})
	}
}

// TestRawTransactionAborted: on PostgreSQL a statement that fails aborts
// the transaction, and its COMMIT rolls back without an error: nothing
// is published.
func TestRawTransactionAborted(t *testing.T) {
	e := setup(t, stDialect("postgres"), &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
	err := e.db.Connection(func(conn *gorm.DB) error {
		tx := conn.Session(&gorm.Session{})
		if err := tx.Exec("BEGIN").Error; err != nil {
			return err
		}
		if err := tx.Create(&Order{Status: "lost"}).Error; err != nil {
			return err
		}
		if tx.Exec("SELECT * FROM no_such_table").Error == nil {
			t.Error("a query of a missing table succeeded")
		}
		return tx.Exec("COMMIT").Error
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := rows(t, e.db); len(got) != 0 {
		t.Fatalf("table %+v", got)
	}
	expect(t, e.rec)
}

// TestRawTransactionThenGORMs: on PostgreSQL GORM's own transaction begun
// inside one begun with SQL goes on in it (the server warns and keeps
// one), and its COMMIT commits both: the events of both are published
// then.
func TestRawTransactionThenGORMs(t *testing.T) {
	e := setup(t, stDialect("postgres"), nil, telegraphy.Config{})
	err := e.db.Connection(func(conn *gorm.DB) error {
		tx := conn.Session(&gorm.Session{})
		if err := tx.Exec("BEGIN").Error; err != nil {
			return err
		}
		if err := tx.Session(&gorm.Session{SkipDefaultTransaction: true}).Create(&Order{Status: "raw"}).Error; err != nil {
			return err
		}
		if n := e.rec.Len(); n != 0 {
			t.Errorf("%d events before any COMMIT", n)
		}
		return tx.Create(&Order{Status: "gorm"}).Error // GORM's BEGIN and COMMIT
	})
	if err != nil {
		t.Fatal(err)
	}
	got := rows(t, e.db)
	if len(got) != 2 {
		t.Fatalf("table %+v", got)
	}
	expect(t, e.rec, ev{Type: "create", PK: got[0].ID, Data: order(got[0].ID, "raw", 0, "")},
		ev{Type: "create", PK: got[1].ID, Data: order(got[1].ID, "gorm", 0, "")})
}

// onConn runs each step on one connection, stopping at the first error.
func onConn(t *testing.T, db *gorm.DB, steps ...func(tx *gorm.DB) error) error {
	t.Helper()
	return db.Connection(func(conn *gorm.DB) error {
		tx := conn.Session(&gorm.Session{})
		for _, s := range steps {
			if err := s(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

func execStep(q string) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error { return tx.Exec(q).Error }
}

func createStep(status string) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error { return tx.Create(&Order{Status: status}).Error }
}

func beginOf(d string) string { return rawForms[d][0][0] }

// TestRawTransactionOutboxFailure: in outbox mode, when the events cannot
// be written to the outbox at the COMMIT of a transaction begun with SQL,
// it is rolled back and the COMMIT fails with ErrOutbox, as a GORM
// transaction's does: the change and its events are lost together.
func TestRawTransactionOutboxFailure(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true},
				telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}})
			t.Cleanup(func() { _ = e.p.Close(context.Background()) })
			if err := e.db.Migrator().DropTable(telegraphy.DefaultOutboxTable); err != nil {
				t.Fatal(err)
			}
			// Reference: GORM's transaction.
			err := e.db.Transaction(func(tx *gorm.DB) error { return tx.Create(&Order{Status: "gorm"}).Error })
			if !errors.Is(err, telegraphy.ErrOutbox) {
				t.Fatalf("gorm tx: %v", err)
			}
			if got := rows(t, e.db); len(got) != 0 {
				t.Fatalf("gorm tx: table %+v", got)
			}
			err = onConn(t, e.db, execStep(beginOf(d.name)), createStep("raw"), execStep("COMMIT"))
			if !errors.Is(err, telegraphy.ErrOutbox) {
				t.Errorf("raw COMMIT: err %v, want ErrOutbox", err)
			}
			if got := rows(t, e.db); len(got) != 0 {
				t.Fatalf("the COMMIT failed with ErrOutbox, yet the table holds %+v", got)
			}
		})
	}
}

// TestRawTransactionComments: statements that begin or end a transaction
// are recognised with comments around them.
func TestRawTransactionComments(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name+"/commit", func(t *testing.T) {
			e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
			if err := onConn(t, e.db, execStep(beginOf(d.name)), createStep("kept"), execStep("/* x */ COMMIT")); err != nil {
				t.Fatal(err)
			}
			got := rows(t, e.db)
			if len(got) != 1 {
				t.Fatalf("table %+v", got)
			}
			expect(t, e.rec, ev{Type: "create", PK: got[0].ID, Data: order(got[0].ID, "kept", 0, "")})
		})
		t.Run(d.name+"/begin", func(t *testing.T) {
			e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
			if err := onConn(t, e.db, execStep("/* x */ "+beginOf(d.name)), createStep("undone"), execStep("ROLLBACK")); err != nil {
				t.Fatal(err)
			}
			if got := rows(t, e.db); len(got) != 0 {
				t.Fatalf("table %+v", got)
			}
			expect(t, e.rec)
		})
	}
}
