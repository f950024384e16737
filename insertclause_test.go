package telegraphy_test

import (
	"reflect"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// compareWithPlain runs run on a plain world and one with the plugin,
// requires the same outcome (error, RowsAffected, tables), and expects the
// events want gives for it.
func compareWithPlain(t *testing.T, d dialect, run func(db *gorm.DB) *gorm.DB, want func(o tableOutcome) []ev) {
	t.Helper()
	plain := openTableWorld(t, d, nil, nil)
	wantOut := plain.outcome(t, run(plain.db))
	rec := broker.NewRecorder(nil)
	p := telegraphy.New(telegraphy.Config{Broker: rec})
	for _, m := range []any{Crate{}, Doc{}} {
		if err := p.Register(m, events.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	w := openTableWorld(t, d, nil, p)
	rec.Reset()
	got := w.outcome(t, run(w.db))
	if !reflect.DeepEqual(got, wantOut) {
		t.Fatalf("with the plugin %+v\nwithout it    %+v", got, wantOut)
	}
	expect(t, rec, want(got)...)
}

// TestInsertClauseTable: clause.Insert{Table: ...} makes GORM's INSERT
// write the table it names, whatever db.Table says: a create into another
// table than the model's announces nothing, one into the model's table
// through db.Table of another is announced.
func TestInsertClauseTable(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name+"/archive", func(t *testing.T) {
			compareWithPlain(t, d, func(db *gorm.DB) *gorm.DB {
				return db.Clauses(clause.Insert{Table: clause.Table{Name: "crates_archive"}}).Create(&Crate{ID: 9, Name: "a9"})
			}, func(o tableOutcome) []ev { return nil })
		})
		t.Run(d.name+"/own through Table of another", func(t *testing.T) {
			compareWithPlain(t, d, func(db *gorm.DB) *gorm.DB {
				return db.Table("crates_archive").Clauses(clause.Insert{Table: clause.Table{Name: "crates"}}).Create(&Crate{ID: 9, Name: "a9"})
			}, func(o tableOutcome) []ev {
				if len(o.tables["crates"]) == 3 { // written to crates
					return []ev{{Name: crateName, Type: "create", PK: 9, Data: crate(9, "a9")}}
				}
				return nil
			})
		})
	}
}
