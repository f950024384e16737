package model_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/model"
)

type nameSpan struct {
	From time.Time `json:"from"`
	Note string    `json:"note"`
}

type nameTrip struct {
	ID   uint      `json:"id"`
	Out  nameSpan  `json:"out" gorm:"embedded;embeddedPrefix:out_"`
	Ret  nameSpan  `json:"ret" gorm:"embedded;embeddedPrefix:ret_"`
	Back time.Time `json:"ret_from" gorm:"column:back"`
}

// TestJSONNameCollisions: only columns sent in data that share a JSON name
// are renamed (to their column name, never to a name another field
// declares); a column keeps the name it declares.
func TestJSONNameCollisions(t *testing.T) {
	m, err := model.NewModel(&nameTrip{}, events.Options{Name: "trips"})
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := m.Column("back"); name != "ret_from" {
		t.Errorf("column back (json:\"ret_from\") is sent as %q", name)
	}
	if name, _ := m.Column("ret_from"); name == "ret_from" || name == "from" {
		t.Errorf("column ret_from is sent as %q, a name another column has", name)
	}
	m2, err := model.NewModel(&nameTrip{}, events.Options{Name: "trips", Fields: []string{"id", "Note"}})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := m2.Encode(reflect.ValueOf(nameTrip{ID: 1, Out: nameSpan{Note: "out"}, Ret: nameSpan{Note: "back"}}), events.Meta{EventType: "create"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var ev events.Event
	if err := json.Unmarshal(enc.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if string(ev.Data) != `{"id":1,"note":"out"}` && string(ev.Data) != `{"id":1,"note":"back"}` {
		t.Errorf("data %s: want one column named note", ev.Data)
	}
}
