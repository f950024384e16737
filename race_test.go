package telegraphy_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Job is written by concurrent inserters while another goroutine updates
// or deletes by condition.
type Job struct {
	ID     uint   `json:"id"`
	Tag    string `json:"tag" gorm:"size:32"` // unique: SQLite may reuse a deleted row's id
	Status string `json:"status" gorm:"size:16"`
	Round  int    `json:"round"`
}

// TestWriteByConditionRace: four goroutines insert queued jobs while a
// fifth updates (or deletes) every queued job by condition, in a loop,
// also with the caller's RETURNING into a struct or a slice. Each row the database changed has exactly one event, carrying the row
// as written, and no row it did not change has one. PostgreSQL runs at
// its default READ COMMITTED, MariaDB at its default REPEATABLE READ.
func TestWriteByConditionRace(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for _, d := range allDialects {
		for _, op := range []string{"update", "delete", "update-returning", "delete-returning", "delete-returning-slice"} {
			if op == "update-returning" && d.name == "mysql" {
				continue // MariaDB has no UPDATE ... RETURNING
			}
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
	write := func() error {
		q := e.db.Where("status = ?", "queued")
		switch op {
		case "delete":
			return q.Delete(&Job{}).Error
		case "update-returning":
			// The caller's own RETURNING, into a struct: GORM keeps the
			// first row and reports one whatever the statement changed.
			var j Job
			return q.Model(&j).Clauses(clause.Returning{}).Update("status", "done").Error
		case "delete-returning":
			var j Job
			return q.Clauses(clause.Returning{}).Delete(&j).Error
		case "delete-returning-slice":
			var js []Job
			return q.Clauses(clause.Returning{}).Delete(&js).Error
		}
		return q.Model(&Job{}).Update("status", "done").Error
	}
	inserted := runRace(t, e, round, fmt.Sprintf("r%d", round), write)

	// The database's word: every job of the round was changed, once.
	// Jobs are told apart by tag: SQLite may give a new row the id of
	// one deleted earlier in the round.
	var left []Job
	if err := e.db.Where("round = ?", round).Order("id").Find(&left).Error; err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(op, "delete") && len(left) != 0 {
		t.Fatalf("round %d: %d jobs left", round, len(left))
	}
	for _, j := range left {
		if j.Status != "done" {
			t.Fatalf("round %d: job %s is %s", round, j.Tag, j.Status)
		}
	}
	if len(inserted) != inserters*each {
		t.Fatalf("round %d: %d jobs inserted", round, len(inserted))
	}

	created, changed := map[string]int{}, map[string]int{}
	for _, ev := range e.rec.Events() {
		if ev.Name != "jobs" {
			t.Fatalf("round %d: unexpected event %s", round, describe([]events.Event{ev}))
		}
		var j Job
		if err := jsonUnmarshal(ev.Data, &j); err != nil {
			t.Fatal(err)
		}
		evType := strings.SplitN(op, "-", 2)[0]
		switch ev.Meta.EventType {
		case "create":
			created[j.Tag]++
			if j.Status != "queued" || j.Round != round {
				t.Fatalf("round %d: create event %s", round, describe([]events.Event{ev}))
			}
			continue
		case evType:
		default:
			t.Fatalf("round %d: event %s", round, describe([]events.Event{ev}))
		}
		changed[j.Tag]++
		want := Job{ID: j.ID, Tag: j.Tag, Status: "done", Round: round}
		if evType == "delete" {
			want.Status = "queued" // the row as deleted
		}
		if j != want || !inserted[j.Tag] {
			t.Fatalf("round %d: %s event for %+v, want %+v (a row of this round)", round, evType, j, want)
		}
	}
	var missing, extra []string
	for id := range inserted {
		if changed[id] != 1 {
			missing = append(missing, fmt.Sprintf("%s:%d", id, changed[id]))
		}
		if created[id] != 1 {
			extra = append(extra, fmt.Sprintf("create %s:%d", id, created[id]))
		}
	}
	for id := range changed {
		if !inserted[id] {
			extra = append(extra, id)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("round %d: rows %s without exactly one %s event (id:events): %v; events for rows not changed: %v",
			round, op, op, missing, extra)
	}
}

// runRace inserts 4×15 queued jobs of round, tagged prefix-wW-I, from
// four goroutines while write runs in a loop, and once more after the
// last insert. It returns the tags inserted.
func runRace(t *testing.T, e env, round int, prefix string, write func() error) map[string]bool {
	t.Helper()
	const inserters, each = 4, 15
	var (
		mu       sync.Mutex
		inserted = map[string]bool{}
		wg       sync.WaitGroup
		errs     = make(chan error, inserters+1)
		done     = make(chan struct{})
	)
	for w := 0; w < inserters; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				j := Job{Tag: fmt.Sprintf("%s-w%d-%d", prefix, w, i), Status: "queued", Round: round}
				if err := e.db.Create(&j).Error; err != nil {
					errs <- err
					return
				}
				mu.Lock()
				inserted[j.Tag] = true
				mu.Unlock()
			}
		}(w)
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
	return inserted
}

// TestUpsertRace: goroutines upsert the same rows at once, each
// incrementing qty through its conflict clause. Every statement announces
// its own increment for each existing row (the values announced for a row
// are exactly start+1 ... start+n, once each), and each new key is
// announced once as a create and afterwards only as updates.
func TestUpsertRace(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	const workers, each = 4, 5
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			setupThings(t, e)
			inc := clause.OnConflict{Columns: []clause.Column{{Name: "id"}},
				DoUpdates: clause.Assignments(map[string]any{"qty": gorm.Expr("things.qty + 1")})}
			for round := 0; round < rounds; round++ {
				e.rec.Reset()
				before := map[uint]int{}
				for _, th := range things(t, e.db) {
					before[th.ID] = th.Qty
				}
				newID := uint(100 + round)
				concurrently(t, workers, each, func(int, int) error {
					rows := []Thing{{ID: 1, Code: "a", Qty: 1}, {ID: 2, Code: "b", Qty: 1}, {ID: newID, Code: fmt.Sprint("n", newID), Qty: 1}}
					if err := e.db.Clauses(inc).Create(&rows).Error; err != nil {
						return fmt.Errorf("round %d: %w", round, err)
					}
					return nil
				})
				seen := map[uint]map[int]int{}
				creates := map[uint]int{}
				for _, ev := range e.rec.Events() {
					var th Thing
					if err := jsonUnmarshal(ev.Data, &th); err != nil {
						t.Fatal(err)
					}
					if ev.Meta.EventType == "create" {
						creates[th.ID]++
						if th.ID != newID || th.Qty != 1 {
							t.Fatalf("round %d: create %+v", round, th)
						}
					} else if ev.Meta.EventType != "update" {
						t.Fatalf("round %d: event %s", round, describe([]events.Event{ev}))
					}
					if seen[th.ID] == nil {
						seen[th.ID] = map[int]int{}
					}
					seen[th.ID][th.Qty]++
				}
				n := workers * each
				for id, start := range map[uint]int{1: before[1], 2: before[2], newID: 0} {
					for q := start + 1; q <= start+n; q++ {
						if seen[id][q] != 1 {
							t.Fatalf("round %d: row %d: qty %d announced %d times (announced: %v)", round, id, q, seen[id][q], seen[id])
						}
					}
					if len(seen[id]) != n {
						t.Fatalf("round %d: row %d: announced %v, want %d..%d once each", round, id, seen[id], start+1, start+n)
					}
				}
				if creates[newID] != 1 {
					t.Fatalf("round %d: new row announced as created %d times", round, creates[newID])
				}
			}
		})
	}
}
