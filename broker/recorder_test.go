package broker_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type Item struct {
	ID   uint   `json:"id"`
	Name string `json:"name"`
}

// TestRecorder uses the Recorder as a user's test would: commits are
// recorded and forwarded to subscribers, rollbacks record nothing.
func TestRecorder(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "r.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	if err := db.AutoMigrate(&Item{}); err != nil {
		t.Fatal(err)
	}
	mem := broker.NewMemory()
	rec := broker.NewRecorder(mem)
	defer rec.Close(context.Background())
	sub, err := rec.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Add(context.Background(), "shop.Item"); err != nil {
		t.Fatal(err)
	}
	p := telegraphy.New(telegraphy.Config{Broker: rec})
	if err := p.Register(Item{}, events.Options{Name: "shop.Item"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}

	errAbort := errors.New("abort")
	db.Transaction(func(tx *gorm.DB) error {
		tx.Create(&Item{Name: "rolled back"})
		return errAbort
	})
	if n := rec.Len(); n != 0 {
		t.Fatalf("rolled back transaction recorded %d messages", n)
	}

	if err := db.Create(&Item{Name: "kept"}).Error; err != nil {
		t.Fatal(err)
	}
	evs := rec.Events()
	if len(evs) != 1 || evs[0].Name != "shop.Item" || evs[0].Meta.EventType != events.TypeCreate ||
		string(evs[0].Data) != `{"id":1,"name":"kept"}` || len(evs[0].Channels) != 2 || evs[0].Channels[1] != "shop.Item:1" {
		t.Fatalf("recorded %+v", evs)
	}
	select {
	case pub := <-sub.C():
		if pub.EventID != evs[0].Meta.ID {
			t.Fatalf("forwarded %s, recorded %s", pub.EventID, evs[0].Meta.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not forwarded to the inner broker")
	}

	rec.Reset()
	if rec.Len() != 0 || len(rec.Events()) != 0 {
		t.Fatal("Reset kept messages")
	}
	rec.FailWith(errAbort)
	if err := rec.Publish(context.Background(), broker.Message{Channels: []string{"x"}, Data: []byte("{}")}); !errors.Is(err, errAbort) {
		t.Fatalf("Publish with FailWith = %v", err)
	}
	rec.FailWith(nil)
	if err := rec.Publish(context.Background(), broker.Message{Channels: []string{"x"}, Data: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	if len(rec.Messages()) != 1 || len(rec.Events()) != 0 {
		t.Fatal("a non-event message must be in Messages but not Events")
	}
}

// TestRecorderForwardsSynchronous checks that a Recorder reports the
// Publish of the broker it wraps: synchronous around Memory.
func TestRecorderForwardsSynchronous(t *testing.T) {
	if !broker.PublishesSynchronously(broker.NewMemory()) {
		t.Fatal("Memory does not report a synchronous Publish")
	}
	if !broker.PublishesSynchronously(broker.NewRecorder(nil)) {
		t.Fatal("a Recorder around Memory does not report a synchronous Publish")
	}
	if !broker.PublishesSynchronously(broker.NewRecorder(broker.NewRecorder(nil))) {
		t.Fatal("a Recorder around a Recorder around Memory does not report a synchronous Publish")
	}
}
