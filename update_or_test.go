package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
)

// TestInstanceUpdateWithOr: an update by a loaded instance whose WHERE
// also has an Or changes two rows (GORM builds "id = 1 OR id = 2"): each
// gets its update event.
func TestInstanceUpdateWithOr(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			e.db.Create(&[]Order{{Status: "a"}, {Status: "b"}})
			e.rec.Reset()
			res := e.db.Model(&Order{ID: 1}).Or("id = ?", 2).Update("status", "x")
			if res.Error != nil || res.RowsAffected != 2 {
				t.Fatalf("update: %v, %d rows", res.Error, res.RowsAffected)
			}
			evs := e.rec.Events()
			seen := map[float64]bool{}
			for _, ev := range evs {
				if pk, ok := ev.Meta.PK.(float64); ok && ev.Meta.EventType == "update" {
					seen[pk] = true
				}
			}
			if !seen[1] || !seen[2] {
				t.Fatalf("table: %+v\nevents:%s", rows(t, e.db), describe(evs))
			}
		})
	}
}
