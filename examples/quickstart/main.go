// Command quickstart shows Telegraphy's model events end to end without any
// service: it creates, updates and deletes rows in a temporary SQLite
// database, rolls one transaction back, and prints every event the
// in-process broker delivers, one JSON line each. The rolled-back work
// prints nothing.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Order is the model whose changes become events.
type Order struct {
	ID     uint   `json:"id"`
	Status string `json:"status"`
	Total  string `json:"total"` // a decimal kept as text
	Secret string `json:"-"`     // never sent
}

func main() {
	if err := run(os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "telegraphy-quickstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "shop.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	if err := db.AutoMigrate(&Order{}); err != nil {
		return err
	}

	ctx := context.Background()
	bus := broker.NewMemory()
	defer bus.Close(ctx)
	sub, err := bus.Subscribe(ctx)
	if err != nil {
		return err
	}
	if err := sub.Add(ctx, "shop.Order"); err != nil {
		return err
	}

	p := telegraphy.New(telegraphy.Config{Broker: bus})
	if err := p.Register(Order{}, events.Options{Name: "shop.Order", VerboseName: "Order"}); err != nil {
		return err
	}
	if err := db.Use(p); err != nil {
		return err
	}

	steps := []struct {
		say string
		do  func() error
	}{
		{"create two orders", func() error {
			return db.Create([]*Order{{Status: "new", Total: "19.90", Secret: "s1"}, {Status: "new", Total: "5.00"}}).Error
		}},
		{"pay order 1", func() error {
			return db.Model(&Order{ID: 1}).Update("status", "paid").Error
		}},
		{"a transaction that is rolled back: no events", func() error {
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Order{Status: "new", Total: "1.00"}).Error; err != nil {
					return err
				}
				if err := tx.Model(&Order{ID: 2}).Update("status", "cancelled").Error; err != nil {
					return err
				}
				return errors.New("changed my mind")
			})
			if err == nil {
				return errors.New("transaction unexpectedly committed")
			}
			return nil
		}},
		{"ship every paid order (update by condition)", func() error {
			return db.Model(&Order{}).Where("status = ?", "paid").Update("status", "shipped").Error
		}},
		{"delete order 2", func() error {
			return db.Delete(&Order{}, 2).Error
		}},
	}
	for _, s := range steps {
		fmt.Fprintln(stderr, "#", s.say)
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.say, err)
		}
	}

	// Five events were committed: two creates, two updates, one delete.
	// Memory delivers synchronously on commit, so they are buffered already.
	for i := 0; i < 5; i++ {
		select {
		case pub := <-sub.C():
			fmt.Fprintf(stdout, "%s\n", pub.Data)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("only %d events arrived", i)
		}
	}
	return nil
}
