package telegraphy_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// TestUpsertMeetsPlainInsert: in each round a plain Create and an upsert
// (incrementing qty by 10 through its conflict clause) of the same new
// keys run at once. Whichever inserted a key announces its create; the
// upsert that met the row the plain insert had committed announces the
// update it made, never a second create. PostgreSQL at READ COMMITTED,
// MariaDB at REPEATABLE READ (where one of the two may be chosen as a
// deadlock victim: a failed plain insert, a retried upsert).
func TestUpsertMeetsPlainInsert(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 3
	}
	const keys = 4
	inc := clause.OnConflict{Columns: []clause.Column{{Name: "id"}},
		DoUpdates: clause.Assignments(map[string]any{"qty": gorm.Expr("things.qty + 10")})}
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			setupThings(t, e)
			for round := 0; round < rounds; round++ {
				e.rec.Reset()
				base := uint(100 + round*keys)
				plainOK := make([]bool, keys)
				var wg sync.WaitGroup
				errs := make(chan error, 2*keys)
				for k := 0; k < keys; k++ {
					id := base + uint(k)
					wg.Add(2)
					go func() {
						defer wg.Done()
						err := e.db.Create(&Thing{ID: id, Code: fmt.Sprint("p", id), Name: "plain", Qty: 1}).Error
						plainOK[k] = err == nil
					}()
					go func() {
						defer wg.Done()
						for {
							err := e.db.Clauses(inc).Create(&Thing{ID: id, Code: fmt.Sprint("u", id), Name: "upsert", Qty: 5}).Error
							if err != nil && strings.Contains(err.Error(), "Deadlock") {
								continue // MariaDB chose it as the victim: as the error says, try again
							}
							if err != nil {
								errs <- err
							}
							return
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Fatalf("round %d: upsert: %v", round, err)
				}
				byID := map[uint][]events.Event{}
				for _, ev := range e.rec.Events() {
					byID[uint(ev.Meta.PK.(float64))] = append(byID[uint(ev.Meta.PK.(float64))], ev)
				}
				table := map[uint]Thing{}
				for _, th := range things(t, e.db) {
					table[th.ID] = th
				}
				for k := 0; k < keys; k++ {
					id := base + uint(k)
					evs := byID[id]
					row := table[id]
					want := []string{"create"}
					first := Thing{ID: id, Code: row.Code, Name: "upsert", Qty: 5}
					if plainOK[k] {
						want = []string{"create", "update"}
						first = Thing{ID: id, Code: row.Code, Name: "plain", Qty: 1}
						if row.Qty != 11 {
							t.Fatalf("round %d: row %+v after a plain insert and an upsert", round, row)
						}
					}
					if len(evs) != len(want) {
						t.Fatalf("round %d: row %d (plain insert succeeded: %v): events %s, want %v", round, id, plainOK[k], describe(evs), want)
					}
					for i, ev := range evs {
						if ev.Meta.EventType != want[i] {
							t.Fatalf("round %d: row %d (plain insert succeeded: %v): events %s, want %v", round, id, plainOK[k], describe(evs), want)
						}
					}
					var got, last Thing
					if err := jsonUnmarshal(evs[0].Data, &got); err != nil {
						t.Fatal(err)
					}
					if err := jsonUnmarshal(evs[len(evs)-1].Data, &last); err != nil {
						t.Fatal(err)
					}
					if got != first || last != row {
						t.Fatalf("round %d: row %d: events %s; first should carry %+v, last the table's %+v", round, id, describe(evs), first, row)
					}
				}
			}
		})
	}
}

// Gadget's name is unique in the database only: the model does not say so.
type Gadget struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:16"`
	Qty  int    `json:"qty"`
}

func gadget(id uint, name string, qty int) map[string]any {
	return map[string]any{"id": id, "name": name, "qty": qty}
}

// setupGadgets adds Gadget to e, with a unique constraint on name made in
// the database, and gadgets 1 "a" and 2 "b", their events forgotten.
func setupGadgets(t *testing.T, e env, d dialect) {
	t.Helper()
	if err := e.db.AutoMigrate(&Gadget{}); err != nil {
		t.Fatal(err)
	}
	ddl := "ALTER TABLE gadgets ADD CONSTRAINT gadgets_name_key UNIQUE (name)"
	if d.name == "sqlite" {
		ddl = "CREATE UNIQUE INDEX gadgets_name_key ON gadgets (name)"
	}
	if err := e.db.Exec(ddl).Error; err != nil {
		t.Fatal(err)
	}
	if err := e.p.Register(Gadget{}, events.Options{Name: "gadgets"}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Create([]Gadget{{ID: 1, Name: "a", Qty: 1}, {ID: 2, Name: "b", Qty: 2}}).Error; err != nil {
		t.Fatal(err)
	}
	if d.name == "postgres" {
		e.db.Exec("SELECT setval('gadgets_id_seq', 2)")
	}
	e.rec.Reset()
}

// TestUpsertOnUndeclaredKey: rows given without their primary key meet a
// unique key the model does not declare. PostgreSQL (ON CONSTRAINT) and
// SQLite (ON CONFLICT without a target) tell the row updated from the row
// inserted; MySQL, whose ON DUPLICATE KEY may have met any unique key,
// sends one bulk_update, never a create for a row that existed.
func TestUpsertOnUndeclaredKey(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			setupGadgets(t, e, d)
			qty := clause.OnConflict{DoUpdates: clause.AssignmentColumns([]string{"qty"})}
			if d.name == "postgres" {
				qty.OnConstraint = "gadgets_name_key"
			}
			if err := e.db.Clauses(qty).Create(&[]Gadget{{Name: "b", Qty: 20}, {Name: "c", Qty: 3}}).Error; err != nil {
				t.Fatal(err)
			}
			var c Gadget
			if err := e.db.Where("name = ?", "c").First(&c).Error; err != nil {
				t.Fatal(err)
			}
			if d.name == "mysql" {
				expect(t, e.rec, ev{Name: "gadgets", Type: "bulk_update", Count: 2})
			} else {
				expect(t, e.rec, ev{Name: "gadgets", Type: "update", PK: 2, Data: gadget(2, "b", 20), Changed: []string{"qty"}},
					ev{Name: "gadgets", Type: "create", PK: c.ID, Data: gadget(c.ID, "c", 3)})
			}

			// One row, meeting the key: its update (with the values it
			// had: the plugin did not read it before), or on MySQL the
			// bulk event.
			if err := e.db.Clauses(qty).Create(&Gadget{Name: "a", Qty: 1}).Error; err != nil {
				t.Fatal(err)
			}
			if d.name == "mysql" {
				expect(t, e.rec, ev{Name: "gadgets", Type: "bulk_update", Count: 1})
			} else {
				expect(t, e.rec, ev{Name: "gadgets", Type: "update", PK: 1, Data: gadget(1, "a", 1), Changed: []string{"qty"}})
			}

			// DO NOTHING on that key: nothing for the row met (MySQL
			// cannot tell it from an insert: the bulk event), a create for
			// the new one.
			nothing := clause.OnConflict{DoNothing: true}
			if d.name == "postgres" {
				nothing.OnConstraint = "gadgets_name_key"
			}
			if err := e.db.Clauses(nothing).Create(&Gadget{Name: "a", Qty: 9}).Error; err != nil {
				t.Fatal(err)
			}
			if d.name == "mysql" {
				expect(t, e.rec, ev{Name: "gadgets", Type: "bulk_update", Count: 1})
			} else {
				expect(t, e.rec)
			}
			if err := e.db.Clauses(nothing).Create(&Gadget{Name: "d", Qty: 4}).Error; err != nil {
				t.Fatal(err)
			}
			var dd Gadget
			if err := e.db.Where("name = ?", "d").First(&dd).Error; err != nil {
				t.Fatal(err)
			}
			if d.name == "mysql" {
				expect(t, e.rec, ev{Name: "gadgets", Type: "bulk_update", Count: 1})
			} else {
				expect(t, e.rec, ev{Name: "gadgets", Type: "create", PK: dd.ID, Data: gadget(dd.ID, "d", 4)})
			}
		})
	}
}

// Badge has no column with a database default, so GORM executes its
// INSERT without RETURNING.
type Badge struct {
	Code  string `json:"code" gorm:"primaryKey;size:16"`
	Label string `json:"label" gorm:"size:16"`
}

// TestUpsertWithoutReturning: an upsert GORM executes (no RETURNING of
// its own) and one with the caller's RETURNING announce the same rows,
// and the caller's values are what GORM leaves in them without the
// plugin.
func TestUpsertWithoutReturning(t *testing.T) {
	label := clause.OnConflict{Columns: []clause.Column{{Name: "code"}}, DoUpdates: clause.AssignmentColumns([]string{"label"})}
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			if err := e.db.AutoMigrate(&Badge{}); err != nil {
				t.Fatal(err)
			}
			if err := e.p.Register(Badge{}, events.Options{Name: "tags"}); err != nil {
				t.Fatal(err)
			}
			if err := e.db.Create(&[]Badge{{"a", "x"}, {"b", "y"}}).Error; err != nil {
				t.Fatal(err)
			}
			e.rec.Reset()
			in := []Badge{{"a", "x2"}, {"b", "y"}, {"c", "z"}}
			if err := e.db.Clauses(label).Create(&in).Error; err != nil {
				t.Fatal(err)
			}
			expectBadges(t, e, "update a x2", "create c z")
			if d.name == "mysql" {
				return // MariaDB has no INSERT ... RETURNING into the model here
			}
			out := []Badge{{"a", "x3"}, {"d", "w"}}
			if err := e.db.Clauses(label, clause.Returning{Columns: []clause.Column{{Name: "label"}}}).Create(&out).Error; err != nil {
				t.Fatal(err)
			}
			if out[0] != (Badge{"a", "x3"}) || out[1] != (Badge{"d", "w"}) {
				t.Fatalf("caller's rows after the upsert: %+v", out)
			}
			expectBadges(t, e, "update a x3", "create d w")
		})
	}
}

// expectBadges asserts the events published since the last Reset, each
// given as "type code label"; updates name label as changed.
func expectBadges(t *testing.T, e env, want ...string) {
	t.Helper()
	evs := e.rec.Events()
	e.rec.Reset()
	var got []string
	for _, ev := range evs {
		var b Badge
		if err := jsonUnmarshal(ev.Data, &b); err != nil {
			t.Fatal(err)
		}
		if ev.Name != "tags" || ev.Meta.PK != b.Code || ev.Meta.EventType == "update" && fmt.Sprint(ev.Meta.Changed) != "[label]" {
			t.Fatalf("event %s", describe([]events.Event{ev}))
		}
		got = append(got, ev.Meta.EventType+" "+b.Code+" "+b.Label)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestUpsertsInOneTransaction: a second upsert in the transaction that
// writes no row announces nothing, whatever the first wrote; and an
// upsert of a parent with a new kid (GORM's own upsert of the
// association runs after the parent's statement) announces each row once,
// as what it is, the parent first.
func TestUpsertsInOneTransaction(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			setupThings(t, e)
			err := e.db.Transaction(func(tx *gorm.DB) error {
				nothing := tx.Clauses(clause.OnConflict{DoNothing: true})
				if err := nothing.Create(&[]Thing{{ID: 5, Code: "e", Name: "e", Qty: 5}}).Error; err != nil {
					return err
				}
				return nothing.Create(&[]Thing{{ID: 5, Code: "e", Name: "again", Qty: 6}, {ID: 1, Code: "a", Name: "again"}}).Error
			})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Name: "things", Type: "create", PK: 5, Data: thing(5, "e", "e", 5)})

			if err := e.db.AutoMigrate(&Parent{}, &Kid{}); err != nil {
				t.Fatal(err)
			}
			for _, m := range []any{Parent{}, Kid{}} {
				if err := e.p.Register(m, events.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Parent{ID: 7, Name: "p", Kids: []Kid{{Name: "k"}}}).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec,
				ev{Name: "telegraphy_test.Parent", Type: "create", PK: 7, Data: map[string]any{"id": 7, "name": "p"}},
				ev{Name: "telegraphy_test.Kid", Type: "create", PK: 1, Data: map[string]any{"id": 1, "parent_id": 7, "name": "k"}})
		})
	}
}

// TestDeleteReturningExact: a hard delete with the caller's RETURNING
// announces exactly the rows it deleted, into a struct (GORM keeps the
// first) or a slice, and leaves the caller's values as GORM does.
func TestDeleteReturningExact(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			for i := 1; i <= 4; i++ {
				if err := e.db.Create(&Order{Status: "old", Total: i}).Error; err != nil {
					t.Fatal(err)
				}
			}
			e.rec.Reset()
			var one Order
			if err := e.db.Clauses(clause.Returning{}).Where("total <= ?", 2).Delete(&one).Error; err != nil {
				t.Fatal(err)
			}
			if d.name != "mysql" && one.Total == 0 {
				t.Fatalf("caller's row after the delete: %+v", one)
			}
			expect(t, e.rec, ev{Type: "delete", PK: 1, Data: order(1, "old", 1, "")}, ev{Type: "delete", PK: 2, Data: order(2, "old", 2, "")})
			var many []Order
			if err := e.db.Clauses(clause.Returning{}).Where("total > ?", 2).Delete(&many).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Type: "delete", PK: 3, Data: order(3, "old", 3, "")}, ev{Type: "delete", PK: 4, Data: order(4, "old", 4, "")})
		})
	}
}

// mariaDBReadCommitted is MariaDB with every session at READ COMMITTED.
func mariaDBReadCommitted(t testing.TB) gorm.Dialector {
	dsn := testenv.MySQLDSN(t)
	if !strings.Contains(dsn, "?") {
		dsn += "?"
	} else {
		dsn += "&"
	}
	return mysql.Open(dsn + "tx_isolation=%27READ-COMMITTED%27")
}

// TestMySQLBelowRepeatableRead: on MariaDB at READ COMMITTED (the
// session's, or a transaction's from BeginTx) the locking read before an
// update by condition takes no gap locks, so each sends one bulk event
// counting the rows the statement changed; racing inserters, every row
// changed is counted once. A hard delete (RETURNING) and an update by a
// loaded row's key are exact at any level.
func TestMySQLBelowRepeatableRead(t *testing.T) {
	rounds := 10
	if testing.Short() {
		rounds = 2
	}
	d := dialect{"mysql-rc", mariaDBReadCommitted}
	e := setup(t, d, nil, telegraphy.Config{})
	if err := e.db.AutoMigrate(&Job{}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Register(Job{}, events.Options{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	var level string
	if err := e.db.Raw("SELECT @@tx_isolation").Scan(&level).Error; err != nil || level != "READ-COMMITTED" {
		t.Fatalf("session isolation %q, %v", level, err)
	}
	for round := 1; round <= rounds; round++ {
		bulkRound(t, e, "update", round)
	}
	// A hard delete reports its rows (RETURNING, MariaDB 10.5 and
	// later): exact at every level.
	for round := 1; round <= rounds; round++ {
		raceRound(t, e, "delete", 100+round)
	}

	// A transaction begun at READ COMMITTED on a REPEATABLE READ session.
	rr := setup(t, allDialects[2], nil, telegraphy.Config{})
	for i := 1; i <= 3; i++ {
		rr.db.Create(&Order{Status: "new", Total: i})
	}
	rr.rec.Reset()
	err := rr.db.Transaction(func(tx *gorm.DB) error {
		return tx.Model(&Order{}).Where("status = ?", "new").Update("status", "paid").Error
	}, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rr.rec, ev{Type: "bulk_update", Count: 3})
	err = rr.db.Transaction(func(tx *gorm.DB) error {
		return tx.Model(&Order{ID: 2}).Update("status", "shipped").Error
	}, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rr.rec, ev{Type: "update", PK: 2, Data: order(2, "shipped", 2, ""), Changed: []string{"status"}})
	// At the session's REPEATABLE READ: one event per row.
	if err := rr.db.Model(&Order{}).Where("total < ?", 3).Update("note", "x").Error; err != nil {
		t.Fatal(err)
	}
	expect(t, rr.rec, ev{Type: "update", PK: 1, Data: order(1, "paid", 1, "x"), Changed: []string{"note"}},
		ev{Type: "update", PK: 2, Data: order(2, "shipped", 2, "x"), Changed: []string{"note"}})
	// An upsert inserting a row at READ COMMITTED: the read before it
	// could not keep the key from being inserted meanwhile.
	err = rr.db.Transaction(func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Order{ID: 9, Status: "new", Total: 9}).Error
	}, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, rr.rec, ev{Type: "bulk_update", Count: 1})
}

// bulkRound is raceRound for an updater whose events are bulk ones:
// every inserted job has its create, and the bulk counts add up to the
// rows the updater changed (each job once).
func bulkRound(t *testing.T, e env, op string, round int) {
	t.Helper()
	const inserters, each = 4, 15
	e.rec.Reset()
	tag := fmt.Sprintf("%s-r%d", op, round)
	runRace(t, e, round, tag, func() error {
		return e.db.Model(&Job{}).Where("status = ? AND tag LIKE ?", "queued", tag+"-%").Update("status", "done").Error
	})
	creates, counted := 0, int64(0)
	for _, ev := range e.rec.Events() {
		switch ev.Meta.EventType {
		case "create":
			creates++
		case "bulk_" + op:
			counted += ev.Meta.Count
		default:
			t.Fatalf("%s round %d: event %s", op, round, describe([]events.Event{ev}))
		}
	}
	if creates != inserters*each || counted != inserters*each {
		t.Fatalf("%s round %d: %d creates and bulk counts adding up to %d, want %d each", op, round, creates, counted, inserters*each)
	}
}

// Hooked fails its AfterCreate hook for the name "fail".
type Hooked struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:16"`
}

var errHook = errors.New("hook failed")

func (h *Hooked) AfterCreate(*gorm.DB) error {
	if h.Name == "fail" {
		return errHook
	}
	return nil
}

// TestSkipDefaultTransactionKeepsWrites: with SkipDefaultTransaction, a
// create from maps or an upsert that GORM reports failed after its
// statement wrote the rows (GORM's scan into a slice of maps, an
// AfterCreate hook) leaves the table as it is without the plugin, with
// the same error, and the rows written are announced. The plugin commits
// its transaction before the hooks run, so the upsert's row is announced
// exactly; the maps after GORM's scan failed exactly on PostgreSQL (the
// statement reported them), by one bulk_update elsewhere.
func TestSkipDefaultTransactionKeepsWrites(t *testing.T) {
	type result struct {
		err   string
		items []Item
		hooks []Hooked
	}
	run := func(t *testing.T, db *gorm.DB) result {
		var r result
		var errs []string
		err := db.Model(&Item{}).Create([]map[string]any{{"name": "s1"}, {"name": "s2", "qty": 3}}).Error
		errs = append(errs, fmt.Sprint(err))
		err = db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Hooked{ID: 1, Name: "fail"}).Error
		errs = append(errs, fmt.Sprint(err))
		r.err = strings.Join(errs, " | ")
		db.Order("id").Find(&r.items)
		db.Order("id").Find(&r.hooks)
		return r
	}
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			gcfg := &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard}
			plain, err := gorm.Open(d.open(t), gcfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := plain.AutoMigrate(&Item{}, &Hooked{}); err != nil {
				t.Fatal(err)
			}
			want := run(t, plain)
			if sqlDB, err := plain.DB(); err == nil {
				sqlDB.Close()
			}
			e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
			if err := e.db.AutoMigrate(&Item{}, &Hooked{}); err != nil {
				t.Fatal(err)
			}
			for _, m := range []any{Item{}, Hooked{}} {
				if err := e.p.Register(m, events.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			got := run(t, e.db)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("with the plugin %+v, without %+v", got, want)
			}
			if len(want.items) != 2 || len(want.hooks) != 1 || !strings.Contains(want.err, errHook.Error()) {
				t.Fatalf("without the plugin: %+v", want)
			}
			itemName, hookName := "telegraphy_test.Item", "telegraphy_test.Hooked"
			// The hooked row is announced before its AfterCreate hook fails.
			hooked := ev{Name: hookName, Type: "create", PK: 1, Data: map[string]any{"id": 1, "name": "fail"}}
			switch {
			case d.name == "postgres", want.err == "<nil> | "+errHook.Error(): // MySQL: GORM fills the maps' keys
				expect(t, e.rec, ev{Name: itemName, Type: "create", PK: 1, Data: item(1, "s1", 0, "none")}, // GORM inserts NULL where another map sets the column
					ev{Name: itemName, Type: "create", PK: 2, Data: item(2, "s2", 3, "none")},
					hooked)
			default:
				expect(t, e.rec, ev{Name: itemName, Type: "bulk_update", Count: 2}, hooked)
			}
		})
	}
}

// TestPreparedStatementsReadTheLevel: with GORM's prepared statements, a
// query the server refuses to prepare (MariaDB before 11.1 knows no
// @@transaction_isolation) gets an error, not a panic, and the plugin
// asks for the older variable.
func TestPreparedStatementsReadTheLevel(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, &gorm.Config{PrepareStmt: true}, telegraphy.Config{})
			for i := 1; i <= 3; i++ {
				if err := e.db.Create(&Order{Status: "new", Total: i}).Error; err != nil {
					t.Fatal(err)
				}
			}
			e.rec.Reset()
			err := e.db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&Order{}).Where("total < ?", 3).Update("status", "paid").Error
			})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Type: "update", PK: 1, Data: order(1, "paid", 1, ""), Changed: []string{"status"}},
				ev{Type: "update", PK: 2, Data: order(2, "paid", 2, ""), Changed: []string{"status"}})
			if err := e.db.Where("total = ?", 3).Delete(&Order{}).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Type: "delete", PK: 3, Data: order(3, "new", 3, "")})
		})
	}
}
