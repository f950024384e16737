package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm/clause"
)

// Coded has a unique code.
type Coded struct {
	ID   uint   `json:"id"`
	Code string `json:"code" gorm:"size:16;uniqueIndex"`
	Name string `json:"name" gorm:"size:16"`
}

// TestUpdateOrReplace: SQLite's UPDATE OR REPLACE deletes the rows holding
// a unique key the update gives another; which ones is not known, so it is
// announced as one bulk_update (the table matches plain GORM's).
func TestUpdateOrReplace(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	addModel(t, e, &Coded{}, events.Options{Name: "coded"})
	if err := e.db.Create(&[]Coded{{Code: "a", Name: "one"}, {Code: "b", Name: "two"}}).Error; err != nil {
		t.Fatal(err)
	}
	e.rec.Reset()
	res := e.db.Clauses(clause.Update{Modifier: "OR REPLACE"}).Model(&Coded{ID: 1}).Update("code", "b")
	if res.Error != nil || res.RowsAffected != 1 {
		t.Fatalf("update: %v, %d rows", res.Error, res.RowsAffected)
	}
	var all []Coded
	if err := e.db.Order("id").Find(&all).Error; err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != 1 || all[0].Code != "b" {
		t.Fatalf("table %+v, want row 1 alone with code b", all)
	}
	expect(t, e.rec, ev{Name: "coded", Type: "bulk_update", Count: 1})
}
