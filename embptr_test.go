package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// Place is embedded through pointers in Venue.
type Place struct {
	City string `json:"city" gorm:"size:16"`
	Zip  *int   `json:"zip"`
}

// Staff is embedded with a prefix through a named pointer field.
type Staff struct {
	Host string `json:"host" gorm:"size:16"`
}

// Venue embeds structs through pointers that may be nil: GORM writes
// NULL to their columns.
type Venue struct {
	ID uint `json:"id"`
	*Place
	Staff *Staff `gorm:"embedded;embeddedPrefix:staff_"`
	Seats int    `json:"seats"`
}

const venueName = "telegraphy_test.Venue"

// TestNilEmbeddedPointer: the columns of a struct embedded through a nil
// pointer hold NULL after a create from structs, and its event says null
// for them; columns behind a pointer that is set are sent as the struct
// holds them.
func TestNilEmbeddedPointer(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			addModel(t, e, &Venue{}, events.Options{})
			zip := 75
			if err := e.db.Create(&[]Venue{{ID: 1, Seats: 10}, {ID: 2, Place: &Place{City: "Paris", Zip: &zip}, Staff: &Staff{Host: "Ann"}, Seats: 20}}).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec,
				ev{Name: venueName, Type: "create", PK: 1, Data: map[string]any{"id": 1, "city": nil, "zip": nil, "host": nil, "seats": 10}},
				ev{Name: venueName, Type: "create", PK: 2, Data: map[string]any{"id": 2, "city": "Paris", "zip": 75, "host": "Ann", "seats": 20}})
			var nulls int64
			if err := e.db.Model(&Venue{}).Where("id = 1 AND city IS NULL AND zip IS NULL AND staff_host IS NULL").Count(&nulls).Error; err != nil {
				t.Fatal(err)
			}
			if nulls != 1 {
				t.Fatalf("venue 1 holds other values than NULL")
			}

			if err := e.db.Create(&Venue{ID: 3, Staff: &Staff{Host: "Bob"}}).Error; err != nil {
				t.Fatal(err)
			}
			expect(t, e.rec, ev{Name: venueName, Type: "create", PK: 3, Data: map[string]any{"id": 3, "city": nil, "zip": nil, "host": "Bob", "seats": 0}})

		})
	}
}
