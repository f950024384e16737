package telegraphy_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

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
