package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Label is written through databases whose naming strategy gives its
// columns other names than GORM's default one.
type Label struct {
	ID       uint   `json:"id"`
	FullName string `json:"full_name" gorm:"size:16"`
	Qty      int    `json:"qty"`
	Secret   string `json:"secret" gorm:"size:16"`
}

const labelName = "telegraphy_test.Label"

// renameFullName names FullName's column "caption".
type renameFullName struct{}

func (renameFullName) Replace(s string) string {
	if s == "FullName" {
		return "Caption"
	}
	return s
}

func label(id uint, name string, qty int) map[string]any {
	return map[string]any{"id": id, "full_name": name, "qty": qty}
}

// TestNamingStrategyChanged: meta.changed names the assigned columns by
// their JSON names whatever column names the database's naming strategy
// gives the fields (NoLowerCase: "FullName", a NameReplacer: "caption"),
// for updates by key and by condition, Save and upserts; a column
// Exclude hides is named by none of them.
func TestNamingStrategyChanged(t *testing.T) {
	strategies := map[string]schema.NamingStrategy{
		"nolower":  {NoLowerCase: true},
		"replacer": {NameReplacer: renameFullName{}},
	}
	for _, d := range allDialects {
		for sn, ns := range strategies {
			t.Run(d.name+"/"+sn, func(t *testing.T) {
				e := setup(t, d, &gorm.Config{NamingStrategy: ns}, telegraphy.Config{})
				addModel(t, e, &Label{}, events.Options{Exclude: []string{"Secret"}})
				if err := e.db.Create(&[]Label{{ID: 1, FullName: "a", Qty: 1}, {ID: 2, FullName: "b", Qty: 2}}).Error; err != nil {
					t.Fatal(err)
				}
				e.rec.Reset()

				if err := e.db.Model(&Label{ID: 1}).Updates(map[string]any{"FullName": "x", "Secret": "s"}).Error; err != nil {
					t.Fatal(err)
				}
				expect(t, e.rec, ev{Name: labelName, Type: "update", PK: 1, Data: label(1, "x", 1), Changed: []string{"full_name"}})

				if err := e.db.Model(&Label{}).Where("1 = 1").Update("Qty", gorm.Expr("2 * 3")).Error; err != nil {
					t.Fatal(err)
				}
				expect(t, e.rec,
					ev{Name: labelName, Type: "update", PK: 1, Data: label(1, "x", 6), Changed: []string{"qty"}},
					ev{Name: labelName, Type: "update", PK: 2, Data: label(2, "b", 6), Changed: []string{"qty"}})

				if err := e.db.Save(&Label{ID: 2, FullName: "s", Qty: 7}).Error; err != nil {
					t.Fatal(err)
				}
				expect(t, e.rec, ev{Name: labelName, Type: "update", PK: 2, Data: label(2, "s", 7), Changed: []string{"full_name", "qty"}})

				if err := e.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Label{{ID: 1, FullName: "u", Qty: 9}, {ID: 3, FullName: "n", Qty: 3}}).Error; err != nil {
					t.Fatal(err)
				}
				expect(t, e.rec,
					ev{Name: labelName, Type: "update", PK: 1, Data: label(1, "u", 9), Changed: []string{"full_name", "qty"}},
					ev{Name: labelName, Type: "create", PK: 3, Data: label(3, "n", 3)})
			})
		}
	}
}
