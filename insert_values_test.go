package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// TestInsertModifiers: a create from structs with INSERT IGNORE (MySQL)
// or INSERT OR IGNORE (SQLite) announces the rows it inserted, as the
// table holds them, and nothing for the rows it skipped; INSERT OR
// REPLACE, which deletes the rows it meets, one bulk_update.
func TestInsertModifiers(t *testing.T) {
	ignore := map[string]string{"sqlite": "OR IGNORE", "mysql": "IGNORE"}
	for _, d := range allDialects {
		if ignore[d.name] == "" {
			continue // PostgreSQL has no INSERT modifier of this kind
		}
		ign := clause.Insert{Modifier: ignore[d.name]}
		cases := []struct {
			name string
			run  func(db *gorm.DB) error
			want []ev
			rows []Thing
		}{
			{"one existing key and one new", func(db *gorm.DB) error {
				return db.Clauses(ign).Create(&[]Thing{{ID: 1, Code: "x", Name: "dup", Qty: 99}, {ID: 3, Code: "c", Name: "c", Qty: 3}}).Error
			}, []ev{{Name: "things", Type: "create", PK: 3, Data: thing(3, "c", "c", 3)}},
				[]Thing{{1, "a", "a", 1}, {2, "b", "b", 2}, {3, "c", "c", 3}}},
			{"a unique code met", func(db *gorm.DB) error {
				return db.Clauses(ign).Create(&Thing{ID: 4, Code: "b", Name: "dup", Qty: 4}).Error
			}, nil, []Thing{{1, "a", "a", 1}, {2, "b", "b", 2}}},
			{"new rows without keys", func(db *gorm.DB) error {
				return db.Clauses(ign).Create(&[]Thing{{Code: "n", Name: "n", Qty: 5}}).Error
			}, []ev{{Name: "things", Type: "create", PK: 3, Data: thing(3, "n", "n", 5)}},
				[]Thing{{1, "a", "a", 1}, {2, "b", "b", 2}, {3, "n", "n", 5}}},
		}
		if d.name == "sqlite" {
			cases = append(cases, struct {
				name string
				run  func(db *gorm.DB) error
				want []ev
				rows []Thing
			}{"OR REPLACE of a row met by its code", func(db *gorm.DB) error {
				return db.Clauses(clause.Insert{Modifier: "OR REPLACE"}).Create(&Thing{ID: 5, Code: "a", Name: "r", Qty: 5}).Error
			}, []ev{{Name: "things", Type: "bulk_update", Count: 1, Data: nil}},
				[]Thing{{2, "b", "b", 2}, {5, "a", "r", 5}}})
		}
		for _, c := range cases {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				setupThings(t, e)
				if err := c.run(e.db); err != nil {
					t.Fatalf("run: %v", err)
				}
				expect(t, e.rec, c.want...)
				if got := things(t, e.db); !equalThings(got, c.rows) {
					t.Fatalf("table %+v, want %+v", got, c.rows)
				}
			})
		}
	}
}

// Widget has columns a create may not write as the struct holds them: a
// read-only column with a database default, and a column whose default
// is an expression the database computes.
type Widget struct {
	ID    uint   `json:"id"`
	Name  string `json:"name" gorm:"size:16"`
	Score int    `json:"score" gorm:"default:(40+2)"`
	Shown string `json:"shown" gorm:"->;size:16;default:'ro'"`
}

func widget(id uint, name string, score int, shown string) map[string]any {
	return map[string]any{"id": id, "name": name, "score": score, "shown": shown}
}

// TestCreateEventIsTheStoredRow: a create from a struct announces the row
// as stored where it differs from the struct: columns Select or Omit left
// out, a read-only column, a database-computed default that GORM does not
// read back (MySQL); on every database.
func TestCreateEventIsTheStoredRow(t *testing.T) {
	cases := []struct {
		name string
		run  func(db *gorm.DB) error
		want map[string]any
	}{
		{"Omit", func(db *gorm.DB) error {
			return db.Omit("Name").Create(&Widget{Name: "hello", Score: 5, Shown: "given"}).Error
		}, widget(1, "", 5, "ro")},
		{"Select", func(db *gorm.DB) error {
			return db.Select("Name").Create(&Widget{Name: "n", Score: 5}).Error
		}, widget(1, "n", 42, "ro")},
		{"database default", func(db *gorm.DB) error {
			return db.Create(&Widget{Name: "d"}).Error
		}, widget(1, "d", 42, "ro")},
		{"plain", func(db *gorm.DB) error {
			return db.Create(&Widget{Name: "p", Score: 7}).Error
		}, widget(1, "p", 7, "ro")},
	}
	for _, d := range allDialects {
		for _, c := range cases {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				addModel(t, e, &Widget{}, events.Options{Name: "widgets"})
				if err := c.run(e.db); err != nil {
					t.Fatalf("run: %v", err)
				}
				var stored []Widget
				if err := e.db.Session(&gorm.Session{NewDB: true}).Find(&stored).Error; err != nil {
					t.Fatal(err)
				}
				if len(stored) != 1 || stored[0].Name != c.want["name"] || stored[0].Score != c.want["score"] || stored[0].Shown != c.want["shown"] {
					t.Fatalf("table %+v, want the row %v", stored, c.want)
				}
				expect(t, e.rec, ev{Name: "widgets", Type: "create", PK: 1, Data: c.want})
			})
		}
	}
}
