package telegraphy_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// Models whose `type` tags declare columns that may store another value
// than the Go value given: a fixed-point number rounds, a char(n) pads or
// loses trailing spaces, a single-precision float rounds a float64, a
// date drops the time of day, a uuid is kept in its canonical form.

type SvDecimal struct {
	ID    uint     `json:"id"`
	Price float64  `json:"price" gorm:"type:decimal(10,2)"`
	Rate  float64  `json:"rate" gorm:"type:numeric(8,3)"`
	Whole float64  `json:"whole" gorm:"type:decimal(12)"`
	Text  string   `json:"text" gorm:"type:numeric(10,2)"`
	Ptr   *float64 `json:"ptr" gorm:"type:DECIMAL(6,1)"`
	// No type tag: precision and scale make AutoMigrate declare
	// numeric(10,3) on PostgreSQL, decimal(10,3) on MySQL.
	Scaled  float64 `json:"scaled" gorm:"precision:10;scale:3"`
	TextPtr *string `json:"text_ptr" gorm:"type:decimal(10,2)"`
}

type SvChar struct {
	ID   uint    `json:"id"`
	Code string  `json:"code" gorm:"type:char(6)"`
	Ptr  *string `json:"ptr" gorm:"type:character(3)"`
}

type SvSingle struct {
	ID    uint    `json:"id"`
	Real  float64 `json:"real" gorm:"type:real"`
	Float float64 `json:"float" gorm:"type:float"`
	F4    float64 `json:"f4" gorm:"type:float4"`
	F32   float32 `json:"f32" gorm:"type:real"`
}

type SvDate struct {
	ID  uint       `json:"id"`
	Day time.Time  `json:"day" gorm:"type:date"`
	Ptr *time.Time `json:"ptr" gorm:"type:date"`
}

type SvUUID struct {
	ID  uint   `json:"id"`
	Ref string `json:"ref" gorm:"type:uuid"`
}

func svFloat(f float64) *float64 { return &f }
func svString(s string) *string  { return &s }

// svRows are the rows each test creates, per model.
func svRows() map[string][]any {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	day := time.Date(2026, 12, 2, 23, 4, 5, 123456789, zone)
	midnight := time.Date(2026, 12, 3, 0, 0, 0, 0, zone)
	return map[string][]any{
		"decimal": {
			&SvDecimal{Price: 1.005, Rate: 2.4567, Whole: 7.5, Text: "01.5", Ptr: svFloat(-2.45), Scaled: 0.0125, TextPtr: svString("+7.1")},
			&SvDecimal{Price: 2.4567, Rate: -0.0005, Whole: 12.49, Text: "3", Ptr: svFloat(0.05)},
			&SvDecimal{Price: 3, Rate: 1.25, Whole: 2, Text: "4.25"},
		},
		"char": {
			&SvChar{Code: "ab", Ptr: svString("x")},
			&SvChar{Code: "ab  ", Ptr: svString("yz ")},
			&SvChar{Code: "abcdef"},
		},
		"single": {
			&SvSingle{Real: 0.1, Float: 0.1, F4: 1.0 / 3, F32: 0.1},
			&SvSingle{Real: 16777217, Float: 2.675, F4: 0.5, F32: 1.0 / 3},
		},
		"date": {
			&SvDate{Day: day, Ptr: &midnight},
			&SvDate{Day: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		},
		"uuid": {
			&SvUUID{Ref: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
			&SvUUID{Ref: "a0eebc999c0b4ef8bb6d6bb9bd380a12"},
		},
	}
}

// svModels pairs each kind of column with its model.
var svModels = []struct {
	name  string
	model any
}{
	{"decimal", &SvDecimal{}},
	{"char", &SvChar{}},
	{"single", &SvSingle{}},
	{"date", &SvDate{}},
	{"uuid", &SvUUID{}},
}

// svDiff compares an event's data with a row as plain GORM reads it,
// encoded as JSON, key by key: times as instants, the rest as JSON text.
func svDiff(data json.RawMessage, row any) []string {
	var announced, stored map[string]json.RawMessage
	if err := json.Unmarshal(data, &announced); err != nil {
		return []string{fmt.Sprintf("data %s: %v", data, err)}
	}
	b, _ := json.Marshal(row)
	_ = json.Unmarshal(b, &stored)
	var bad []string
	for k, sv := range stored {
		av := announced[k]
		var at, st time.Time
		if json.Unmarshal(av, &at) == nil && json.Unmarshal(sv, &st) == nil {
			if !at.Equal(st) {
				bad = append(bad, fmt.Sprintf("%s: announced %s, stored %s", k, av, sv))
			}
			continue
		}
		if string(av) != string(sv) {
			bad = append(bad, fmt.Sprintf("%s: announced %s, stored %s", k, av, sv))
		}
	}
	sort.Strings(bad)
	return bad
}

// svStored reads the row of model's type with the given id, with plain
// GORM, after the statement committed.
func svStored(t *testing.T, db *gorm.DB, model any, id uint) any {
	t.Helper()
	row := reflect.New(reflect.TypeOf(model).Elem()).Interface()
	if err := db.Session(&gorm.Session{NewDB: true}).First(row, id).Error; err != nil {
		t.Fatal(err)
	}
	return row
}

// svCheck asserts that the recorded events are one of typ per id, in
// order, each carrying the row with that id as the table holds it.
func svCheck(t *testing.T, e env, model any, typ string, ids []uint) {
	t.Helper()
	got := e.rec.Events()
	e.rec.Reset()
	if len(got) != len(ids) {
		t.Fatalf("%d events for %d rows:%s", len(got), len(ids), describe(got))
	}
	for i, ev := range got {
		var key struct {
			ID uint `json:"id"`
		}
		_ = json.Unmarshal(ev.Data, &key)
		if ev.Meta.EventType != typ || key.ID != ids[i] {
			t.Fatalf("event %d is not the %s of row %d:%s", i, typ, ids[i], describe(got[i:i+1]))
		}
		if bad := svDiff(ev.Data, svStored(t, e.db, model, ids[i])); len(bad) > 0 {
			t.Errorf("row %d: %v", ids[i], bad)
		}
	}
}

func svID(v any) uint { return uint(reflect.ValueOf(v).Elem().FieldByName("ID").Uint()) }

// TestCreateAnnouncesStoredColumnValues: a create from structs whose
// columns store another value than the Go value (decimal and numeric
// with a scale, char(n), real and float, date, uuid) announces each row as
// the table holds it after commit, on every dialect, whether the structs
// are created one by one, as a slice, or outside a transaction.
func TestCreateAnnouncesStoredColumnValues(t *testing.T) {
	for _, d := range allDialects {
		for _, m := range svModels {
			for _, how := range []string{"one", "slice", "notx"} {
				t.Run(d.name+"/"+m.name+"/"+how, func(t *testing.T) {
					var gcfg *gorm.Config
					if how == "notx" {
						gcfg = &gorm.Config{SkipDefaultTransaction: true}
					}
					e := setup(t, d, gcfg, telegraphy.Config{})
					addModel(t, e, m.model, events.Options{Name: "sv"})
					given := svRows()[m.name]
					if how == "slice" {
						slice := reflect.MakeSlice(reflect.SliceOf(reflect.TypeOf(m.model)), 0, len(given))
						for _, r := range given {
							slice = reflect.Append(slice, reflect.ValueOf(r))
						}
						if err := e.db.Create(slice.Interface()).Error; err != nil {
							t.Fatal(err)
						}
					} else {
						for _, r := range given {
							if err := e.db.Create(r).Error; err != nil {
								t.Fatal(err)
							}
						}
					}
					var ids []uint
					for _, r := range given {
						ids = append(ids, svID(r))
					}
					svCheck(t, e, m.model, "create", ids)
				})
			}
		}
	}
}

// TestUpdateAnnouncesStoredColumnValues: an update by key of such columns,
// with Update, Updates from a struct and Save, announces the row as the
// table holds it after commit.
func TestUpdateAnnouncesStoredColumnValues(t *testing.T) {
	zone := time.FixedZone("UTC-3", -3*3600)
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			for _, m := range svModels {
				addModel(t, e, m.model, events.Options{Name: "sv_" + m.name})
			}
			dec := &SvDecimal{Price: 1, Text: "1"}
			ch := &SvChar{Code: "a"}
			sg := &SvSingle{}
			dt := &SvDate{Day: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			id := &SvUUID{Ref: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}
			for _, r := range []any{dec, ch, sg, dt, id} {
				if err := e.db.Create(r).Error; err != nil {
					t.Fatal(err)
				}
			}
			e.rec.Reset()
			steps := []struct {
				model any
				id    uint
				do    func(db *gorm.DB) error
			}{
				{&SvDecimal{}, dec.ID, func(db *gorm.DB) error { return db.Model(&SvDecimal{ID: dec.ID}).Update("price", 2.4567).Error }},
				{&SvDecimal{}, dec.ID, func(db *gorm.DB) error {
					return db.Model(&SvDecimal{ID: dec.ID}).Updates(SvDecimal{Rate: 1.0005, Text: "2.5", Ptr: svFloat(0.25), Scaled: 1.23456, TextPtr: svString("08")}).Error
				}},
				{&SvDecimal{}, dec.ID, func(db *gorm.DB) error {
					dec.Price, dec.Whole = 9.999, 0.5
					return db.Save(dec).Error
				}},
				{&SvChar{}, ch.ID, func(db *gorm.DB) error { return db.Model(&SvChar{ID: ch.ID}).Update("code", "xy ").Error }},
				{&SvChar{}, ch.ID, func(db *gorm.DB) error {
					return db.Model(&SvChar{ID: ch.ID}).Updates(SvChar{Code: "q", Ptr: svString("r")}).Error
				}},
				{&SvSingle{}, sg.ID, func(db *gorm.DB) error {
					return db.Model(&SvSingle{ID: sg.ID}).Updates(SvSingle{Real: 0.1, Float: 0.1, F4: 0.7}).Error
				}},
				{&SvDate{}, dt.ID, func(db *gorm.DB) error {
					return db.Model(&SvDate{ID: dt.ID}).Update("day", time.Date(2026, 6, 7, 22, 30, 0, 0, zone)).Error
				}},
				{&SvUUID{}, id.ID, func(db *gorm.DB) error {
					return db.Model(&SvUUID{ID: id.ID}).Update("ref", "B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").Error
				}},
			}
			for i, s := range steps {
				if err := s.do(e.db); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				t.Run(fmt.Sprint(i), func(t *testing.T) { svCheck(t, e, s.model, "update", []uint{s.id}) })
			}
		})
	}
}
