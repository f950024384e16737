package events_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/telegraphy-go/telegraphy/events"
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
			m, err := events.NewModel(&Invoice{}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "events_test.Invoice" {
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
	var r events.Registry
	m1, _ := events.NewModel(Invoice{}, events.Options{Name: "billing.Invoice"})
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
	m2, _ := events.NewModel(Other{}, events.Options{Name: "billing.Invoice"})
	if err := r.Add(m2); !errors.Is(err, events.ErrNameTaken) {
		t.Errorf("Add under a taken name = %v", err)
	}
}

func TestEncodeShape(t *testing.T) {
	e := events.Event{Name: "shop.Order", Meta: events.Meta{EventType: events.TypeBulkUpdate, Timestamp: "t", ID: "i", Count: 3}}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "shop.Order", "data": nil,
		"meta": map[string]any{"event_type": "bulk_update", "timestamp": "t", "id": "i", "count": float64(3)}}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("encoded %s", b)
	}
}

// TestEncodeMatchesJSON: Encode writes what encoding/json would.
func TestEncodeMatchesJSON(t *testing.T) {
	cases := []events.Event{
		{Name: "shop.Order", Meta: events.Meta{EventType: "update", VerboseName: "Ordér <1>", Timestamp: "2026", ID: "x", PK: json.RawMessage(`{"a":1,"b":"c"}`), Changed: []string{"status", "n\"ote"}}, Data: json.RawMessage(`{"id":1}`)},
		{Name: "n", Meta: events.Meta{EventType: "delete", PK: 42, Soft: true}, Data: json.RawMessage(`"s"`)},
		{Name: "n", Meta: events.Meta{EventType: "bulk_delete", Count: 1001}},
		{Name: "tab\t", Meta: events.Meta{EventType: "custom", PK: "k"}, Data: json.RawMessage(`[1,2]`)},
	}
	for i, e := range cases {
		got, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&e)
		if string(got) != string(want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
	bad := events.Event{Name: "n", Data: json.RawMessage(`{`)}
	if _, err := bad.Encode(); err == nil {
		t.Error("invalid data encoded")
	}
}

func TestColumnForChanged(t *testing.T) {
	m, err := events.NewModel(Invoice{}, events.Options{Exclude: []string{"Plain"}})
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
