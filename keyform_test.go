package telegraphy_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Models whose primary key may be given in another form than the table
// keeps it: a uuid in upper case (PostgreSQL and MariaDB keep it in lower
// case), a char(n) key (PostgreSQL pads it), a number given as text in an
// integer column.

type KfUUID struct {
	ID   string `json:"id" gorm:"primaryKey;type:uuid"`
	Name string `json:"name"`
}

// KfUUIDDecimal has another column that stores another value, so its
// creates were read back by key already.
type KfUUIDDecimal struct {
	ID    string  `json:"id" gorm:"primaryKey;type:uuid"`
	Price float64 `json:"price" gorm:"type:decimal(10,2)"`
}

type KfChar struct {
	ID   string `json:"id" gorm:"primaryKey;type:char(6)"`
	Name string `json:"name"`
}

type KfText struct {
	ID   string `json:"id" gorm:"primaryKey;type:bigint"`
	Name string `json:"name"`
}

// kfKey is a key as an event's data carries it.
type kfKey struct {
	ID   any    `json:"id"`
	Name string `json:"name"`
}

// TestKeyGivenInAnotherForm: a create whose key is given in another form
// than the table keeps it is announced with the key as stored, on the
// record channel its later updates are announced on, and with the row as
// stored; the same for a create from a slice and for an upsert.
func TestKeyGivenInAnotherForm(t *testing.T) {
	cases := []struct {
		name   string
		model  any
		given  func() any // the row to create, its key in another form
		update func(db *gorm.DB) *gorm.DB
	}{
		{"uuid", KfUUID{}, func() any { return &KfUUID{ID: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", Name: "a"} },
			func(db *gorm.DB) *gorm.DB { return db.Model(&KfUUID{ID: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}) }},
		{"uuid-decimal", KfUUIDDecimal{}, func() any { return &KfUUIDDecimal{ID: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12", Price: 1.005} },
			func(db *gorm.DB) *gorm.DB {
				return db.Model(&KfUUIDDecimal{ID: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12"})
			}},
		{"char", KfChar{}, func() any { return &KfChar{ID: "ab", Name: "a"} },
			func(db *gorm.DB) *gorm.DB { return db.Model(&KfChar{ID: "ab"}) }},
		{"text-number", KfText{}, func() any { return &KfText{ID: "012", Name: "a"} },
			func(db *gorm.DB) *gorm.DB { return db.Model(&KfText{ID: "012"}) }},
	}
	for _, d := range allDialects {
		for _, c := range cases {
			for _, how := range []string{"one", "slice", "upsert", "notx"} {
				t.Run(d.name+"/"+c.name+"/"+how, func(t *testing.T) {
					var gcfg *gorm.Config
					if how == "notx" {
						gcfg = &gorm.Config{SkipDefaultTransaction: true}
					}
					e := setup(t, d, gcfg, telegraphy.Config{})
					addModel(t, e, c.model, events.Options{Name: "kf"})
					var err error
					switch row := c.given(); how {
					case "slice":
						switch r := row.(type) {
						case *KfUUID:
							err = e.db.Create(&[]KfUUID{*r}).Error
						case *KfUUIDDecimal:
							err = e.db.Create(&[]KfUUIDDecimal{*r}).Error
						case *KfChar:
							err = e.db.Create(&[]KfChar{*r}).Error
						case *KfText:
							err = e.db.Create(&[]KfText{*r}).Error
						}
					case "upsert":
						err = e.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(row).Error
					default:
						err = e.db.Create(row).Error
					}
					if err != nil {
						t.Fatal(err)
					}
					if column := "name"; c.name != "uuid-decimal" {
						err = c.update(e.db).Update(column, "b").Error
					} else {
						err = c.update(e.db).Update("price", 2).Error
					}
					if err != nil {
						t.Fatal(err)
					}
					stored := map[string]any{}
					if err := e.db.Model(c.model).Take(&stored).Error; err != nil {
						t.Fatal(err)
					}
					msgs := e.rec.Messages()
					if len(msgs) != 2 {
						t.Fatalf("%d messages, want a create and an update: %s", len(msgs), msgsText(msgs))
					}
					var created, updated struct {
						Meta struct {
							EventType string `json:"event_type"`
							PK        any    `json:"pk"`
						} `json:"meta"`
						Data kfKey `json:"data"`
					}
					_ = json.Unmarshal(msgs[0].Data, &created)
					_ = json.Unmarshal(msgs[1].Data, &updated)
					if created.Meta.EventType != "create" || updated.Meta.EventType != "update" {
						t.Fatalf("events %s, %s, want create, update", created.Meta.EventType, updated.Meta.EventType)
					}
					if msgs[0].Channels[1] != msgs[1].Channels[1] {
						t.Errorf("the create went to %q, the update of the same row to %q", msgs[0].Channels[1], msgs[1].Channels[1])
					}
					if want := keyString(stored["id"]); keyString(created.Data.ID) != want || keyString(created.Meta.PK) != want {
						t.Errorf("the create names key %q (pk %q), the table holds %s", keyString(created.Data.ID), keyString(created.Meta.PK), want)
					}
					if c.name == "uuid-decimal" {
						var data struct {
							Data struct {
								Price float64 `json:"price"`
							} `json:"data"`
						}
						_ = json.Unmarshal(msgs[0].Data, &data)
						if data.Data.Price != 1.01 && d.name != "sqlite" {
							t.Errorf("the create announces price %v, the table held 1.01", data.Data.Price)
						}
					}
				})
			}
		}
	}
}

// keyString is a key value as text: MySQL's driver reads text as bytes,
// a JSON number decodes as a float64.
func keyString(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func msgsText(msgs []broker.Message) string {
	var sb strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&sb, "\n%v %s", m.Channels, m.Data)
	}
	return sb.String()
}

type KfName struct {
	ID   string `json:"id" gorm:"primaryKey;size:20"`
	Name string `json:"name"`
}

// TestUpsertKeyMatchedByCollation: an upsert whose key the table matches
// by its collation rather than by its text (MySQL's default collations
// ignore case and trailing spaces) announces the row it updated, as the
// table holds it. A page applying the events shows what the table holds.
func TestUpsertKeyMatchedByCollation(t *testing.T) {
	for _, d := range allDialects {
		for _, how := range []string{"one", "slice"} {
			t.Run(d.name+"/"+how, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				addModel(t, e, KfName{}, events.Options{Name: "kfn"})
				page := map[string]string{}
				apply := func() {
					for _, m := range e.rec.Messages() {
						var ev struct {
							Meta struct {
								EventType string `json:"event_type"`
							} `json:"meta"`
							Data kfKey `json:"data"`
						}
						if err := json.Unmarshal(m.Data, &ev); err != nil {
							t.Fatal(err)
						}
						if ev.Meta.EventType != "create" && ev.Meta.EventType != "update" {
							t.Fatalf("event %s: %s", ev.Meta.EventType, m.Data)
						}
						page[keyString(ev.Data.ID)] = ev.Data.Name
					}
					e.rec.Reset()
				}
				if err := e.db.Create(&[]KfName{{ID: "ABC", Name: "first"}, {ID: "x", Name: "first"}}).Error; err != nil {
					t.Fatal(err)
				}
				apply()
				upsert := e.db.Clauses(clause.OnConflict{UpdateAll: true})
				var err error
				if how == "one" {
					err = upsert.Create(&KfName{ID: "abc", Name: "second"}).Error
				} else {
					err = upsert.Create(&[]KfName{{ID: "abc", Name: "second"}, {ID: "x  ", Name: "second"}, {ID: "new", Name: "second"}}).Error
				}
				if err != nil {
					t.Fatal(err)
				}
				apply()
				var rows []KfName
				if err := e.db.Order("id").Find(&rows).Error; err != nil {
					t.Fatal(err)
				}
				table := map[string]string{}
				for _, r := range rows {
					table[r.ID] = r.Name
				}
				if fmt.Sprint(page) != fmt.Sprint(table) {
					t.Errorf("the page shows %v, the table holds %v", page, table)
				}
			})
		}
	}
}
