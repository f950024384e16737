package telegraphy_test

import (
	"database/sql"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
)

// Line has a composite key and columns of the kinds GORM scans through a
// sql.Scanner or a serializer.
type Line struct {
	OrderID uint            `json:"order_id" gorm:"primaryKey;autoIncrement:false"`
	No      int             `json:"no" gorm:"primaryKey;autoIncrement:false"`
	Qty     int             `json:"qty"`
	Label   *string         `json:"label" gorm:"size:32"`
	Price   sql.NullInt64   `json:"price"`
	Tags    map[string]bool `json:"tags" gorm:"serializer:json"`
	At      time.Time       `json:"at"`
}

// TestUpdateEventsCarryCommittedRows: updates by key and by condition, of
// more rows than one read asks for and of rows with a composite key and
// nullable, serialized and time columns, send one event per changed row
// whose data is the row as it reads after the commit (encoded as the
// plugin encodes a model), and none for the
// rows left alone.
func TestUpdateEventsCarryCommittedRows(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			if err := e.db.AutoMigrate(&Line{}); err != nil {
				t.Fatal(err)
			}
			if err := e.p.Register(Line{}, events.Options{Name: "lines"}); err != nil {
				t.Fatal(err)
			}
			enc, err := model.NewModel(Line{}, events.Options{Name: "lines"})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
			var lines []Line
			for o := uint(1); o <= 3; o++ {
				for no := 1; no <= 20; no++ {
					lines = append(lines, Line{OrderID: o, No: no, Qty: no, Tags: map[string]bool{"new": true}, At: at})
				}
			}
			if err := e.db.Create(&lines).Error; err != nil {
				t.Fatal(err)
			}
			e.rec.Reset()

			label := "gift"
			steps := []struct {
				name  string
				write func(db *gorm.DB) error
				keys  [][2]int // the rows the write changes, in key order
			}{
				{"by key", func(db *gorm.DB) error {
					return db.Model(&Line{OrderID: 2, No: 7}).Updates(map[string]any{"qty": gorm.Expr("qty * 10"), "label": &label, "price": 1990}).Error
				}, [][2]int{{2, 7}}},
				{"by condition, 20 rows", func(db *gorm.DB) error {
					return db.Model(&Line{}).Where("order_id = ?", 1).Updates(Line{Qty: 500, Tags: map[string]bool{"paid": true}}).Error
				}, keyRange(1, 1, 20)},
				{"by condition on the assigned column, 35 rows", func(db *gorm.DB) error {
					return db.Model(&Line{}).Where("qty > ? OR (order_id = ? AND no > ?)", 100, 3, 5).Update("qty", gorm.Expr("qty - 100")).Error
				}, append(keyRange(1, 1, 20), keyRange(3, 6, 20)...)},
				{"by condition matching nothing", func(db *gorm.DB) error {
					return db.Model(&Line{}).Where("qty > ?", 1000).Update("qty", 0).Error
				}, nil},
			}
			for _, s := range steps {
				if err := s.write(e.db); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				got := e.rec.Events()
				e.rec.Reset()
				if len(got) != len(s.keys) {
					t.Fatalf("%s: %d events, want %d:%s", s.name, len(got), len(s.keys), describe(got))
				}
				for i, k := range s.keys {
					var row Line
					if err := e.db.Where("order_id = ? AND no = ?", k[0], k[1]).First(&row).Error; err != nil {
						t.Fatal(err)
					}
					want, err := enc.Data(reflect.ValueOf(row))
					if err != nil {
						t.Fatal(err)
					}
					wantPK := fmt.Sprintf(`{"order_id":%d,"no":%d}`, k[0], k[1])
					if got[i].Meta.EventType != "update" || !reflect.DeepEqual(norm(t, got[i].Meta.PK), norm(t, wantPK)) ||
						!reflect.DeepEqual(norm(t, got[i].Data), norm(t, want)) {
						t.Fatalf("%s: event %d:\n got %s\nwant pk %s data %s", s.name, i, describe(got[i:i+1]), wantPK, want)
					}
				}
			}
		})
	}
}

// keyRange returns the keys (order, no) for no from lo to hi.
func keyRange(order, lo, hi int) [][2]int {
	var out [][2]int
	for no := lo; no <= hi; no++ {
		out = append(out, [2]int{order, no})
	}
	return out
}
