package telegraphy_test

import (
	"crypto/rand"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Box has a column that stores another value than the one written on
// PostgreSQL (char pads) and MariaDB (char drops trailing spaces): its
// creates are read back.
type Box struct {
	ID   uint   `json:"id"`
	Code string `json:"code" gorm:"type:char(6)"`
}

const boxName = "telegraphy_test.Box"

type aliasCase struct {
	name string
	run  func(db *gorm.DB) *gorm.DB
	want func(d string, db *gorm.DB) []ev // the events when the write succeeds; db after it
}

func box(id uint, code string) map[string]any { return map[string]any{"id": id, "code": code} }

// aliasCases write crates (holding 1 and 5), docs (1 and 2) and boxes
// (1) through an alias of the model's table.
func aliasCases() []aliasCase {
	same := func(evs ...ev) func(string, *gorm.DB) []ev { return func(string, *gorm.DB) []ev { return evs } }
	// returning: the events of an update or delete whose statement
	// returns its rows (PostgreSQL, SQLite); bulk: one bulk event for
	// MariaDB, which reads the rows apart from the statement.
	returning := func(bulk ev, evs ...ev) func(string, *gorm.DB) []ev {
		return func(d string, _ *gorm.DB) []ev {
			if d == "mysql" {
				return []ev{bulk}
			}
			return evs
		}
	}
	return []aliasCase{
		{"create from a map", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("crates AS c").Create(map[string]any{"id": 3, "name": "m3"})
		}, same(ev{Name: crateName, Type: "create", PK: 3, Data: crate(3, "m3")})},
		{"create from maps", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("crates AS c").Create([]map[string]any{{"id": 3, "name": "m3"}, {"id": 4, "name": "m4"}})
		}, same(ev{Name: crateName, Type: "create", PK: 3, Data: crate(3, "m3")}, ev{Name: crateName, Type: "create", PK: 4, Data: crate(4, "m4")})},
		{"create", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Create(&Crate{ID: 3, Name: "s3"})
		}, same(ev{Name: crateName, Type: "create", PK: 3, Data: crate(3, "s3")})},
		{"create of a row read back", func(db *gorm.DB) *gorm.DB {
			return db.Table("boxes AS b").Create(&Box{ID: 2, Code: "ab "})
		}, func(d string, _ *gorm.DB) []ev {
			code := map[string]string{"postgres": "ab    ", "mysql": "ab", "sqlite": "ab "}[d]
			return []ev{{Name: boxName, Type: "create", PK: 2, Data: box(2, code)}}
		}},
		{"upsert, update all", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Clauses(clause.OnConflict{UpdateAll: true}).
				Create(&[]Crate{{ID: 1, Name: "u1"}, {ID: 4, Name: "u4"}})
		}, same(ev{Name: crateName, Type: "update", PK: 1, Data: crate(1, "u1"), Changed: []string{"name"}},
			ev{Name: crateName, Type: "create", PK: 4, Data: crate(4, "u4")})},
		{"upsert, assigned columns", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"name"})}).
				Create(&Crate{ID: 5, Name: "a5"})
		}, same(ev{Name: crateName, Type: "update", PK: 5, Data: crate(5, "a5"), Changed: []string{"name"}})},
		{"upsert, do nothing", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Clauses(clause.OnConflict{DoNothing: true}).
				Create(&[]Crate{{ID: 1, Name: "kept"}, {ID: 6, Name: "n6"}})
		}, same(ev{Name: crateName, Type: "create", PK: 6, Data: crate(6, "n6")})},
		{"upsert of a row read back", func(db *gorm.DB) *gorm.DB {
			return db.Table("boxes AS b").Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Box{{ID: 1, Code: "x "}, {ID: 3, Code: "y"}})
		}, func(d string, _ *gorm.DB) []ev {
			x := map[string]string{"postgres": "x     ", "mysql": "x", "sqlite": "x "}[d]
			y := map[string]string{"postgres": "y     ", "mysql": "y", "sqlite": "y"}[d]
			return []ev{{Name: boxName, Type: "update", PK: 1, Data: box(1, x), Changed: []string{"code"}},
				{Name: boxName, Type: "create", PK: 3, Data: box(3, y)}}
		}},
		{"save of a new row", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Save(&Crate{ID: 7, Name: "s7"})
		}, same(ev{Name: crateName, Type: "create", PK: 7, Data: crate(7, "s7")})},
		{"update by key", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{ID: 1}).Table("crates AS c").Update("name", "k1")
		}, same(ev{Name: crateName, Type: "update", PK: 1, Data: crate(1, "k1"), Changed: []string{"name"}})},
		{"update by condition", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("crates AS c").Where("c.id = ?", 1).Update("name", "c1")
		}, returning(ev{Name: crateName, Type: "bulk_update", Count: 1},
			ev{Name: crateName, Type: "update", PK: 1, Data: crate(1, "c1"), Changed: []string{"name"}})},
		{"update by condition through a quoted alias", func(db *gorm.DB) *gorm.DB {
			c := db.Statement.Quote("c")
			return db.Model(&Crate{}).Table("crates AS "+c).Where(c+".id = ?", 1).Update("name", "q1")
		}, returning(ev{Name: crateName, Type: "bulk_update", Count: 1},
			ev{Name: crateName, Type: "update", PK: 1, Data: crate(1, "q1"), Changed: []string{"name"}})},
		{"delete by condition through a quoted alias", func(db *gorm.DB) *gorm.DB {
			c := db.Statement.Quote("c")
			return db.Table("crates AS "+c).Where(c+".id = ?", 5).Delete(&Crate{})
		}, returning(ev{Name: crateName, Type: "bulk_delete", Count: 1}, ev{Name: crateName, Type: "delete", PK: 5, Data: crate(5, "own5")})},
		{"update by condition with RETURNING", func(db *gorm.DB) *gorm.DB {
			var out []Crate
			return db.Model(&out).Table("crates AS c").Clauses(clause.Returning{}).Where("c.id = ?", 5).Update("name", "r5")
		}, func(d string, _ *gorm.DB) []ev {
			if d == "postgres" { // the statement records the keys it returned
				return []ev{{Name: crateName, Type: "update", PK: 5, Data: crate(5, "r5"), Changed: []string{"name"}}}
			}
			return []ev{{Name: crateName, Type: "bulk_update", Count: 1}}
		}},
		{"delete by key", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Delete(&Crate{ID: 5})
		}, returning(ev{Name: crateName, Type: "bulk_delete", Count: 1}, ev{Name: crateName, Type: "delete", PK: 5, Data: crate(5, "own5")})},
		{"delete by condition", func(db *gorm.DB) *gorm.DB {
			return db.Table("crates AS c").Where("c.id = ?", 5).Delete(&Crate{})
		}, returning(ev{Name: crateName, Type: "bulk_delete", Count: 1}, ev{Name: crateName, Type: "delete", PK: 5, Data: crate(5, "own5")})},
		{"soft delete by condition", func(db *gorm.DB) *gorm.DB {
			return db.Table("docs AS d").Where("d.id = ?", 1).Delete(&Doc{})
		}, func(d string, db *gorm.DB) []ev {
			if d == "mysql" {
				return []ev{{Name: "telegraphy_test.Doc", Type: "bulk_delete", Count: 1, Soft: true}}
			}
			var doc Doc
			if err := db.Session(&gorm.Session{NewDB: true}).Unscoped().First(&doc, 1).Error; err != nil {
				panic(err)
			}
			return []ev{{Name: "telegraphy_test.Doc", Type: "delete", PK: 1, Soft: true,
				Data: map[string]any{"id": 1, "title": "d1", "deleted_at": doc.DeletedAt}}}
		}},
		{"create through clause.Table with an alias", func(db *gorm.DB) *gorm.DB {
			return db.Table("?", clause.Table{Name: "crates", Alias: "c"}).Create(&Crate{ID: 3, Name: "t3"})
		}, same(ev{Name: crateName, Type: "create", PK: 3, Data: crate(3, "t3")})},
		{"create from a map through clause.Table with an alias", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{}).Table("?", clause.Table{Name: "crates", Alias: "c"}).Create(map[string]any{"id": 3, "name": "t3"})
		}, same(ev{Name: crateName, Type: "create", PK: 3, Data: crate(3, "t3")})},
		{"upsert through clause.Table with an alias", func(db *gorm.DB) *gorm.DB {
			return db.Table("?", clause.Table{Name: "crates", Alias: "c"}).Clauses(clause.OnConflict{UpdateAll: true}).
				Create(&[]Crate{{ID: 1, Name: "u1"}, {ID: 4, Name: "u4"}})
		}, same(ev{Name: crateName, Type: "update", PK: 1, Data: crate(1, "u1"), Changed: []string{"name"}},
			ev{Name: crateName, Type: "create", PK: 4, Data: crate(4, "u4")})},
		{"update by key through clause.Table with an alias", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Crate{ID: 1}).Table("?", clause.Table{Name: "crates", Alias: "c"}).Update("name", "k1")
		}, same(ev{Name: crateName, Type: "update", PK: 1, Data: crate(1, "k1"), Changed: []string{"name"}})},
	}
}

// boxesOf returns the boxes of db, by id.
func boxesOf(t *testing.T, db *gorm.DB) []Box {
	t.Helper()
	var out []Box
	if err := db.Session(&gorm.Session{NewDB: true}).Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOwnTableAlias: a write through an alias of the model's own table
// (db.Table("crates AS c"), a clause.Table with an alias) runs as without
// the plugin: its error, rows affected and tables are plain GORM's. When
// it succeeds, creates, upserts and updates of a loaded row are announced
// row by row as through the table's name, read (where they are read) from
// the model's table; an update or delete by condition is announced row by
// row where the statement returns its rows (PostgreSQL, SQLite), and with
// one bulk event on MariaDB, whose read before the statement could not
// name the alias its conditions may use. When it fails, nothing is sent.
func TestOwnTableAlias(t *testing.T) {
	for _, d := range allDialects {
		for _, c := range aliasCases() {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				seed := func(w tableWorld) {
					t.Helper()
					if err := w.db.AutoMigrate(&Box{}); err != nil {
						t.Fatal(err)
					}
					if err := w.db.Session(&gorm.Session{NewDB: true}).Create(&Box{ID: 1, Code: "old"}).Error; err != nil {
						t.Fatal(err)
					}
				}
				plain := openTableWorld(t, d, nil, nil)
				seed(plain)
				want := plain.outcome(t, c.run(plain.db))
				wantBoxes := boxesOf(t, plain.db)

				rec := broker.NewRecorder(nil)
				p := telegraphy.New(telegraphy.Config{Broker: rec})
				for _, m := range []any{Crate{}, ArchivedCrate{}, Doc{}, Box{}} {
					if err := p.Register(m, events.Options{}); err != nil {
						t.Fatal(err)
					}
				}
				w := openTableWorld(t, d, nil, p)
				seed(w)
				rec.Reset()
				got := w.outcome(t, c.run(w.db))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("with the plugin %+v\nwithout it    %+v", got, want)
				}
				if b := boxesOf(t, w.db); !reflect.DeepEqual(b, wantBoxes) {
					t.Fatalf("boxes with the plugin %+v, without it %+v", b, wantBoxes)
				}
				if want.err != "" {
					expect(t, rec)
					return
				}
				expect(t, rec, c.want(d.name, w.db)...)
			})
		}
	}
}

// remSchema is the schema (PostgreSQL; a database on MariaDB, an
// attached database on SQLite) that Rem's table is in: not the
// connection's, unique to the test process.
var remSchema = func() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "t_rems_" + hex.EncodeToString(b)
}()

// Rem's table is in another schema than the connection's, and has a
// column whose values are read back (char pads on PostgreSQL).
type Rem struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"type:char(4)"`
}

func (Rem) TableName() string { return remSchema + ".rems" }

const remName = "telegraphy_test.Rem"

func rem(id uint, name string) map[string]any { return map[string]any{"id": id, "name": name} }

// openRemWorld opens a database of d with remSchema.rems holding 1 and 5,
// and with own a rems table of the connection's schema holding 1 (which
// the model's reads must not see); with p the plugin is installed. The
// schema is dropped when the test ends.
func openRemWorld(t *testing.T, d dialect, own bool, p *telegraphy.Plugin) *gorm.DB {
	t.Helper()
	db := openDB(t, d.open(t), nil)
	exec := func(q string) {
		t.Helper()
		if err := db.Session(&gorm.Session{NewDB: true}).Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	switch d.name {
	case "sqlite":
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(1) // the attachment is the connection's
		exec("ATTACH DATABASE '" + t.TempDir() + "/rems.db' AS " + remSchema)
	case "postgres":
		exec("CREATE SCHEMA " + remSchema)
		t.Cleanup(func() { _ = db.Exec("DROP SCHEMA " + remSchema + " CASCADE").Error })
	case "mysql":
		exec("CREATE DATABASE " + remSchema)
		t.Cleanup(func() { _ = db.Exec("DROP DATABASE " + remSchema).Error })
	}
	exec("CREATE TABLE " + remSchema + ".rems (id bigint PRIMARY KEY, name char(4))")
	exec("INSERT INTO " + remSchema + ".rems (id, name) VALUES (1, 'r1'), (5, 'r5')")
	if own {
		exec("CREATE TABLE rems (id bigint PRIMARY KEY, name char(4))")
		exec("INSERT INTO rems (id, name) VALUES (1, 'own1')")
	}
	if p != nil {
		if err := db.Use(p); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

type remOutcome struct {
	err      string
	affected int64
	rems     []Rem // remSchema.rems
	own      []Rem // the connection schema's rems
}

func remOutcomeOf(t *testing.T, db, tx *gorm.DB, own bool) remOutcome {
	t.Helper()
	o := remOutcome{affected: tx.RowsAffected}
	if tx.Error != nil {
		o.err = strings.ReplaceAll(tx.Error.Error(), remSchema, "<rems>")
	}
	s := db.Session(&gorm.Session{NewDB: true})
	if err := s.Order("id").Find(&o.rems).Error; err != nil {
		t.Fatal(err)
	}
	if own {
		if err := s.Table("rems").Order("id").Find(&o.own).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range [][]Rem{o.rems, o.own} {
		for i := range r {
			r[i].Name = strings.TrimRight(r[i].Name, " ") // as each database reads char back
		}
	}
	return o
}

// TestSchemaQualifiedModel: a model whose TableName names a table of
// another schema (PostgreSQL, outside the search path), database
// (MariaDB) or attached database (SQLite), with or without a table of the
// same name in the connection's, runs as without the plugin, and its
// events say what the named table holds: the plugin reads that table,
// never the one of the same name in the connection's schema. GORM's
// SQLite INSERT names the table without its schema: a create or upsert
// there writes the first table of that name SQLite finds, the
// connection's own when it has one, and is announced only when that is
// the model's.
func TestSchemaQualifiedModel(t *testing.T) {
	pad := func(d, s string) string {
		if d == "postgres" {
			return s + strings.Repeat(" ", 4-len(s))
		}
		return s
	}
	cases := []struct {
		name string
		run  func(db *gorm.DB) *gorm.DB
		want func(d string) []ev
	}{
		{"create", func(db *gorm.DB) *gorm.DB { return db.Create(&Rem{ID: 2, Name: "c2"}) },
			func(d string) []ev { return []ev{{Name: remName, Type: "create", PK: 2, Data: rem(2, pad(d, "c2"))}} }},
		{"create from a map", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Rem{}).Create(map[string]any{"id": 3, "name": "m3"})
		}, func(d string) []ev { return []ev{{Name: remName, Type: "create", PK: 3, Data: rem(3, pad(d, "m3"))}} }},
		{"upsert, update all", func(db *gorm.DB) *gorm.DB {
			return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Rem{{ID: 1, Name: "u1"}, {ID: 4, Name: "u4"}})
		}, func(d string) []ev {
			return []ev{{Name: remName, Type: "update", PK: 1, Data: rem(1, pad(d, "u1")), Changed: []string{"name"}},
				{Name: remName, Type: "create", PK: 4, Data: rem(4, pad(d, "u4"))}}
		}},
		{"upsert, do nothing", func(db *gorm.DB) *gorm.DB {
			return db.Clauses(clause.OnConflict{DoNothing: true}).Create(&[]Rem{{ID: 5, Name: "no"}, {ID: 6, Name: "n6"}})
		}, func(d string) []ev { return []ev{{Name: remName, Type: "create", PK: 6, Data: rem(6, pad(d, "n6"))}} }},
		{"update by key", func(db *gorm.DB) *gorm.DB { return db.Model(&Rem{ID: 1}).Update("name", "k1") },
			func(d string) []ev {
				return []ev{{Name: remName, Type: "update", PK: 1, Data: rem(1, pad(d, "k1")), Changed: []string{"name"}}}
			}},
		{"update by condition", func(db *gorm.DB) *gorm.DB {
			return db.Model(&Rem{}).Where("id >= ?", 1).Update("name", "all")
		}, func(d string) []ev {
			return []ev{{Name: remName, Type: "update", PK: 1, Data: rem(1, pad(d, "all")), Changed: []string{"name"}},
				{Name: remName, Type: "update", PK: 5, Data: rem(5, pad(d, "all")), Changed: []string{"name"}}}
		}},
		{"update by condition with RETURNING", func(db *gorm.DB) *gorm.DB {
			var out []Rem
			return db.Model(&out).Clauses(clause.Returning{}).Where("id = ?", 5).Update("name", "ret")
		}, func(d string) []ev {
			return []ev{{Name: remName, Type: "update", PK: 5, Data: rem(5, pad(d, "ret")), Changed: []string{"name"}}}
		}},
		{"delete with RETURNING", func(db *gorm.DB) *gorm.DB {
			var out []Rem
			return db.Clauses(clause.Returning{}).Where("id = ?", 5).Delete(&out)
		}, func(d string) []ev { return []ev{{Name: remName, Type: "delete", PK: 5, Data: rem(5, pad(d, "r5"))}} }},
		{"delete by key", func(db *gorm.DB) *gorm.DB { return db.Delete(&Rem{ID: 1}) },
			func(d string) []ev { return []ev{{Name: remName, Type: "delete", PK: 1, Data: rem(1, pad(d, "r1"))}} }},
		{"delete by condition", func(db *gorm.DB) *gorm.DB { return db.Where("id > ?", 0).Delete(&Rem{}) },
			func(d string) []ev {
				return []ev{{Name: remName, Type: "delete", PK: 1, Data: rem(1, pad(d, "r1"))},
					{Name: remName, Type: "delete", PK: 5, Data: rem(5, pad(d, "r5"))}}
			}},
	}
	for _, d := range allDialects {
		for _, own := range []bool{true, false} {
			for _, c := range cases {
				name := d.name + "/" + c.name
				if own {
					name += "/with rems of its own"
				}
				t.Run(name, func(t *testing.T) {
					// One world at a time: both use remSchema.
					var want remOutcome
					t.Run("plain", func(t *testing.T) {
						db := openRemWorld(t, d, own, nil)
						want = remOutcomeOf(t, db, c.run(db), own)
					})
					rec := broker.NewRecorder(nil)
					p := telegraphy.New(telegraphy.Config{Broker: rec})
					if err := p.Register(Rem{}, events.Options{}); err != nil {
						t.Fatal(err)
					}
					db := openRemWorld(t, d, own, p)
					got := remOutcomeOf(t, db, c.run(db), own)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("with the plugin %+v\nwithout it    %+v", got, want)
					}
					if want.err != "" || d.name == "sqlite" && own && (strings.HasPrefix(c.name, "create") || strings.HasPrefix(c.name, "upsert")) {
						// The statement wrote the connection's rems.
						expect(t, rec)
						return
					}
					expect(t, rec, c.want(d.name)...)
				})
			}
		}
	}
}
