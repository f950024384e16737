package telegraphy_test

import (
	"errors"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// BeforeFailing's BeforeCreate hook fails when Fail is set.
type BeforeFailing struct {
	ID   uint `json:"id"`
	Fail bool `json:"fail"`
}

func (r *BeforeFailing) BeforeCreate(*gorm.DB) error {
	if r.Fail {
		return errors.New("before create refused")
	}
	return nil
}

// TestBeforeHookFailsOnReusedChain: a create whose BeforeCreate hook fails
// inserts nothing and is announced by nothing, also on a chain reused from
// an earlier create (whose RowsAffected GORM leaves in place).
func TestBeforeHookFailsOnReusedChain(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, &gorm.Config{SkipDefaultTransaction: true}, telegraphy.Config{})
			addModel(t, e, &BeforeFailing{}, events.Options{Name: "beforefailing"})
			q := e.db.Where("1 = 1")
			if err := q.Create(&BeforeFailing{ID: 1}).Error; err != nil {
				t.Fatal(err)
			}
			if err := q.Create(&BeforeFailing{ID: 2, Fail: true}).Error; err == nil {
				t.Fatal("no error")
			}
			var n int64
			e.db.Session(&gorm.Session{NewDB: true}).Model(&BeforeFailing{}).Count(&n)
			if n != 1 {
				t.Fatalf("%d rows", n)
			}
			expect(t, e.rec, ev{Name: "beforefailing", Type: "create", PK: 1, Data: map[string]any{"id": 1, "fail": false}})
		})
	}
}
