package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// seed inserts orders 1..n with status "new", total i, note "n<i>" and
// forgets their events.
func seed(t *testing.T, e env, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := e.db.Create(&Order{Status: "new", Total: i, Note: "n" + string(rune('0'+i))}).Error; err != nil {
			t.Fatal(err)
		}
	}
	e.rec.Reset()
}

func note(i int) string { return "n" + string(rune('0'+i)) }

// TestMutations covers every way GORM changes rows (issue item 5) on
// SQLite, asserting the exact events.
func TestMutations(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, db *gorm.DB) error
		want []ev
	}{
		{"Create struct", func(t *testing.T, db *gorm.DB) error {
			return db.Create(&Order{Status: "x", Total: 7, Secret: "s"}).Error
		}, []ev{{Type: "create", PK: 4, Data: order(4, "x", 7, "")}}},
		{"Create slice", func(t *testing.T, db *gorm.DB) error {
			return db.Create([]*Order{{Status: "x"}, {Status: "y"}}).Error
		}, []ev{{Type: "create", PK: 4, Data: order(4, "x", 0, "")}, {Type: "create", PK: 5, Data: order(5, "y", 0, "")}}},
		{"CreateInBatches", func(t *testing.T, db *gorm.DB) error {
			return db.CreateInBatches([]Order{{Status: "a"}, {Status: "b"}, {Status: "c"}}, 2).Error
		}, []ev{{Type: "create", PK: 4, Data: order(4, "a", 0, "")}, {Type: "create", PK: 5, Data: order(5, "b", 0, "")},
			{Type: "create", PK: 6, Data: order(6, "c", 0, "")}}},
		{"Save inserts", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&Order{Status: "x", Total: 1}).Error
		}, []ev{{Type: "create", PK: 4, Data: order(4, "x", 1, "")}}},
		{"Save updates every column", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&Order{ID: 2, Status: "saved", Total: 20, Note: "s"}).Error
		}, []ev{{Type: "update", PK: 2, Data: order(2, "saved", 20, "s"), Changed: []string{"status", "total", "note"}}}},
		{"Updates struct", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 2}).Updates(Order{Status: "paid", Total: 9}).Error
		}, []ev{{Type: "update", PK: 2, Data: order(2, "paid", 9, note(2)), Changed: []string{"status", "total"}}}},
		{"Updates map on a partially loaded struct", func(t *testing.T, db *gorm.DB) error {
			o := Order{ID: 2, Status: "stale"} // not read from the database
			return db.Model(&o).Updates(map[string]any{"note": "fresh"}).Error
		}, []ev{{Type: "update", PK: 2, Data: order(2, "new", 2, "fresh"), Changed: []string{"note"}}}},
		{"Update one column", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 3}).Update("status", "paid").Error
		}, []ev{{Type: "update", PK: 3, Data: order(3, "paid", 3, note(3)), Changed: []string{"status"}}}},
		{"Update with an expression", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 3}).Update("total", gorm.Expr("total * 10")).Error
		}, []ev{{Type: "update", PK: 3, Data: order(3, "new", 30, note(3)), Changed: []string{"total"}}}},
		{"UpdateColumn", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 1}).UpdateColumn("total", 100).Error
		}, []ev{{Type: "update", PK: 1, Data: order(1, "new", 100, note(1)), Changed: []string{"total"}}}},
		{"UpdateColumns", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 1}).UpdateColumns(Order{Status: "c", Note: "cols"}).Error
		}, []ev{{Type: "update", PK: 1, Data: order(1, "c", 1, "cols"), Changed: []string{"status", "note"}}}},
		{"Update of a hidden column lists nothing hidden", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 1}).Updates(map[string]any{"secret": "x", "total": 5}).Error
		}, []ev{{Type: "update", PK: 1, Data: order(1, "new", 5, note(1)), Changed: []string{"total"}}}},
		{"Update by condition, WHERE on the assigned column", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{}).Where("total >= ?", 2).Update("status", "paid").Error
		}, []ev{{Type: "update", PK: 2, Data: order(2, "paid", 2, note(2)), Changed: []string{"status"}},
			{Type: "update", PK: 3, Data: order(3, "paid", 3, note(3)), Changed: []string{"status"}}}},
		{"Update of a slice of instances", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&[]Order{{ID: 1}, {ID: 3}}).Update("note", "both").Error
		}, []ev{{Type: "update", PK: 1, Data: order(1, "new", 1, "both"), Changed: []string{"note"}},
			{Type: "update", PK: 3, Data: order(3, "new", 3, "both"), Changed: []string{"note"}}}},
		{"Update of a primary key", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 3}).Update("id", 30).Error
		}, []ev{{Type: "bulk_update", Count: 1}}},
		{"Update with LIMIT", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{}).Where("total > ?", 0).Limit(1).Update("note", "lim").Error
		}, []ev{{Type: "update", PK: 1, Data: order(1, "new", 1, "lim"), Changed: []string{"note"}}, // SQLite ignores LIMIT on UPDATE
			{Type: "update", PK: 2, Data: order(2, "new", 2, "lim"), Changed: []string{"note"}},
			{Type: "update", PK: 3, Data: order(3, "new", 3, "lim"), Changed: []string{"note"}}}},
		{"Update with extra condition matching nothing", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 1}).Where("status = ?", "nope").Update("total", 5).Error
		}, nil},
		{"Update of a missing row", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&Order{ID: 99}).Update("total", 5).Error
		}, nil},
		{"Delete by instance", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&Order{ID: 2}).Error
		}, []ev{{Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))}}},
		{"Delete by key", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&Order{}, 3).Error
		}, []ev{{Type: "delete", PK: 3, Data: order(3, "new", 3, note(3))}}},
		{"Delete by keys", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&Order{}, []uint{1, 3}).Error
		}, []ev{{Type: "delete", PK: 1, Data: order(1, "new", 1, note(1))}, {Type: "delete", PK: 3, Data: order(3, "new", 3, note(3))}}},
		{"Delete by condition", func(t *testing.T, db *gorm.DB) error {
			return db.Where("total < ?", 3).Delete(&Order{}).Error
		}, []ev{{Type: "delete", PK: 1, Data: order(1, "new", 1, note(1))}, {Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))}}},
		{"Delete of a missing row", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&Order{}, 42).Error
		}, nil},
		{"Delete with RETURNING", func(t *testing.T, db *gorm.DB) error {
			var gone []Order
			return db.Clauses(clause.Returning{}).Where("id = ?", 1).Delete(&gone).Error
		}, []ev{{Type: "delete", PK: 1, Data: order(1, "new", 1, note(1))}}},
		{"Delete without conditions is refused, no event", func(t *testing.T, db *gorm.DB) error {
			if err := db.Delete(&Order{}).Error; err == nil {
				t.Error("global delete allowed")
			}
			return nil
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
			seed(t, e, 3)
			if err := c.run(t, e.db); err != nil {
				t.Fatalf("run: %v", err)
			}
			expect(t, e.rec, c.want...)
		})
	}
}

// TestSoftDelete: a soft delete is a delete event with meta.soft and the
// row as committed; Unscoped().Delete is a hard delete; deleting an
// already soft-deleted row is not an event.
func TestSoftDelete(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	for _, title := range []string{"a", "b"} {
		if err := e.db.Create(&Doc{Title: title}).Error; err != nil {
			t.Fatal(err)
		}
	}
	e.rec.Reset()
	if err := e.db.Delete(&Doc{ID: 1}).Error; err != nil {
		t.Fatal(err)
	}
	var d Doc
	if err := e.db.Unscoped().First(&d, 1).Error; err != nil {
		t.Fatal(err)
	}
	if !d.DeletedAt.Valid {
		t.Fatal("row not soft deleted")
	}
	expect(t, e.rec, ev{Name: "telegraphy_test.Doc", Type: "delete", PK: 1, Soft: true,
		Data: map[string]any{"id": 1, "title": "a", "deleted_at": d.DeletedAt}})

	if err := e.db.Delete(&Doc{ID: 1}).Error; err != nil {
		t.Fatal(err)
	}
	expect(t, e.rec)

	if err := e.db.Unscoped().Delete(&Doc{ID: 1}).Error; err != nil {
		t.Fatal(err)
	}
	expect(t, e.rec, ev{Name: "telegraphy_test.Doc", Type: "delete", PK: 1,
		Data: map[string]any{"id": 1, "title": "a", "deleted_at": d.DeletedAt}})

	if err := e.db.Where("title = ?", "b").Delete(&Doc{}).Error; err != nil {
		t.Fatal(err)
	}
	evs := e.rec.Events()
	if len(evs) != 1 || !evs[0].Meta.Soft || evs[0].Meta.EventType != "delete" {
		t.Fatalf("soft delete by condition: %s", describe(evs))
	}
}

// TestBulk runs updates and deletes by condition below, at and beyond the
// bulk limit on every database.
func TestBulk(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{BulkLimit: 3})
			seed(t, e, 4)

			// Three rows: at the limit, one event each with committed values.
			if err := e.db.Model(&Order{}).Where("total <= ?", 3).Update("status", "paid").Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec,
				ev{Type: "update", PK: 1, Data: order(1, "paid", 1, note(1)), Changed: []string{"status"}},
				ev{Type: "update", PK: 2, Data: order(2, "paid", 2, note(2)), Changed: []string{"status"}},
				ev{Type: "update", PK: 3, Data: order(3, "paid", 3, note(3)), Changed: []string{"status"}})

			// Four rows: beyond the limit, one bulk event.
			if err := e.db.Model(&Order{}).Where("total > ?", 0).Update("note", "all").Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Type: "bulk_update", Count: 4})

			// Conditional update inside a rolled back transaction: nothing.
			e.db.Transaction(func(tx *gorm.DB) error {
				tx.Model(&Order{}).Where("total > ?", 2).Update("total", gorm.Expr("total + 1"))
				return errAbort
			})
			expect(t, e.rec)

			// Two rows deleted by condition.
			if err := e.db.Where("total >= ?", 3).Delete(&Order{}).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec,
				ev{Type: "delete", PK: 3, Data: order(3, "paid", 3, "all")},
				ev{Type: "delete", PK: 4, Data: order(4, "new", 4, "all")})

			// Beyond the limit: bulk_delete.
			seed(t, e, 3)
			if err := e.db.Where("total > ?", 0).Delete(&Order{}).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Type: "bulk_delete", Count: 5})

			// Zero rows: nothing.
			if err := e.db.Model(&Order{}).Where("total > ?", 100).Update("note", "none").Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec)

			// LIMIT: MySQL updates only that many rows, which it cannot
			// name in advance: one bulk event with the count. The others
			// ignore LIMIT on UPDATE and name the rows they changed.
			seed(t, e, 3)
			if err := e.db.Model(&Order{}).Where("total > ?", 0).Limit(1).Update("note", "one").Error; err != nil {
				t.Fatal(err)
			}
			var changed []Order
			e.db.Where("note = ?", "one").Order("id").Find(&changed)
			if d.name == "mysql" {
				if len(changed) != 1 {
					t.Fatalf("MySQL changed %d rows with LIMIT 1", len(changed))
				}
				expect(t, e.rec, ev{Type: "bulk_update", Count: 1})
			} else {
				var want []ev
				for _, o := range changed {
					want = append(want, ev{Type: "update", PK: o.ID, Data: order(o.ID, o.Status, o.Total, "one"), Changed: []string{"note"}})
				}
				if len(want) != 3 {
					t.Fatalf("%s changed %d rows with LIMIT 1", d.name, len(want))
				}
				expect(t, e.rec, want...)
			}
		})
	}
}
