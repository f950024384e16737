package telegraphy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// Tally is one row many transactions increment.
type Tally struct {
	ID uint `json:"id"`
	N  int  `json:"n"`
}

// openTallies opens d with Tally rows 1..rows at 0 and, with a non-nil
// plugin, installs it.
func openTallies(tb testing.TB, d dialect, rows int, p *telegraphy.Plugin) *gorm.DB {
	tb.Helper()
	db := openDB(tb, d.open(tb), nil, &Tally{})
	for i := 1; i <= rows; i++ {
		if err := db.Create(&Tally{ID: uint(i)}).Error; err != nil {
			tb.Fatal(err)
		}
	}
	if p != nil {
		if err := p.Register(Tally{}, events.Options{}); err != nil {
			tb.Fatal(err)
		}
		if err := db.Use(p); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// TestCommitOrderPerRecord: 8 goroutines each run 100 transactions
// incrementing one row. The row lock orders their commits; a page that
// applies the record channel's events as they arrive must see n only
// grow, and end at the database's value. Five runs per database and mode
// (one with -short), since an inversion needs an unlucky schedule.
func TestCommitOrderPerRecord(t *testing.T) {
	const workers, each = 8, 100
	runs := 5
	if testing.Short() {
		runs = 1
	}
	for _, d := range allDialects[1:] { // PostgreSQL (READ COMMITTED) and MariaDB
		for _, outbox := range []bool{false, true} {
			mode := "default"
			if outbox {
				mode = "outbox"
			}
			t.Run(d.name+"/"+mode, func(t *testing.T) {
				ctx := context.Background()
				mem := broker.NewMemory(broker.MemoryConfig{SubscriberBuffer: 2 * workers * each})
				p := telegraphy.New(telegraphy.Config{Broker: mem, Outbox: telegraphy.OutboxConfig{Enabled: outbox}})
				db := openTallies(t, d, 1, p)
				t.Cleanup(func() { p.Close(ctx) })
				sub, err := mem.Subscribe(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				if err := sub.Add(ctx, "telegraphy_test.Tally:1"); err != nil {
					t.Fatal(err)
				}
				page := 0 // what a page applying the events shows
				// The event that set page: on an inversion its meta (ids and
				// timestamps are taken in write order, before the commit)
				// tells a wrong value from a late publication.
				var pageMeta events.Meta
				for run := 0; run < runs; run++ {
					concurrently(t, workers, each, func(int, int) error {
						return db.Model(&Tally{ID: 1}).Update("n", gorm.Expr("n + 1")).Error
					})
					inversions := 0
					deadline := time.After(2 * time.Minute)
					for i := 0; i < workers*each; i++ {
						select {
						case pub := <-sub.C():
							var e struct {
								Meta events.Meta
								Data Tally
							}
							if err := json.Unmarshal(pub.Data, &e); err != nil {
								t.Fatal(err)
							}
							if e.Meta.EventType != "update" || e.Data.ID != 1 {
								t.Fatalf("unexpected event %s", pub.Data)
							}
							if e.Data.N <= page {
								inversions++
								if inversions <= 3 {
									t.Errorf("run %d: n = %d (event %s at %s) arrived after n = %d (event %s at %s)", run,
										e.Data.N, e.Meta.ID, e.Meta.Timestamp, page, pageMeta.ID, pageMeta.Timestamp)
								}
							}
							page, pageMeta = e.Data.N, e.Meta
						case <-deadline:
							t.Fatalf("run %d: %d of %d events after 2 minutes", run, i, workers*each)
						}
					}
					var c Tally
					if err := db.First(&c, 1).Error; err != nil {
						t.Fatal(err)
					}
					if inversions > 0 || page != c.N || c.N != (run+1)*workers*each {
						t.Fatalf("run %d: %d inversions; the page shows n = %d, the database holds %d", run, inversions, page, c.N)
					}
				}
				if n := sub.Dropped(); n != 0 {
					t.Fatalf("subscriber dropped %d events", n)
				}
			})
		}
	}
}

// TestUnrelatedCommitsNotSerialised: a transaction waiting for its
// events to be handed to the broker holds only its records' stripes, so a
// transaction on another record commits and publishes meanwhile.
func TestUnrelatedCommitsNotSerialised(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	bus := &gateBroker{Recorder: broker.NewRecorder(nil), gate: func(msgs []broker.Message) {
		if msgs[0].Channels[1] == "telegraphy_test.Tally:1" {
			blocked <- struct{}{}
			<-release
		}
	}}
	p := telegraphy.New(telegraphy.Config{Broker: bus})
	db := openTallies(t, allDialects[1], 2, p)
	done := make(chan error, 1)
	go func() { done <- db.Model(&Tally{ID: 1}).Update("n", 1).Error }()
	<-blocked
	// Tally 1's events are being published, its stripe held.
	other := make(chan error, 1)
	go func() { other <- db.Model(&Tally{ID: 2}).Update("n", 2).Error }()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		close(release)
		t.Fatal("tally 2's update waited a minute for tally 1's publication")
	}
	got := bus.Events()
	if len(got) != 1 || fmt.Sprint(got[0].Meta.PK) != "2" {
		t.Fatalf("published while tally 1's publication waits: %s", describe(got))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := bus.Len(); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
}

// gateBroker calls gate before recording each Publish.
type gateBroker struct {
	*broker.Recorder
	gate func([]broker.Message)
}

func (g *gateBroker) Publish(ctx context.Context, msgs ...broker.Message) error {
	g.gate(msgs)
	return g.Recorder.Publish(ctx, msgs...)
}

// BenchmarkConcurrentWriters measures throughput with 16 goroutines
// writing at once on PostgreSQL, without the plugin (base) and with it,
// alternating rounds of 160 updates, each an implicit transaction.
// "distinct" gives each goroutine its own row (unrelated transactions);
// "hot" shares 4 rows among them, so commits queue on row locks and, with
// the plugin, on the rows' stripes.
func BenchmarkConcurrentWriters(b *testing.B) {
	const writers, perWriter = 16, 10
	for _, hot := range []bool{false, true} {
		name := "distinct"
		if hot {
			name = "hot"
		}
		b.Run(name, func(b *testing.B) {
			base := openTallies(b, allDialects[1], writers, nil)
			with := openTallies(b, allDialects[1], writers, telegraphy.New(telegraphy.Config{Broker: drainedMemory(b)}))
			round := func(db *gorm.DB) time.Duration {
				t0 := time.Now()
				var wg sync.WaitGroup
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := uint(w + 1)
						if hot {
							id = uint(w%4 + 1)
						}
						for i := 0; i < perWriter; i++ {
							if err := db.Model(&Tally{ID: id}).Update("n", gorm.Expr("n + 1")).Error; err != nil {
								panic(fmt.Sprint("update: ", err))
							}
						}
					}()
				}
				wg.Wait()
				return time.Since(t0)
			}
			var tBase, tWith time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%2 == 0 {
					tBase += round(base)
					tWith += round(with)
				} else {
					tWith += round(with)
					tBase += round(base)
				}
			}
			b.StopTimer()
			ops := float64(b.N * writers * perWriter)
			b.ReportMetric(ops/tBase.Seconds(), "base-updates/s")
			b.ReportMetric(ops/tWith.Seconds(), "plugin-updates/s")
			b.ReportMetric(float64(tBase)/float64(tWith), "plugin/base-throughput")
		})
	}
}

// TestOutboxLateLowerIDKeepsRecordOrder: a transaction that took a lower
// outbox ID commits after the relay published a higher one; then another
// transaction updates the same record. Its event must reach the record
// channel after the late one, as the database ordered them. The late
// transaction's outbox row is written by hand, held uncommitted while the
// relay publishes, the way a plugin transaction between its outbox insert
// and its COMMIT holds it.
func TestOutboxLateLowerIDKeepsRecordOrder(t *testing.T) {
	for _, d := range allDialects[1:] { // PostgreSQL (READ COMMITTED) and MariaDB
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			mem := broker.NewMemory()
			p := telegraphy.New(telegraphy.Config{Broker: mem, Outbox: telegraphy.OutboxConfig{
				Enabled: true, PollInterval: time.Minute}})
			db := openTallies(t, d, 2, p)
			t.Cleanup(func() { p.Close(ctx) })
			sub, err := mem.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			const rec, other = "telegraphy_test.Tally:1", "telegraphy_test.Tally:2"
			if err := sub.Add(ctx, rec, other); err != nil {
				t.Fatal(err)
			}
			next := func() (string, int) {
				t.Helper()
				select {
				case pub := <-sub.C():
					var e struct{ Data Tally }
					if err := json.Unmarshal(pub.Data, &e); err != nil {
						t.Fatalf("event %s: %v", pub.Data, err)
					}
					return pub.Channel, e.Data.N
				case <-time.After(30 * time.Second):
					t.Fatal("no event for 30 seconds")
					return "", 0
				}
			}

			// The late transaction takes its outbox ID and holds it.
			tx := db.Session(&gorm.Session{NewDB: true}).Begin()
			if tx.Error != nil {
				t.Fatal(tx.Error)
			}
			msg := lateEvent(t, 1, 1)
			ch, _ := json.Marshal([]string{rec})
			if err := tx.Table(telegraphy.DefaultOutboxTable).Create(map[string]any{
				"event_id": msg.Meta.ID, "channels": string(ch), "data": mustEncode(t, msg),
				"created_ns": time.Now().UnixNano(), "origin": "",
			}).Error; err != nil {
				t.Fatal(err)
			}
			// A higher ID on another record commits and is published.
			if err := db.Model(&Tally{ID: 2}).Update("n", 7).Error; err != nil {
				t.Fatal(err)
			}
			if c, n := next(); c != other || n != 7 {
				t.Fatalf("got %s n=%d, want %s n=7", c, n, other)
			}
			// The late transaction commits, then the record is updated again.
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Model(&Tally{ID: 1}).Update("n", 2).Error; err != nil {
				t.Fatal(err)
			}
			for _, want := range []int{1, 2} {
				if c, n := next(); c != rec || n != want {
					t.Fatalf("record channel: got %s n=%d, want %s n=%d (the late commit's event must come first)", c, n, rec, want)
				}
			}
		})
	}
}

// lateEvent is the update event of Tally id with n, as the plugin encodes it.
func lateEvent(t testing.TB, id uint, n int) events.Event {
	t.Helper()
	data, err := json.Marshal(Tally{ID: id, N: n})
	if err != nil {
		t.Fatal(err)
	}
	return events.Event{Name: "telegraphy_test.Tally", Meta: events.Meta{ID: events.NewID(), EventType: "update",
		PK: id, Timestamp: events.Timestamp(time.Now())}, Data: data}
}

func mustEncode(t testing.TB, e events.Event) []byte {
	t.Helper()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
