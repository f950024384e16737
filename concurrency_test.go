package telegraphy_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// Tag registers itself on first write, possibly from many goroutines at
// once.
type Tag struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:64"`
}

func (Tag) TelegraphyEvents() events.Options { return events.Options{Name: "tags.Tag"} }

// TestConcurrentWriters: transactions on many goroutines each publish
// exactly their own committed events, once, with their own statement
// order; rolled back ones publish nothing.
func TestConcurrentWriters(t *testing.T) {
	e := setup(t, allDialects[1], nil, telegraphy.Config{})
	if err := e.db.AutoMigrate(&Tag{}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			err := e.db.Transaction(func(tx *gorm.DB) error {
				for i := 0; i < each; i++ {
					if err := tx.Create(&Tag{Name: fmt.Sprintf("w%d-%d", w, i)}).Error; err != nil {
						return err
					}
				}
				if w%3 == 2 {
					return errAbort
				}
				return nil
			})
			if err != nil && err != errAbort {
				errs <- err
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	evs := e.rec.Events()
	var names []string
	last := map[string]int{}
	for _, ev := range evs {
		if ev.Name != "tags.Tag" || ev.Meta.EventType != "create" {
			t.Fatalf("unexpected event %s", describe(evs))
		}
		var d struct{ Name string }
		if err := jsonUnmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		var w, i int
		fmt.Sscanf(d.Name, "w%d-%d", &w, &i)
		if w%3 == 2 {
			t.Fatalf("rolled back worker %d published %s", w, d.Name)
		}
		key := fmt.Sprint(w)
		if prev, ok := last[key]; ok && i != prev+1 {
			t.Fatalf("worker %d events out of order: %d after %d", w, i, prev)
		}
		last[key] = i
		names = append(names, d.Name)
	}
	var committed []Tag
	if err := e.db.Order("id").Find(&committed).Error; err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range committed {
		want = append(want, c.Name)
	}
	sort.Strings(names)
	sort.Strings(want)
	if fmt.Sprint(names) != fmt.Sprint(want) || len(want) != (workers-workers/3)*each {
		t.Fatalf("events %v\n rows %v", names, want)
	}
}

// TestBulkLimitOption: the per-model BulkLimit overrides Config.BulkLimit;
// a negative one always sends the bulk event.
func TestBulkLimitOption(t *testing.T) {
	db, rec := openPlain(t)
	p := telegraphy.New(telegraphy.Config{Broker: rec, BulkLimit: 1})
	if err := p.Register(Order{}, events.Options{BulkLimit: -1}); err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	db.Create(&Order{Status: "a"})
	rec.Reset()
	if err := db.Model(&Order{ID: 1}).Update("status", "b").Error; err != nil {
		t.Fatal(err)
	}
	expect(t, rec, ev{Type: "bulk_update", Count: 1})
	if err := db.Delete(&Order{}, 1).Error; err != nil {
		t.Fatal(err)
	}
	expect(t, rec, ev{Type: "bulk_delete", Count: 1})
}
