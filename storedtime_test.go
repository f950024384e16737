package telegraphy_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// Stamp has times of every kind the plugin knows, with and without a
// precision, behind an embedded pointer too.
type Stamp struct {
	ID        uint         `json:"id"`
	CreatedAt time.Time    `json:"created_at"`
	At        time.Time    `json:"at"`
	Ms        time.Time    `json:"ms" gorm:"precision:3"`
	Sec       *time.Time   `json:"sec" gorm:"precision:0"`
	Null      sql.NullTime `json:"null"`
	*StampBase
}

type StampBase struct {
	Naive time.Time `json:"naive" gorm:"type:timestamp"`
}

// TestCreateEventTimesAsStored: a create from structs announces each time
// as the database holds it (PostgreSQL keeps microseconds, rounds to a
// column's precision, and a timestamp without time zone keeps the wall
// clock), and leaves the caller's structs as GORM left them.
func TestCreateEventTimesAsStored(t *testing.T) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2026, 12, 2, 23, 4, 5, 123456789, zone)
	halfBeforeY2K := time.Date(1999, 12, 31, 23, 59, 59, 999_500_000, time.UTC)
	moon := time.Date(1969, 7, 20, 20, 17, 40, 987_654_321, time.UTC)
	stamps := func() []*Stamp {
		return []*Stamp{
			{At: at, Ms: halfBeforeY2K, Sec: &moon, Null: sql.NullTime{Time: at, Valid: true}, StampBase: &StampBase{Naive: at}},
			{At: moon, Ms: at, Null: sql.NullTime{Time: moon}, StampBase: &StampBase{Naive: at.Add(499 * time.Nanosecond)}},
		}
	}
	for _, d := range allDialects {
		if d.name == "mysql" {
			continue // MySQL's DATETIME and TIMESTAMP ranges and rounding: see TestCreateEventTimesAsStoredMySQL
		}
		for _, many := range []bool{false, true} {
			name := d.name + "/one"
			if many {
				name = d.name + "/slice"
			}
			t.Run(name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				addModel(t, e, &Stamp{}, events.Options{Name: "stamps"})
				given := stamps()
				if many {
					if err := e.db.Create(given).Error; err != nil {
						t.Fatal(err)
					}
				} else {
					for _, s := range given {
						if err := e.db.Create(s).Error; err != nil {
							t.Fatal(err)
						}
					}
				}
				// The caller's structs are as GORM left them.
				want := stamps()
				for i, s := range given {
					if !s.At.Equal(want[i].At) || s.At.Location() != want[i].At.Location() || !s.Ms.Equal(want[i].Ms) ||
						!s.Naive.Equal(want[i].Naive) || s.Null != want[i].Null {
						t.Fatalf("struct %d changed: %+v", i, s)
					}
				}
				if given[0].Sec != nil && !given[0].Sec.Equal(moon) {
					t.Fatalf("struct 0's Sec changed: %v", given[0].Sec)
				}
				if n := e.rec.Len(); n != 2 {
					t.Fatalf("%d events for 2 rows:%s", n, describe(e.rec.Events()))
				}
				stReport(t, stCompare[Stamp](t, e))
			})
		}
	}
}

// MyStamp has times in MySQL columns of 3 (GORM's default), 6 and 0
// fractional digits.
type MyStamp struct {
	ID        uint       `json:"id"`
	CreatedAt time.Time  `json:"created_at"`
	At        time.Time  `json:"at"`
	Micro     *time.Time `json:"micro" gorm:"precision:6"`
	Whole     time.Time  `json:"whole" gorm:"type:datetime"`
}

// TestCreateEventTimesAsStoredMySQL: on MySQL/MariaDB, which round or
// truncate a time with more digits than its column keeps, such creates
// are announced as stored (read back); the others as given.
func TestCreateEventTimesAsStoredMySQL(t *testing.T) {
	zone := time.FixedZone("UTC-3", -3*3600)
	fine := time.Date(2026, 12, 2, 23, 4, 5, 123_456_789, zone)
	half := time.Date(1999, 12, 31, 23, 59, 59, 999_500_000, time.UTC)
	ms := time.Date(2026, 12, 2, 23, 4, 5, 123_000_000, zone)
	cases := map[string][]*MyStamp{
		"finer":   {{At: fine, Micro: &fine, Whole: half}, {At: half, Micro: &half, Whole: fine}},
		"as kept": {{At: ms, Micro: &fine, Whole: ms.Truncate(time.Second)}, {At: ms}},
	}
	for _, d := range allDialects {
		if d.name != "mysql" {
			continue
		}
		for name, given := range cases {
			t.Run(name, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				addModel(t, e, &MyStamp{}, events.Options{Name: "mystamps"})
				if name == "as kept" {
					// Micro keeps microseconds: fine's nanoseconds are finer.
					v := fine.Truncate(time.Microsecond)
					given[0].Micro = &v
				}
				if err := e.db.Create(given).Error; err != nil {
					t.Fatal(err)
				}
				if n := e.rec.Len(); n != 2 {
					t.Fatalf("%d events for 2 rows:%s", n, describe(e.rec.Events()))
				}
				stReport(t, stCompare[MyStamp](t, e))
			})
		}
	}
}
