package telegraphy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// Invoice is a model whose writes become events.
type Invoice struct {
	ID     uint   `json:"id"`
	Status string `json:"status"`
	Total  string `json:"total"`
	Secret string // excluded below: never sent
}

// The plugin on a database: each create, update and delete of a
// registered model is published after its transaction commits.
func ExampleNew() {
	db, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Invoice{}); err != nil {
		log.Fatal(err)
	}
	bus := broker.NewMemory()
	defer bus.Close(context.Background())

	p := telegraphy.New(telegraphy.Config{Broker: bus})
	defer p.Close(context.Background())
	if err := p.Register(Invoice{}, events.Options{Name: "shop.Invoice", Exclude: []string{"Secret"}}); err != nil {
		log.Fatal(err) // e.g. a field named in Exclude that Invoice lacks
	}
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}

	// A hub subscribes like this; so can any other consumer.
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Add(ctx, "shop.Invoice"); err != nil {
		log.Fatal(err)
	}

	o := Invoice{Status: "new", Total: "19.90", Secret: "s3cret"}
	db.Create(&o)
	db.Model(&o).Update("status", "paid")
	db.Delete(&o)

	for range 3 {
		pub := <-sub.C()
		var e events.Event
		if err := json.Unmarshal(pub.Data, &e); err != nil {
			log.Fatal(err)
		}
		fmt.Println(pub.Offset, e.Meta.EventType, e.Meta.PK, e.Meta.Changed, string(e.Data))
	}
	// Output:
	// 1 create 1 [] {"id":1,"status":"new","total":"19.90"}
	// 2 update 1 [status] {"id":1,"status":"paid","total":"19.90"}
	// 3 delete 1 [] {"id":1,"status":"paid","total":"19.90"}
}

// A custom event joins the transaction it is given: it is published
// when that commits, and never when it rolls back.
func ExamplePlugin_Emit() {
	db, err := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	rec := broker.NewRecorder(nil) // records what would be published
	p := telegraphy.New(telegraphy.Config{Broker: rec})
	defer p.Close(context.Background())
	if err := db.Use(p); err != nil {
		log.Fatal(err)
	}

	_ = db.Transaction(func(tx *gorm.DB) error {
		return p.Emit(tx, "shop.Checkout", "paid", map[string]any{"order": 42}, "user:17")
	})
	_ = db.Transaction(func(tx *gorm.DB) error {
		_ = p.Emit(tx, "shop.Checkout", "paid", map[string]any{"order": 43}, "user:17")
		return fmt.Errorf("payment refused") // rolled back: no event
	})

	for _, e := range rec.Events() {
		fmt.Println(e.Name, e.Meta.EventType, e.Channels, string(e.Data))
	}
	// Output:
	// shop.Checkout paid [user:17] {"order":42}
}
