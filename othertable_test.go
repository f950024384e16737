package telegraphy_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Crate is written through its own table, crates, and through
// crates_archive, a table with the same columns.
type Crate struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:32"`
}

// ArchivedCrate is a registered model whose table is crates_archive.
type ArchivedCrate struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:32"`
}

func (ArchivedCrate) TableName() string { return "crates_archive" }

const crateName = "telegraphy_test.Crate"

// tableWorld is one database for a run of TestOtherTable: the model's
// schema (PostgreSQL) or database (MariaDB), "main" on SQLite, and on
// PostgreSQL and MariaDB another one that has a crates table too.
type tableWorld struct {
	db           *gorm.DB
	schema       string
	database     string // PostgreSQL's current database
	otherSchema  string
	outboxBefore int64
}

// openTableWorld opens a database of d, migrates and seeds it: crates
// holds 1 and 5, crates_archive 1 and 2, the other schema's crates 1,
// docs and docs_archive 1 and 2.
// With p, the plugin is installed first (the seed's events are dropped by
// the caller).
func openTableWorld(t *testing.T, d dialect, gcfg *gorm.Config, p *telegraphy.Plugin) tableWorld {
	t.Helper()
	dl := d.open(t)
	var w tableWorld
	switch d.name {
	case "postgres":
		dsn := testenv.PostgresDSN(t)
		other := openDB(t, postgres.Open(dsn), nil, &Crate{})
		seedCrates(t, other, "crates", Crate{1, "other1"})
		w.otherSchema = dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
	case "mysql":
		dsn := testenv.MySQLDSN(t)
		other := openDB(t, mysql.Open(dsn), nil, &Crate{})
		seedCrates(t, other, "crates", Crate{1, "other1"})
		if err := other.Raw("SELECT DATABASE()").Scan(&w.otherSchema).Error; err != nil {
			t.Fatal(err)
		}
	}
	w.db = openDB(t, dl, gcfg, &Crate{}, &Order{}, &Doc{})
	if err := w.db.Table("crates_archive").AutoMigrate(&Crate{}); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Table("docs_archive").AutoMigrate(&Doc{}); err != nil {
		t.Fatal(err)
	}
	switch d.name {
	case "postgres":
		w.schema = scalar(t, w.db, "SELECT current_schema()")
		w.database = scalar(t, w.db, "SELECT current_database()")
	case "mysql":
		w.schema = scalar(t, w.db, "SELECT DATABASE()")
	default:
		w.schema = "main"
	}
	if p != nil {
		if err := w.db.Use(p); err != nil {
			t.Fatal(err)
		}
	}
	seedCrates(t, w.db, "crates", Crate{1, "own1"}, Crate{5, "own5"})
	seedCrates(t, w.db, "crates_archive", Crate{1, "arc1"}, Crate{2, "arc2"})
	for _, table := range []string{"docs", "docs_archive"} {
		if err := w.db.Session(&gorm.Session{NewDB: true}).Table(table).Create(&[]Doc{{ID: 1, Title: "d1"}, {ID: 2, Title: "d2"}}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func seedCrates(t *testing.T, db *gorm.DB, table string, crates ...Crate) {
	t.Helper()
	if err := db.Session(&gorm.Session{NewDB: true}).Table(table).Create(&crates).Error; err != nil {
		t.Fatal(err)
	}
}

func scalar(t *testing.T, db *gorm.DB, query string) string {
	t.Helper()
	var s string
	if err := db.Session(&gorm.Session{NewDB: true}).Raw(query).Scan(&s).Error; err != nil {
		t.Fatal(err)
	}
	return s
}

// tableOutcome is what a write left: its error (the schema names
// replaced), rows affected, the crates tables and the docs not deleted.
type tableOutcome struct {
	err      string
	affected int64
	tables   map[string][]Crate
	docs     map[string][]uint
}

func (w tableWorld) outcome(t *testing.T, tx *gorm.DB) tableOutcome {
	t.Helper()
	o := tableOutcome{affected: tx.RowsAffected, tables: map[string][]Crate{}, docs: map[string][]uint{}}
	for _, table := range []string{"docs", "docs_archive"} {
		var ids []uint
		if err := w.db.Session(&gorm.Session{NewDB: true}).Model(&Doc{}).Table(table).Order("id").Pluck("id", &ids).Error; err != nil {
			t.Fatal(err)
		}
		o.docs[table] = ids
	}
	if tx.Error != nil {
		o.err = strings.ReplaceAll(tx.Error.Error(), w.schema, "<schema>")
		if w.otherSchema != "" {
			o.err = strings.ReplaceAll(o.err, w.otherSchema, "<other>")
		}
	}
	tables := []string{"crates", "crates_archive"}
	if w.otherSchema != "" {
		tables = append(tables, w.otherSchema+".crates")
	}
	for _, table := range tables {
		var rows []Crate
		if err := w.db.Session(&gorm.Session{NewDB: true}).Table(table).Order("id").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		o.tables[strings.Replace(table, w.otherSchema+".", "<other>.", 1)] = rows
	}
	return o
}

type tableCase struct {
	name string
	run  func(db *gorm.DB, w tableWorld) *gorm.DB
	want []ev // the model's events; nil: none on any channel
}

func crate(id uint, name string) map[string]any { return map[string]any{"id": id, "name": name} }

// otherTableCases are writes of Crate through a table that is not
// crates: they run as without the plugin and announce nothing, neither as
// Crate nor as ArchivedCrate (whose table crates_archive is).
func otherTableCases(d string) []tableCase {
	cases := []tableCase{
		{"create", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Create(&Crate{ID: 3, Name: "new"})
		}, nil},
		{"create of a key crates holds", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Create(&Crate{ID: 5, Name: "arc5"})
		}, nil},
		{"create of a key crates_archive holds (fails)", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Create(&Crate{ID: 2, Name: "dup"})
		}, nil},
		{"create of a slice", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Create(&[]Crate{{ID: 6, Name: "s6"}, {ID: 7, Name: "s7"}})
		}, nil},
		{"create with the model set", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{}).Table("crates_archive").Create(&Crate{ID: 8, Name: "m8"})
		}, nil},
		{"create from a map", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{}).Table("crates_archive").Create(map[string]any{"id": 9, "name": "map"})
		}, nil},
		{"create through an alias", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive AS a").Create(&Crate{ID: 10, Name: "al"})
		}, nil},
		{"create through a clause.Table argument", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("?", clause.Table{Name: "crates_archive"}).Create(&Crate{ID: 3, Name: "arg"})
		}, nil},
		{"update by key", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{ID: 1}).Table("crates_archive").Update("name", "u1")
		}, nil},
		{"updates by key", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Model(&Crate{ID: 2}).Updates(Crate{Name: "u2"})
		}, nil},
		{"update by key crates holds alone", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{ID: 5}).Table("crates_archive").Update("name", "none")
		}, nil},
		{"update by condition", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{}).Table("crates_archive").Where("name LIKE ?", "arc%").Update("name", "cond")
		}, nil},
		{"update by condition through an alias", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{}).Table("crates_archive AS a").Where("a.id = ?", 1).Update("name", "alias")
		}, nil},
		{"update by condition through an alias without AS", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{}).Table("crates_archive a").Where("a.id = ?", 2).Update("name", "bare")
		}, nil},
		{"save of a row crates_archive holds", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Save(&Crate{ID: 2, Name: "saved"})
		}, nil},
		{"save of a new row", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Save(&Crate{ID: 11, Name: "saved"})
		}, nil},
		{"delete by key", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Delete(&Crate{ID: 1})
		}, nil},
		{"delete by condition", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Where("id > ?", 0).Delete(&Crate{})
		}, nil},
		{"soft delete by key", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("docs_archive").Delete(&Doc{ID: 1})
		}, nil},
		{"soft delete by condition", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("docs_archive").Where("title LIKE ?", "d%").Delete(&Doc{})
		}, nil},
		{"restore by condition", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Unscoped().Model(&Doc{}).Table("docs_archive").Where("id = ?", 2).Update("deleted_at", nil)
		}, nil},
		{"upsert, update all", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Clauses(clause.OnConflict{UpdateAll: true}).
				Create(&[]Crate{{ID: 1, Name: "up1"}, {ID: 5, Name: "up5"}})
		}, nil},
		{"upsert, do nothing", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Clauses(clause.OnConflict{DoNothing: true}).
				Create(&[]Crate{{ID: 2, Name: "kept"}, {ID: 12, Name: "ins"}})
		}, nil},
		{"upsert, assigned columns", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates_archive").Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"name"})}).
				Create(&Crate{ID: 1, Name: "assigned"})
		}, nil},
	}
	switch d {
	case "postgres":
		cases = append(cases,
			tableCase{"update of crates in another database", func(db *gorm.DB, w tableWorld) *gorm.DB {
				return db.Model(&Crate{ID: 1}).Table("nosuchdb."+w.schema+".crates").Update("name", "far")
			}, nil},
			tableCase{"update of a table named in capitals, quoted", func(db *gorm.DB, _ tableWorld) *gorm.DB {
				return db.Model(&Crate{ID: 1}).Table("Crates").Update("name", "caps")
			}, nil},
			tableCase{"update by condition through ONLY", func(db *gorm.DB, _ tableWorld) *gorm.DB {
				return db.Model(&Crate{}).Table("ONLY crates_archive").Where("id = ?", 1).Update("name", "only")
			}, nil})
	case "mysql":
		cases = append(cases,
			tableCase{"update of a table named in capitals", func(db *gorm.DB, _ tableWorld) *gorm.DB {
				return db.Model(&Crate{ID: 1}).Table("CRATES").Update("name", "caps")
			}, nil})
	}
	if d != "sqlite" {
		cases = append(cases,
			tableCase{"create in another schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
				return db.Table(w.otherSchema + ".crates").Create(&Crate{ID: 5, Name: "o5"})
			}, nil},
			tableCase{"update by key of another schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
				return db.Model(&Crate{ID: 1}).Table(w.otherSchema+".crates").Update("name", "o1")
			}, nil},
			tableCase{"update by condition of another schema's crates, aliased", func(db *gorm.DB, w tableWorld) *gorm.DB {
				return db.Model(&Crate{}).Table(w.otherSchema+".crates AS o").Where("o.id = ?", 1).Update("name", "o1")
			}, nil},
			tableCase{"delete from another schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
				return db.Table(w.otherSchema + ".crates").Delete(&Crate{ID: 1})
			}, nil},
			tableCase{"upsert into another schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
				return db.Table(w.otherSchema + ".crates").Clauses(clause.OnConflict{UpdateAll: true}).
					Create(&[]Crate{{ID: 1, Name: "ou1"}, {ID: 5, Name: "ou5"}})
			}, nil})
	}
	return cases
}

// ownTableCases name crates itself, by another spelling: their events are
// those of the same write without db.Table.
func ownTableCases(d string) []tableCase {
	cases := []tableCase{
		{"create through crates", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("crates").Create(&Crate{ID: 3, Name: "own3"})
		}, []ev{{Name: crateName, Type: "create", PK: 3, Data: crate(3, "own3")}}},
		{"update by key through crates", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{ID: 1}).Table("crates").Update("name", "t1")
		}, []ev{{Name: crateName, Type: "update", PK: 1, Data: crate(1, "t1"), Changed: []string{"name"}}}},
		{"update by key through a clause.Table argument", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Model(&Crate{ID: 1}).Table("?", clause.Table{Name: "crates"}).Update("name", "arg")
		}, []ev{{Name: crateName, Type: "update", PK: 1, Data: crate(1, "arg"), Changed: []string{"name"}}}},
		{"create through the current schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
			return db.Table(w.schema + ".crates").Create(&Crate{ID: 3, Name: "q3"})
		}, []ev{{Name: crateName, Type: "create", PK: 3, Data: crate(3, "q3")}}},
		{"delete by key through the current schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
			return db.Table(w.schema + ".crates").Delete(&Crate{ID: 5})
		}, []ev{{Name: crateName, Type: "delete", PK: 5, Data: crate(5, "own5")}}},
		{"upsert through the current schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
			return db.Table(w.schema + ".crates").Clauses(clause.OnConflict{UpdateAll: true}).
				Create(&[]Crate{{ID: 1, Name: "qu1"}, {ID: 4, Name: "qu4"}})
		}, []ev{{Name: crateName, Type: "update", PK: 1, Data: crate(1, "qu1"), Changed: []string{"name"}},
			{Name: crateName, Type: "create", PK: 4, Data: crate(4, "qu4")}}},
	}
	if d == "postgres" {
		cases = append(cases, tableCase{"create through the current database's schema's crates", func(db *gorm.DB, w tableWorld) *gorm.DB {
			return db.Table(w.database + "." + w.schema + ".crates").Create(&Crate{ID: 3, Name: "d3"})
		}, []ev{{Name: crateName, Type: "create", PK: 3, Data: crate(3, "d3")}}})
	}
	if d != "mysql" {
		// PostgreSQL folds unquoted names to lower case; SQLite ignores
		// the case of names, quoted or not.
		cases = append(cases, tableCase{"create through CRATES, unquoted, aliased", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("CRATES t").Create(&Crate{ID: 3, Name: "up3"})
		}, []ev{{Name: crateName, Type: "create", PK: 3, Data: crate(3, "up3")}}})
	}
	if d == "sqlite" {
		cases = append(cases, tableCase{"create through Crates, quoted", func(db *gorm.DB, _ tableWorld) *gorm.DB {
			return db.Table("Crates").Create(&Crate{ID: 3, Name: "q3"})
		}, []ev{{Name: crateName, Type: "create", PK: 3, Data: crate(3, "q3")}}})
	}
	return cases
}

// TestOtherTable: a write of a registered model through db.Table naming
// another table (another name, case or schema, also aliased) runs as
// without the plugin (its error, rows affected and every table are those
// of plain GORM) and announces nothing; through a spelling of the model's
// own table (quoted or not as the database folds case, qualified by the
// current schema) it is announced as a write of that table. In outbox
// mode, also outside a transaction, the other tables' writes leave no row
// in the outbox.
func TestOtherTable(t *testing.T) {
	modes := []struct {
		name string
		gcfg func() *gorm.Config
		cfg  telegraphy.Config
	}{
		{"publish", func() *gorm.Config { return nil }, telegraphy.Config{}},
		{"outbox", func() *gorm.Config { return nil }, telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}}},
		{"outbox, no default transaction", func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} },
			telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}}},
	}
	for _, d := range allDialects {
		cases := append(otherTableCases(d.name), ownTableCases(d.name)...)
		for _, c := range cases {
			for _, mode := range modes {
				if mode.name != "publish" && c.want != nil {
					continue // the own table's events in outbox mode are outbox_test.go's
				}
				t.Run(d.name+"/"+c.name+"/"+mode.name, func(t *testing.T) {
					plain := openTableWorld(t, d, mode.gcfg(), nil)
					want := plain.outcome(t, c.run(plain.db, plain))

					rec := broker.NewRecorder(nil)
					cfg := mode.cfg
					cfg.Broker = rec
					p := telegraphy.New(cfg)
					for _, m := range []any{Crate{}, ArchivedCrate{}, Doc{}} {
						if err := p.Register(m, events.Options{}); err != nil {
							t.Fatal(err)
						}
					}
					w := openTableWorld(t, d, mode.gcfg(), p)
					if cfg.Outbox.Enabled {
						t.Cleanup(func() { closePlugin(t, p) })
						w.outboxBefore = outboxRows(t, w.db)
					}
					rec.Reset()
					got := w.outcome(t, c.run(w.db, w))
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("with the plugin %+v\nwithout it    %+v", got, want)
					}
					if cfg.Outbox.Enabled {
						if n := outboxRows(t, w.db); n != w.outboxBefore {
							t.Fatalf("the outbox holds %d rows, %d before the write", n, w.outboxBefore)
						}
						return
					}
					if want.err != "" {
						expect(t, rec)
						return
					}
					expect(t, rec, c.want...)
				})
			}
		}
	}
}

// TestTableExpressionUnresolved: a table expression that is more than one
// table name (a join, a subquery) runs as without the plugin; the plugin
// takes it for the model's own table when it names that table anywhere
// (then an update sends one bulk_update, as for any table expression the
// plugin cannot read apart from the statement) and for another table when
// it does not (nothing). MySQL and MariaDB run a join as a multi-table
// UPDATE; PostgreSQL and SQLite refuse both forms, and nothing is sent.
func TestTableExpressionUnresolved(t *testing.T) {
	cases := []struct {
		name string
		run  func(db *gorm.DB) *gorm.DB
		want func(d string) []ev
	}{
		{"a join naming the model's table", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("crates JOIN orders ON orders.id = crates.id").Where("orders.status = ?", "paid").Update("name", "joined")
		}, func(d string) []ev {
			if d == "mysql" {
				return []ev{{Name: crateName, Type: "bulk_update", Count: 1}}
			}
			return nil
		}},
		{"a join of other tables", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("crates_archive JOIN orders ON orders.id = crates_archive.id").Where("orders.status = ?", "paid").Update("name", "joined")
		}, func(string) []ev { return nil }},
		{"a subquery of the model's table", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("(SELECT * FROM crates) AS c").Where("c.id = ?", 1).Update("name", "sub")
		}, func(string) []ev { return nil }},
		{"a subquery of another table", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("(SELECT * FROM crates_archive) AS c").Where("c.id = ?", 1).Update("name", "sub")
		}, func(string) []ev { return nil }},
	}
	for _, d := range allDialects {
		for _, c := range cases {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				seed := func(db *gorm.DB) {
					t.Helper()
					if err := db.Session(&gorm.Session{NewDB: true}).Create(&[]Order{{ID: 1, Status: "paid"}, {ID: 2, Status: "new"}}).Error; err != nil {
						t.Fatal(err)
					}
				}
				plain := openTableWorld(t, d, nil, nil)
				seed(plain.db)
				want := plain.outcome(t, c.run(plain.db))

				rec := broker.NewRecorder(nil)
				p := telegraphy.New(telegraphy.Config{Broker: rec})
				for _, m := range []any{Crate{}, ArchivedCrate{}} {
					if err := p.Register(m, events.Options{}); err != nil {
						t.Fatal(err)
					}
				}
				w := openTableWorld(t, d, nil, p)
				seed(w.db)
				rec.Reset()
				got := w.outcome(t, c.run(w.db))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("with the plugin %+v\nwithout it    %+v", got, want)
				}
				expect(t, rec, c.want(d.name)...)
			})
		}
	}
}
