package telegraphy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AfterFailing's After hooks fail: AfterCreate for the name "failc",
// AfterUpdate for "failu", AfterDelete always. GORM then reports the
// write failed although its statement ran.
type AfterFailing struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:16"`
}

func (h *AfterFailing) AfterCreate(*gorm.DB) error {
	if h.Name == "failc" {
		return errors.New("after create")
	}
	return nil
}

func (h *AfterFailing) AfterUpdate(*gorm.DB) error {
	if h.Name == "failu" {
		return errors.New("after update")
	}
	return nil
}

func (h *AfterFailing) AfterDelete(*gorm.DB) error { return errors.New("after delete") }

func hooked(id uint, name string) map[string]any { return map[string]any{"id": id, "name": name} }

// failAfterWrites creates rows 1-3, then a create, an update and a
// delete whose After hooks fail, each expected to fail.
func failAfterWrites(t *testing.T, db *gorm.DB) {
	t.Helper()
	if err := db.Create(&[]AfterFailing{{ID: 1, Name: "ok"}, {ID: 2, Name: "ok"}, {ID: 3, Name: "ok"}}).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&AfterFailing{ID: 4, Name: "failc"}).Error; err == nil {
		t.Fatal("the create's After hook did not fail it")
	}
	h := AfterFailing{ID: 1}
	if err := db.Model(&h).Updates(AfterFailing{Name: "failu"}).Error; err == nil {
		t.Fatal("the update's After hook did not fail it")
	}
	if err := db.Delete(&AfterFailing{ID: 2}).Error; err == nil {
		t.Fatal("the delete's After hook did not fail it")
	}
}

func afterFailingRows(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var out []AfterFailing
	if err := db.Session(&gorm.Session{NewDB: true}).Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

// TestWriteFailedAfterItsStatement: a create, update or delete that GORM
// reports failed because an After hook failed, after its statement wrote
// the rows, leaves the table as it does without the plugin, and the rows
// that stayed are announced: without a transaction (SkipDefaultTransaction)
// they stay; in GORM's own transaction they are rolled back, with no
// event; in the caller's transaction, committed anyway, they stay.
func TestWriteFailedAfterItsStatement(t *testing.T) {
	wantEvents := []ev{
		{Name: "hooked", Type: "create", PK: 1, Data: hooked(1, "ok")},
		{Name: "hooked", Type: "create", PK: 2, Data: hooked(2, "ok")},
		{Name: "hooked", Type: "create", PK: 3, Data: hooked(3, "ok")},
		{Name: "hooked", Type: "create", PK: 4, Data: hooked(4, "failc")},
		{Name: "hooked", Type: "update", PK: 1, Data: hooked(1, "failu"), Changed: []string{"name"}},
		{Name: "hooked", Type: "delete", PK: 2, Data: hooked(2, "ok")},
	}
	for _, d := range allDialects {
		for _, skip := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/SkipDefaultTransaction=%v", d.name, skip), func(t *testing.T) {
				gcfg := &gorm.Config{SkipDefaultTransaction: skip}
				plain := openDB(t, d.open(t), gcfg, &AfterFailing{})
				failAfterWrites(t, plain)
				want := afterFailingRows(t, plain)

				e := setup(t, d, &gorm.Config{SkipDefaultTransaction: skip}, telegraphy.Config{})
				addModel(t, e, &AfterFailing{}, events.Options{Name: "hooked"})
				failAfterWrites(t, e.db)
				if got := afterFailingRows(t, e.db); got != want {
					t.Fatalf("table %s with the plugin, %s without", got, want)
				}
				if skip {
					expect(t, e.rec, wantEvents...)
				} else {
					expect(t, e.rec, wantEvents[:3]...) // GORM rolled the others back
				}
			})
		}
		t.Run(d.name+"/caller's transaction", func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			addModel(t, e, &AfterFailing{}, events.Options{Name: "hooked"})
			err := e.db.Transaction(func(tx *gorm.DB) error {
				failAfterWrites(t, tx)
				// An upsert, whose rows the plugin reads back.
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&AfterFailing{ID: 5, Name: "failc"}).Error; err == nil {
					t.Error("the upsert's After hook did not fail it")
				}
				return nil // committed although the writes reported errors
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := afterFailingRows(t, e.db); got != "[{1 failu} {3 ok} {4 failc} {5 failc}]" {
				t.Fatalf("table %s", got)
			}
			// The upsert's row is read back before its hook fails.
			upsert := ev{Name: "hooked", Type: "create", PK: 5, Data: hooked(5, "failc")}
			expect(t, e.rec, append(wantEvents, upsert)...)
		})
	}
}
