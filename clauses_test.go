package telegraphy_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// Account refers to an order; updates and deletes of orders join it.
type Account struct {
	ID      uint
	OrderID uint
	Number  string `gorm:"size:16"`
}

// TestWriteClauses: updates and deletes with the clauses GORM supports on
// each database run as without the plugin (the same error or none, rows
// affected, the caller's RETURNING rows, the table afterwards) and emit an
// event for each row they changed.
func TestWriteClauses(t *testing.T) {
	type result struct {
		err      string
		affected int64
		dest     any
		table    []Order
	}
	cases := []struct {
		name string
		run  func(db *gorm.DB) (*gorm.DB, any)
		want func(d string) []ev // the events, given the table before (seeded 1..3)
	}{
		{"UPDATE ... FROM", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Model(&Order{}).Clauses(clause.From{Tables: []clause.Table{{Name: "accounts"}}}).
				Where("accounts.order_id = orders.id AND accounts.number = ?", "n2").Update("status", "from"), nil
		}, func(d string) []ev {
			if d == "mysql" {
				return nil // MySQL has no UPDATE ... FROM: GORM leaves the clause out and the statement fails
			}
			return []ev{{Type: "update", PK: 2, Data: order(2, "from", 2, note(2)), Changed: []string{"status"}}}
		}},
		{"UPDATE ... FROM, several rows, an expression", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Model(&Order{}).Clauses(clause.From{Tables: []clause.Table{{Name: "accounts"}}}).
				Where("accounts.order_id = orders.id").Update("total", gorm.Expr("orders.total + 10")), nil
		}, func(d string) []ev {
			if d == "mysql" {
				return nil
			}
			return []ev{{Type: "update", PK: 1, Data: order(1, "new", 11, note(1)), Changed: []string{"total"}},
				{Type: "update", PK: 2, Data: order(2, "new", 12, note(2)), Changed: []string{"total"}}}
		}},
		{"UPDATE ... FROM through db.Table, aliased", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Model(&Order{}).Table("orders AS o").Clauses(clause.From{Tables: []clause.Table{{Name: "accounts"}}}).
				Where("accounts.order_id = o.id AND accounts.number = ?", "n1").Update("note", "al"), nil
		}, func(d string) []ev {
			if d == "mysql" {
				return nil
			}
			return []ev{{Type: "update", PK: 1, Data: order(1, "new", 1, "al"), Changed: []string{"note"}}}
		}},
		{"update with a subquery join in the WHERE", func(db *gorm.DB) (*gorm.DB, any) {
			sub := db.Session(&gorm.Session{NewDB: true}).Table("accounts").Select("order_id").Where("number = ?", "n1")
			return db.Model(&Order{}).Where("id IN (?)", sub).Updates(map[string]any{"status": "sub", "note": "j"}), nil
		}, func(string) []ev {
			return []ev{{Type: "update", PK: 1, Data: order(1, "sub", 1, "j"), Changed: []string{"note", "status"}}}
		}},
		{"delete with a subquery join in the WHERE", func(db *gorm.DB) (*gorm.DB, any) {
			sub := db.Session(&gorm.Session{NewDB: true}).Table("accounts").Select("order_id")
			return db.Where("id IN (?)", sub).Delete(&Order{}), nil
		}, func(string) []ev {
			return []ev{{Type: "delete", PK: 1, Data: order(1, "new", 1, note(1))}, {Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))}}
		}},
		{"update with the caller's RETURNING", func(db *gorm.DB) (*gorm.DB, any) {
			var got []Order
			tx := db.Model(&got).Clauses(clause.Returning{}).Where("total >= ?", 2).Update("status", "ret")
			return tx, got
		}, func(d string) []ev {
			if d == "mysql" {
				return nil // MariaDB has no UPDATE ... RETURNING: the statement fails
			}
			return []ev{{Type: "update", PK: 2, Data: order(2, "ret", 2, note(2)), Changed: []string{"status"}},
				{Type: "update", PK: 3, Data: order(3, "ret", 3, note(3)), Changed: []string{"status"}}}
		}},
		{"update with the caller's RETURNING of some columns", func(db *gorm.DB) (*gorm.DB, any) {
			var got []Order
			tx := db.Model(&got).Clauses(clause.Returning{Columns: []clause.Column{{Name: "total"}}}).Where("total <= ?", 2).Update("note", "some")
			return tx, got
		}, func(d string) []ev {
			if d == "mysql" {
				return nil
			}
			return []ev{{Type: "update", PK: 1, Data: order(1, "new", 1, "some"), Changed: []string{"note"}},
				{Type: "update", PK: 2, Data: order(2, "new", 2, "some"), Changed: []string{"note"}}}
		}},
		{"UPDATE ... FROM with the caller's RETURNING", func(db *gorm.DB) (*gorm.DB, any) {
			var got []Order
			tx := db.Model(&got).Clauses(clause.From{Tables: []clause.Table{{Name: "accounts"}}}, clause.Returning{Columns: []clause.Column{{Table: "orders", Name: "id"}, {Table: "orders", Name: "status"}}}).
				Where("accounts.order_id = orders.id").Update("status", "fr")
			return tx, got
		}, func(d string) []ev {
			switch d {
			case "mysql":
				return nil // no UPDATE ... FROM, no UPDATE ... RETURNING
			case "sqlite": // its rows cannot be read apart from the statement
				return []ev{{Type: "bulk_update", Count: 2}}
			}
			return []ev{{Type: "update", PK: 1, Data: order(1, "fr", 1, note(1)), Changed: []string{"status"}},
				{Type: "update", PK: 2, Data: order(2, "fr", 2, note(2)), Changed: []string{"status"}}}
		}},
		{"update of a struct with the caller's RETURNING", func(db *gorm.DB) (*gorm.DB, any) {
			var got Order
			tx := db.Model(&got).Clauses(clause.Returning{}).Where("total >= ?", 2).Update("note", "st")
			return tx, got
		}, func(d string) []ev {
			if d == "mysql" {
				return nil
			}
			return []ev{{Type: "update", PK: 2, Data: order(2, "new", 2, "st"), Changed: []string{"note"}},
				{Type: "update", PK: 3, Data: order(3, "new", 3, "st"), Changed: []string{"note"}}}
		}},
		{"delete with the caller's RETURNING", func(db *gorm.DB) (*gorm.DB, any) {
			var gone []Order
			tx := db.Clauses(clause.Returning{}).Where("total < ?", 3).Delete(&gone)
			return tx, gone
		}, func(string) []ev {
			return []ev{{Type: "delete", PK: 1, Data: order(1, "new", 1, note(1))}, {Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))}}
		}},
		{"delete with ORDER BY and LIMIT", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Order("id DESC").Limit(2).Where("total > ?", 0).Delete(&Order{}), nil
		}, func(d string) []ev {
			if d == "mysql" { // MySQL deletes the two last rows; the others ignore ORDER BY and LIMIT
				return []ev{{Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))}, {Type: "delete", PK: 3, Data: order(3, "new", 3, note(3))}}
			}
			return []ev{{Type: "delete", PK: 1, Data: order(1, "new", 1, note(1))}, {Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))},
				{Type: "delete", PK: 3, Data: order(3, "new", 3, note(3))}}
		}},
		{"update with a hint and a trailing line comment", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Model(&Order{}).Clauses(hint{"UPDATE", "telegraphy"}, trailing{"WHERE"}).Where("total = ?", 1).Update("note", "h"), nil
		}, func(string) []ev {
			return []ev{{Type: "update", PK: 1, Data: order(1, "new", 1, "h"), Changed: []string{"note"}}}
		}},
		{"delete with a hint and a trailing line comment", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Clauses(hint{"DELETE", "telegraphy"}, trailing{"WHERE"}).Where("total > ?", 1).Delete(&Order{}), nil
		}, func(string) []ev {
			return []ev{{Type: "delete", PK: 2, Data: order(2, "new", 2, note(2))}, {Type: "delete", PK: 3, Data: order(3, "new", 3, note(3))}}
		}},
		{"update with a table expression", func(db *gorm.DB) (*gorm.DB, any) {
			return db.Model(&Order{}).Table("orders").Where("total = ?", 3).Update("note", "tbl"), nil
		}, func(string) []ev {
			return []ev{{Type: "update", PK: 3, Data: order(3, "new", 3, "tbl"), Changed: []string{"note"}}}
		}},
	}
	for _, d := range allDialects {
		for _, c := range cases {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				prepare := func(db *gorm.DB) {
					t.Helper()
					if err := db.AutoMigrate(&Order{}, &Account{}); err != nil {
						t.Fatal(err)
					}
					for i := 1; i <= 3; i++ {
						if err := db.Session(&gorm.Session{NewDB: true}).Create(&Order{Status: "new", Total: i, Note: note(i)}).Error; err != nil {
							t.Fatal(err)
						}
					}
					if err := db.Session(&gorm.Session{NewDB: true}).Create([]Account{{OrderID: 1, Number: "n1"}, {OrderID: 2, Number: "n2"}}).Error; err != nil {
						t.Fatal(err)
					}
				}
				outcome := func(db *gorm.DB) result {
					tx, dest := c.run(db)
					r := result{affected: tx.RowsAffected, table: rows(t, db)}
					if tx.Error != nil {
						r.err = "failed"
					}
					if dest != nil {
						r.dest = fmt.Sprint(dest)
					}
					return r
				}

				plain, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				if sqlDB, err := plain.DB(); err == nil {
					t.Cleanup(func() { sqlDB.Close() })
				}
				prepare(plain)
				want := outcome(plain)

				e := setup(t, d, nil, telegraphy.Config{})
				prepare(e.db)
				e.rec.Reset()
				got := outcome(e.db)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("with the plugin %+v\nwithout it    %+v", got, want)
				}
				if want.err != "" {
					// GORM (this dialect, or its version) cannot build
					// the statement: no event.
					expect(t, e.rec)
					return
				}
				expect(t, e.rec, c.want(d.name)...)
			})
		}
	}
}

// TestSoftDeleteByCondition: a soft delete by condition (an UPDATE that
// GORM builds) emits a soft delete event per row it marked, with the
// deleted_at the database holds, on every database.
func TestSoftDeleteByCondition(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			if err := e.db.Create([]Doc{{Title: "a"}, {Title: "b"}, {Title: "c"}}).Error; err != nil {
				t.Fatal(err)
			}
			e.rec.Reset()
			if err := e.db.Where("title <> ?", "b").Delete(&Doc{}).Error; err != nil {
				t.Fatal(err)
			}
			var docs []Doc
			if err := e.db.Unscoped().Order("id").Find(&docs).Error; err != nil {
				t.Fatal(err)
			}
			if !docs[0].DeletedAt.Valid || docs[1].DeletedAt.Valid || !docs[2].DeletedAt.Valid {
				t.Fatalf("rows %+v", docs)
			}
			name := "telegraphy_test.Doc"
			expect(t, e.rec,
				ev{Name: name, Type: "delete", PK: 1, Soft: true, Data: map[string]any{"id": 1, "title": "a", "deleted_at": docs[0].DeletedAt}},
				ev{Name: name, Type: "delete", PK: 3, Soft: true, Data: map[string]any{"id": 3, "title": "c", "deleted_at": docs[2].DeletedAt}})

			// With the caller's RETURNING, into a struct (GORM keeps the
			// first row); MariaDB has no UPDATE ... RETURNING.
			if err := e.db.Create([]Doc{{Title: "d"}, {Title: "e"}}).Error; err != nil {
				t.Fatal(err)
			}
			e.rec.Reset()
			var got Doc
			err := e.db.Clauses(clause.Returning{}).Where("title IN ?", []string{"d", "e"}).Delete(&got).Error
			if d.name == "mysql" {
				if err == nil {
					t.Fatal("MariaDB ran UPDATE ... RETURNING")
				}
				expect(t, e.rec)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			docs = nil
			if err := e.db.Unscoped().Where("title IN ?", []string{"d", "e"}).Order("id").Find(&docs).Error; err != nil {
				t.Fatal(err)
			}
			if len(docs) != 2 || !docs[0].DeletedAt.Valid || !docs[1].DeletedAt.Valid || got.ID != docs[0].ID && got.ID != docs[1].ID {
				t.Fatalf("rows %+v, caller's row %+v", docs, got)
			}
			expect(t, e.rec,
				ev{Name: name, Type: "delete", PK: 4, Soft: true, Data: map[string]any{"id": 4, "title": "d", "deleted_at": docs[0].DeletedAt}},
				ev{Name: name, Type: "delete", PK: 5, Soft: true, Data: map[string]any{"id": 5, "title": "e", "deleted_at": docs[1].DeletedAt}})
		})
	}
}

// hint puts a comment after a clause's keyword, as gorm.io/hints does
// with optimizer hints.
type hint struct{ clause, text string }

func (h hint) ModifyStatement(stmt *gorm.Statement) {
	c := stmt.Clauses[h.clause]
	c.AfterNameExpression = clause.Expr{SQL: "/*+ " + h.text + " */"}
	stmt.Clauses[h.clause] = c
}

func (h hint) Build(clause.Builder) {}

// trailing ends a clause with a line comment.
type trailing struct{ clause string }

func (tr trailing) ModifyStatement(stmt *gorm.Statement) {
	c := stmt.Clauses[tr.clause]
	c.AfterExpression = clause.Expr{SQL: "-- trailing comment"}
	stmt.Clauses[tr.clause] = c
}

func (tr trailing) Build(clause.Builder) {}
