package telegraphy_test

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// DfKid's parent_id references DfParent with a deferred foreign key: SQLite
// checks it at COMMIT, and a COMMIT that fails on it leaves the
// transaction open.
type DfKid struct {
	ID       uint   `json:"id"`
	ParentID uint   `json:"parent_id"`
	Name     string `json:"name"`
}

type DfParent struct {
	ID uint `json:"id"`
}

// TestRawTransactionCommitFailsOpen: on SQLite, a COMMIT begun with SQL
// that fails on a deferred foreign key leaves the transaction open. Its
// events wait: none is sent by the failed COMMIT, a ROLLBACK TO a
// savepoint set after it drops those after the savepoint, the COMMIT that
// then succeeds sends the others, and a ROLLBACK instead sends none. In
// outbox mode the outbox holds each event once, as the table holds its
// row.
func TestRawTransactionCommitFailsOpen(t *testing.T) {
	d := allDialects[0]
	if d.name != "sqlite" {
		t.Fatalf("allDialects[0] is %s", d.name)
	}
	for _, mode := range []string{"publish", "outbox"} {
		for _, end := range []string{"COMMIT", "ROLLBACK"} {
			t.Run(mode+"/"+end, func(t *testing.T) {
				var pcfg telegraphy.Config
				if mode == "outbox" {
					pcfg.Outbox = telegraphy.OutboxConfig{Enabled: true, NoRelay: true}
				}
				e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, pcfg)
				if mode == "outbox" {
					t.Cleanup(func() { _ = e.p.Close(context.Background()) })
				}
				for _, q := range []string{"DROP TABLE IF EXISTS df_kids", "DROP TABLE IF EXISTS df_parents",
					"CREATE TABLE df_parents (id integer PRIMARY KEY)",
					"CREATE TABLE df_kids (id integer PRIMARY KEY, parent_id integer REFERENCES df_parents(id) DEFERRABLE INITIALLY DEFERRED, name text)"} {
					if err := e.db.Exec(q).Error; err != nil {
						t.Fatal(err)
					}
				}
				for _, m := range []any{DfKid{}, DfParent{}} {
					if err := e.p.Register(m, events.Options{}); err != nil {
						t.Fatal(err)
					}
				}
				err := e.db.Connection(func(conn *gorm.DB) error {
					tx := conn.Session(&gorm.Session{})
					exec := func(q string) error { return tx.Exec(q).Error }
					for _, q := range []string{"PRAGMA foreign_keys = ON", "BEGIN"} {
						if err := exec(q); err != nil {
							return err
						}
					}
					if err := tx.Create(&DfKid{ID: 1, ParentID: 7, Name: "a"}).Error; err != nil {
						return err
					}
					if err := exec("COMMIT"); err == nil {
						t.Fatal("COMMIT with a missing parent succeeded")
					}
					if n := e.rec.Len(); n != 0 {
						t.Errorf("%d events after the failed COMMIT:%s", n, describe(e.rec.Events()))
					}
					if err := exec("SAVEPOINT sp"); err != nil {
						return err
					}
					if err := tx.Create(&DfParent{ID: 8}).Error; err != nil {
						return err
					}
					if err := exec("ROLLBACK TO sp"); err != nil {
						return err
					}
					if err := tx.Create(&DfParent{ID: 7}).Error; err != nil {
						return err
					}
					if n := e.rec.Len(); n != 0 {
						t.Errorf("%d events before the transaction ended:%s", n, describe(e.rec.Events()))
					}
					return exec(end)
				})
				if err != nil {
					t.Fatal(err)
				}
				var kids, parents int64
				e.db.Model(&DfKid{}).Count(&kids)
				e.db.Model(&DfParent{}).Count(&parents)
				want := int64(2)
				if end == "ROLLBACK" {
					want = 0
				}
				if kids+parents != want {
					t.Fatalf("%d kids and %d parents after %s", kids, parents, end)
				}
				if mode == "outbox" {
					expect(t, e.rec)
					if n := outboxRows(t, e.db); n != want {
						t.Fatalf("the outbox holds %d events, the tables %d rows", n, want)
					}
					return
				}
				if end == "ROLLBACK" {
					expect(t, e.rec)
					return
				}
				expect(t, e.rec,
					ev{Name: "telegraphy_test.DfKid", Type: "create", PK: 1, Data: map[string]any{"id": 1, "parent_id": 7, "name": "a"}},
					ev{Name: "telegraphy_test.DfParent", Type: "create", PK: 7, Data: map[string]any{"id": 7}})
			})
		}
	}
}
