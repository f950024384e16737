package events_test

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/telegraphy-go/telegraphy/events"
)

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

func TestIDAndTimestamp(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6007000, time.FixedZone("y", -7200))
	if got, want := events.Timestamp(at), at.UTC().Format(events.TimestampFormat); got != want {
		t.Errorf("Timestamp = %s, want %s", got, want)
	}
	prev := ""
	for i := 0; i < 10000; i++ {
		id := events.NewID()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
			t.Fatalf("id %q: %v version %v variant %v", id, err, u.Version(), u.Variant())
		}
		if id <= prev {
			t.Fatalf("id %s after %s", id, prev)
		}
		if ms := time.UnixMilli(int64(binary.BigEndian.Uint64(u[:8]) >> 16)); time.Since(ms) > time.Minute || time.Until(ms) > time.Minute {
			t.Fatalf("id %s time %v", id, ms)
		}
		prev = id
	}
}
