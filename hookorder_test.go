package telegraphy_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// Counted's AfterCreate hook changes the struct without saving it (Note)
// and, for the name "bump", updates the row it just created (N).
type Counted struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:16"`
	N    int    `json:"n"`
	Note string `json:"note" gorm:"size:16"`
}

func (c *Counted) AfterCreate(tx *gorm.DB) error {
	c.Note = "hook"
	if c.Name == "bump" {
		return tx.Model(c).Update("n", c.N+10).Error
	}
	return nil
}

func counted(id uint, name string, n int) map[string]any {
	return map[string]any{"id": id, "name": name, "n": n, "note": ""}
}

// TestCreateEventBeforeAfterHooks: a create is announced with the row it
// inserted, not with what an AfterCreate hook then set in the struct
// without saving it, and before the events of the writes the hook makes
// (a page applying them in order ends with the row the table holds).
func TestCreateEventBeforeAfterHooks(t *testing.T) {
	for _, d := range allDialects {
		for _, skip := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/SkipDefaultTransaction=%v", d.name, skip), func(t *testing.T) {
				e := setup(t, d, &gorm.Config{SkipDefaultTransaction: skip}, telegraphy.Config{})
				addModel(t, e, &Counted{}, events.Options{Name: "counted"})
				if err := e.db.Create(&Counted{ID: 1, Name: "plain", N: 1}).Error; err != nil {
					t.Fatal(err)
				}
				if err := e.db.Create(&[]*Counted{{ID: 2, Name: "bump", N: 2}, {ID: 3, Name: "plain", N: 3}}).Error; err != nil {
					t.Fatal(err)
				}
				expect(t, e.rec,
					ev{Name: "counted", Type: "create", PK: 1, Data: counted(1, "plain", 1)},
					ev{Name: "counted", Type: "create", PK: 2, Data: counted(2, "bump", 2)},
					ev{Name: "counted", Type: "create", PK: 3, Data: counted(3, "plain", 3)},
					ev{Name: "counted", Type: "update", PK: 2, Data: counted(2, "bump", 12), Changed: []string{"n"}},
				)
				var rows []Counted
				if err := e.db.Session(&gorm.Session{NewDB: true}).Order("id").Find(&rows).Error; err != nil {
					t.Fatal(err)
				}
				if got := fmt.Sprint(rows); got != "[{1 plain 1 } {2 bump 12 } {3 plain 3 }]" {
					t.Fatalf("table %s", got)
				}
			})
		}
	}
}
