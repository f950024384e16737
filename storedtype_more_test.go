package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// IntColumns declares integer columns for a float and a string field;
// JSONBColumn a jsonb column (PostgreSQL) for a string field.
type IntColumns struct {
	ID  uint    `json:"id"`
	Qty float64 `json:"qty" gorm:"type:integer"`
	Num string  `json:"num" gorm:"type:integer"`
}

type JSONBColumn struct {
	ID  uint   `json:"id"`
	Doc string `json:"doc" gorm:"type:jsonb"`
}

// TestIntegerColumnOfOtherGoType: a create of a float or numeric text into
// an integer column (MariaDB rounds 2.7 to 3, both servers read "012" as
// 12) announces what the table holds.
func TestIntegerColumnOfOtherGoType(t *testing.T) {
	for _, d := range allDialects[1:] {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			addModel(t, e, &IntColumns{}, events.Options{Name: "stored"})
			row := &IntColumns{Qty: 2, Num: "012"}
			if d.name == "mysql" {
				row.Qty = 2.7
			}
			if err := e.db.Create(row).Error; err != nil {
				t.Fatal(err)
			}
			stReport(t, stCompare[IntColumns](t, e))
		})
	}
}

// TestJSONBColumn: PostgreSQL keeps jsonb in a normal form (keys sorted,
// spaces dropped): a create from a string announces that form.
func TestJSONBColumn(t *testing.T) {
	e := setup(t, stDialect("postgres"), nil, telegraphy.Config{})
	addModel(t, e, &JSONBColumn{}, events.Options{Name: "stored"})
	if err := e.db.Create(&JSONBColumn{Doc: `{"b":1,   "a":2}`}).Error; err != nil {
		t.Fatal(err)
	}
	stReport(t, stCompare[JSONBColumn](t, e))
}
