package telegraphy_test

import (
	"encoding/json"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// Counter has an integer version its writers increment.
type Counter struct {
	ID      uint  `json:"id"`
	N       int   `json:"n"`
	Version int64 `json:"version"`
}

// TestVersionConcurrentWriters: writers on many goroutines update one
// row, each incrementing its version. Their events reach the broker in
// an order of their own; each carries, as meta.version, the version its
// own write gave the row, so a page that keeps the event of the highest
// version shows what the database holds.
func TestVersionConcurrentWriters(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			if err := e.db.AutoMigrate(&Counter{}); err != nil {
				t.Fatal(err)
			}
			if err := e.p.Register(Counter{}, events.Options{Name: "test.Counter", Version: "Version"}); err != nil {
				t.Fatal(err)
			}
			c := Counter{}
			if err := e.db.Create(&c).Error; err != nil {
				t.Fatal(err)
			}
			const workers, each = 6, 10
			concurrently(t, workers, each, func(int, int) error {
				return e.db.Model(&Counter{ID: c.ID}).Updates(map[string]any{
					"n": gorm.Expr("n + 1"), "version": gorm.Expr("version + 1"),
				}).Error
			})
			var final Counter
			if err := e.db.First(&final, c.ID).Error; err != nil {
				t.Fatal(err)
			}
			if final.Version != workers*each {
				t.Fatalf("final version %d, want %d", final.Version, workers*each)
			}

			seen := map[int64]bool{}
			var shown Counter // what a page keeping the newest version shows
			held := int64(-1)
			for _, ev := range e.rec.Events() {
				if ev.Name != "test.Counter" {
					continue
				}
				var data Counter
				if err := json.Unmarshal(ev.Data, &data); err != nil {
					t.Fatal(err)
				}
				v, ok := ev.Meta.Version.(float64)
				if !ok || int64(v) != data.Version {
					t.Fatalf("%s event: meta.version %v, data %+v", ev.Meta.EventType, ev.Meta.Version, data)
				}
				if ev.Meta.EventType == events.TypeUpdate {
					if seen[data.Version] {
						t.Fatalf("version %d in two events", data.Version)
					}
					seen[data.Version] = true
					if data.N != int(data.Version) {
						t.Fatalf("event of version %d has n %d: not its own write's row", data.Version, data.N)
					}
				}
				if data.Version >= held {
					held, shown = data.Version, data
				}
			}
			if len(seen) != workers*each {
				t.Fatalf("%d update events, want %d", len(seen), workers*each)
			}
			if shown != final {
				t.Fatalf("a page keeping the newest version shows %+v; the database holds %+v", shown, final)
			}
		})
	}
}
