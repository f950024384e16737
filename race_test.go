package telegraphy_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// Job is written by concurrent inserters while another goroutine updates
// or deletes by condition.
type Job struct {
	ID     uint   `json:"id"`
	Status string `json:"status" gorm:"size:16"`
	Round  int    `json:"round"`
}

// TestWriteByConditionRace: four goroutines insert queued jobs while a
// fifth updates (or deletes) every queued job by condition, in a loop.
// Each row the database changed has exactly one event, carrying the row
// as written, and no row it did not change has one. PostgreSQL runs at
// its default READ COMMITTED, MariaDB at its default REPEATABLE READ.
func TestWriteByConditionRace(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for _, d := range allDialects {
		for _, op := range []string{"update", "delete"} {
			t.Run(d.name+"/"+op, func(t *testing.T) {
				e := setup(t, d, nil, telegraphy.Config{})
				if err := e.db.AutoMigrate(&Job{}); err != nil {
					t.Fatal(err)
				}
				if err := e.p.Register(Job{}, events.Options{Name: "jobs"}); err != nil {
					t.Fatal(err)
				}
				for round := 1; round <= rounds; round++ {
					raceRound(t, e, op, round)
				}
			})
		}
	}
}

func raceRound(t *testing.T, e env, op string, round int) {
	t.Helper()
	const inserters, each = 4, 15
	e.rec.Reset()
	var (
		mu       sync.Mutex
		inserted = map[uint]bool{}
		wg       sync.WaitGroup
		errs     = make(chan error, inserters+1)
		done     = make(chan struct{})
	)
	for w := 0; w < inserters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				j := Job{Status: "queued", Round: round}
				if err := e.db.Create(&j).Error; err != nil {
					errs <- err
					return
				}
				mu.Lock()
				inserted[j.ID] = true
				mu.Unlock()
			}
		}()
	}
	write := func() error {
		q := e.db.Where("status = ?", "queued")
		if op == "delete" {
			return q.Delete(&Job{}).Error
		}
		return q.Model(&Job{}).Update("status", "done").Error
	}
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		for {
			select {
			case <-done:
				errs <- write() // the rows inserted last
				return
			default:
			}
			if err := write(); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	writer.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}

	// The database's word: every job of the round was changed, once.
	var left []Job
	if err := e.db.Where("round = ?", round).Order("id").Find(&left).Error; err != nil {
		t.Fatal(err)
	}
	if op == "delete" && len(left) != 0 {
		t.Fatalf("round %d: %d jobs left", round, len(left))
	}
	for _, j := range left {
		if j.Status != "done" {
			t.Fatalf("round %d: job %d is %s", round, j.ID, j.Status)
		}
	}
	if len(inserted) != inserters*each {
		t.Fatalf("round %d: %d jobs inserted", round, len(inserted))
	}

	created, changed := map[uint]int{}, map[uint]int{}
	for _, ev := range e.rec.Events() {
		if ev.Name != "jobs" {
			t.Fatalf("round %d: unexpected event %s", round, describe([]events.Event{ev}))
		}
		var j Job
		if err := jsonUnmarshal(ev.Data, &j); err != nil {
			t.Fatal(err)
		}
		switch ev.Meta.EventType {
		case "create":
			created[j.ID]++
			if j.Status != "queued" || j.Round != round {
				t.Fatalf("round %d: create event %s", round, describe([]events.Event{ev}))
			}
			continue
		case op:
		default:
			t.Fatalf("round %d: event %s", round, describe([]events.Event{ev}))
		}
		changed[j.ID]++
		want := Job{ID: j.ID, Status: "done", Round: round}
		if op == "delete" {
			want.Status = "queued" // the row as deleted
		}
		if j != want || !inserted[j.ID] {
			t.Fatalf("round %d: %s event for %+v, want %+v (a row of this round)", round, op, j, want)
		}
	}
	var missing, extra []string
	for id := range inserted {
		if changed[id] != 1 {
			missing = append(missing, fmt.Sprintf("%d:%d", id, changed[id]))
		}
		if created[id] != 1 {
			extra = append(extra, fmt.Sprintf("create %d:%d", id, created[id]))
		}
	}
	for id := range changed {
		if !inserted[id] {
			extra = append(extra, fmt.Sprint(id))
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("round %d: rows %s without exactly one %s event (id:events): %v; events for rows not changed: %v",
			round, op, op, missing, extra)
	}
}
