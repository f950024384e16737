package model_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
)

type Invoice struct {
	ID      int64  `json:"id"`
	Number  string `json:"number,omitempty"`
	Private string `json:"-"`
	Plain   string
}

func TestModelColumns(t *testing.T) {
	cases := []struct {
		name string
		opts events.Options
		want string
	}{
		{"all columns", events.Options{}, `{"id":7,"number":"A-1","Plain":"p"}`},
		{"Fields by Go name and JSON name", events.Options{Fields: []string{"Number", "id"}}, `{"id":7,"number":"A-1"}`},
		{"hidden field listed in Fields is still hidden", events.Options{Fields: []string{"Private", "Plain"}}, `{"Plain":"p"}`},
		{"Exclude", events.Options{Exclude: []string{"number"}}, `{"id":7,"Plain":"p"}`},
		{"Exclude ignored when Fields is set", events.Options{Fields: []string{"ID"}, Exclude: []string{"ID"}}, `{"id":7}`},
	}
	inv := Invoice{ID: 7, Number: "A-1", Private: "x", Plain: "p"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := model.NewModel(&Invoice{}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "model_test.Invoice" {
				t.Errorf("default name %q", m.Name)
			}
			got, err := m.Data(reflect.ValueOf(inv))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("data %s, want %s", got, c.want)
			}
			pk, key, err := m.PK(reflect.ValueOf(&inv))
			if err != nil || string(pk) != "7" || key != "7" {
				t.Errorf("PK = %s %q %v", pk, key, err)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	var r model.Registry
	m1, _ := model.NewModel(Invoice{}, events.Options{Name: "billing.Invoice"})
	if err := r.Add(m1); err != nil {
		t.Fatal(err)
	}
	if r.Lookup(reflect.TypeFor[Invoice]()) != m1 {
		t.Fatal("Lookup did not find the model")
	}
	if err := r.Add(m1); !errors.Is(err, events.ErrDuplicate) {
		t.Errorf("second Add = %v", err)
	}
	type Other struct{ ID int }
	m2, _ := model.NewModel(Other{}, events.Options{Name: "billing.Invoice"})
	if err := r.Add(m2); !errors.Is(err, events.ErrNameTaken) {
		t.Errorf("Add under a taken name = %v", err)
	}
}

// TestEncodeMatchesJSON: Encode writes what encoding/json would.

func TestColumnForChanged(t *testing.T) {
	m, err := model.NewModel(Invoice{}, events.Options{Exclude: []string{"Plain"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		db   string
		name string
		ok   bool
	}{
		{"number", "number", true},
		{"plain", "", false},   // excluded
		{"private", "", false}, // json:"-"
		{"nope", "", false},
	}
	for _, c := range cases {
		if name, ok := m.Column(c.db); name != c.name || ok != c.ok {
			t.Errorf("Column(%q) = %q %v, want %q %v", c.db, name, ok, c.name, c.ok)
		}
	}
}

type Code string

type Cents int64

func (c Cents) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(c), 10) + `c"`), nil
}

type Line struct {
	Order   Code   `gorm:"primaryKey" json:"order"`
	No      uint16 `gorm:"primaryKey" json:"no"`
	Amount  Cents  `json:"amount"`
	Paid    bool
	Ratio   float64        `json:"ratio"`
	Note    *string        `json:"note"`
	Sku     sql.NullString `json:"sku"`
	At      time.Time      `json:"at"`
	Deleted gorm.DeletedAt `json:"deleted"`
	Raw     []byte         `json:"raw"`
}

type Keyed struct {
	Key  string `gorm:"primaryKey" json:"key"`
	Body string `json:"body"`
}

type Provided struct {
	ID int
}

func (p *Provided) EventData() any { return map[string]int{"id": p.ID * 10} }

// TestModelEncode: Model.Encode writes what Event.Encode writes for the

// same event built from Data and PK.

func TestModelEncode(t *testing.T) {
	note := "n<o>te"
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("x", 3600))
	cases := []struct {
		model any
		opts  events.Options
		v     any
		meta  events.Meta
		key   string
	}{
		{Invoice{}, events.Options{}, &Invoice{ID: 7, Number: "A-1", Plain: "p"}, events.Meta{EventType: events.TypeCreate}, "7"},
		{Invoice{}, events.Options{VerboseName: "Invoice <b>"}, &Invoice{ID: -3, Number: "é\"\n"}, events.Meta{EventType: events.TypeUpdate, Changed: []string{"number"}}, "-3"},
		{Line{}, events.Options{}, &Line{Order: "o,1", No: 2, Amount: 150, Paid: true, Ratio: 0.5, Note: &note, Sku: sql.NullString{String: "s", Valid: true}, At: at, Raw: []byte("hi")}, events.Meta{EventType: events.TypeDelete, Soft: true}, "o,1,2"},
		{Line{}, events.Options{Fields: []string{"amount"}}, &Line{Order: "x"}, events.Meta{EventType: events.TypeCreate}, "x,0"},
		{Keyed{}, events.Options{}, &Keyed{Key: "a\\b\"ü", Body: "\u2028"}, events.Meta{EventType: events.TypeCreate}, "a\\b\"ü"},
		{Keyed{}, events.Options{}, &Keyed{Key: "plain"}, events.Meta{EventType: events.TypeCreate}, "plain"},
		{Provided{}, events.Options{Name: "p.P"}, &Provided{ID: 4}, events.Meta{EventType: events.TypeUpdate}, "4"},
	}
	for i, c := range cases {
		m, err := model.NewModel(c.model, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 11, 25, 19, 1, 2, 3456789, time.UTC)
		enc, err := m.Encode(reflect.ValueOf(c.v), c.meta, now)
		if err != nil {
			t.Fatal(err)
		}
		data, err := m.Data(reflect.ValueOf(c.v))
		if err != nil {
			t.Fatal(err)
		}
		pk, key, err := m.PK(reflect.ValueOf(c.v))
		if err != nil {
			t.Fatal(err)
		}
		meta := c.meta
		meta.ID, meta.Timestamp, meta.PK, meta.VerboseName = enc.ID, events.Timestamp(now), pk, c.opts.VerboseName
		want, err := (&events.Event{Name: m.Name, Meta: meta, Data: data}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if string(enc.Data) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, enc.Data, want)
		}
		if key != c.key || enc.RecordChannel != m.Name+":"+c.key {
			t.Errorf("case %d: key %q, record channel %q, want key %q", i, key, enc.RecordChannel, c.key)
		}
		if !json.Valid(enc.Data) {
			t.Errorf("case %d: invalid JSON %s", i, enc.Data)
		}
	}
}

// Versioned has a version of each kind Options.Version accepts.

type Versioned struct {
	ID        int64         `json:"id"`
	Rev       uint32        `json:"rev"`
	UpdatedAt time.Time     `json:"updated_at"`
	Seen      *time.Time    `json:"seen"`
	Lock      sql.NullInt64 `json:"lock"`
	Title     string        `json:"title"`
}

func TestVersion(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("x", 3600))
	row := Versioned{ID: 1, Rev: 7, UpdatedAt: at, Lock: sql.NullInt64{Int64: 9, Valid: true}, Title: "t"}
	cases := []struct {
		version string
		row     Versioned
		want    any // meta.version as decoded JSON; nil: absent
	}{
		{"Rev", row, float64(7)},
		{"rev", row, float64(7)},
		{"UpdatedAt", row, "2026-03-04T04:06:07.891234567Z"},
		{"updated_at", Versioned{UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, "2026-01-02T03:04:05.000000000Z"},
		{"Seen", row, nil},
		{"Seen", Versioned{Seen: &at}, "2026-03-04T04:06:07.891234567Z"},
		{"Lock", row, float64(9)},
		{"Lock", Versioned{}, nil},
		{"", row, nil},
	}
	for _, c := range cases {
		m, err := model.NewModel(Versioned{}, events.Options{Version: c.version})
		if err != nil {
			t.Fatalf("%s: %v", c.version, err)
		}
		enc, err := m.Encode(reflect.ValueOf(&c.row), events.Meta{EventType: events.TypeUpdate}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Meta map[string]any `json:"meta"`
		}
		if err := json.Unmarshal(enc.Data, &ev); err != nil {
			t.Fatalf("%s: %v in %s", c.version, err, enc.Data)
		}
		got, ok := ev.Meta["version"]
		if c.want == nil && ok || c.want != nil && got != c.want {
			t.Errorf("Version %q of %+v: meta.version %v (present %v), want %v", c.version, c.row, got, ok, c.want)
		}
	}

	// Later times give versions that sort later as text, whatever their
	// zone and fractional digits.
	m, _ := model.NewModel(Versioned{}, events.Options{Version: "UpdatedAt"})
	var last string
	for i, ts := range []time.Time{
		time.Date(2026, 1, 1, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 1, 2, 1, 0, 0, 0, time.FixedZone("+1", 3600)).Add(time.Nanosecond),
		time.Date(2026, 1, 2, 0, 0, 0, 10, time.UTC),
		time.Date(2026, 1, 2, 0, 0, 0, 100, time.UTC),
	} {
		enc, err := m.Encode(reflect.ValueOf(&Versioned{UpdatedAt: ts}), events.Meta{EventType: events.TypeUpdate}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Meta struct{ Version string } `json:"meta"`
		}
		_ = json.Unmarshal(enc.Data, &ev)
		if ev.Meta.Version <= last {
			t.Errorf("time %d: version %q does not sort after %q", i, ev.Meta.Version, last)
		}
		last = ev.Meta.Version
	}

	// Event.Encode writes meta.version as encoding/json does.
	for _, e := range []events.Event{
		{Name: "n", Meta: events.Meta{EventType: "update", PK: 1, Version: 3, Changed: []string{"a"}}, Data: json.RawMessage(`{}`)},
		{Name: "n", Meta: events.Meta{EventType: "delete", Version: "2026-01-02T03:04:05.000000000Z"}, Data: json.RawMessage(`null`)},
	} {
		got, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(&e); string(got) != string(want) {
			t.Errorf("got %s\nwant %s", got, want)
		}
	}
}

func TestVersionRegistration(t *testing.T) {
	cases := []struct {
		version string
		err     error
		names   string
	}{
		{"Nope", events.ErrUnknownField, `"Nope"`},
		{"Title", events.ErrVersionType, "Versioned.Title"},
		{"title", events.ErrVersionType, "Versioned.Title"},
	}
	for _, c := range cases {
		_, err := model.NewModel(Versioned{}, events.Options{Version: c.version})
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.names) {
			t.Errorf("Version %q: error %v, want %v naming %s", c.version, err, c.err, c.names)
		}
	}
}
