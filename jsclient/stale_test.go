package jsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
)

// Card is the model of the stale-event test: its UpdatedAt, which GORM
// sets on every write, is the version its events carry.
type Card struct {
	ID        uint      `json:"id" gorm:"primaryKey"`
	Title     string    `json:"title"`
	UpdatedAt time.Time `json:"updated_at"`
}

// heldBroker passes publications on to a broker, except that while hold
// is set a Publish call waits until release is closed: a process whose
// publication after commit is slow to reach the broker.
type heldBroker struct {
	broker.Broker
	mu      sync.Mutex
	held    chan struct{} // closed when a held Publish is waiting
	release chan struct{}
}

func (b *heldBroker) hold() (waiting <-chan struct{}, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held, b.release = make(chan struct{}), make(chan struct{})
	rel := b.release
	return b.held, func() { close(rel) }
}

func (b *heldBroker) Publish(ctx context.Context, msgs ...broker.Message) error {
	b.mu.Lock()
	held, release := b.held, b.release
	b.held, b.release = nil, nil
	b.mu.Unlock()
	if held != nil {
		close(held)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Broker.Publish(ctx, msgs...)
}

// cardApps is two app instances, A and B, each with its own plugin and
// database handle, writing to one SQLite database and publishing to one
// broker, as two processes of an app without the outbox do. A's
// publications can be held back. B runs in a process of its own
// (newCardProcesses): within one process the plugin publishes the events
// of transactions that touched a common record in commit order, so two
// instances there cannot publish out of order.
type cardApps struct {
	bus  broker.Broker
	a    *gorm.DB
	held *heldBroker
	// writeB has B rename the card, or delete it, and returns once B's
	// event is in the broker.
	writeB func(ctx context.Context, id uint, del bool) error
}

const cardChannel = "stale.Card"

// openCards opens the card database at path with a plugin publishing to b.
func openCards(path string, b broker.Broker) (*gorm.DB, error) {
	p := telegraphy.New(telegraphy.Config{Broker: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := p.Register(Card{}, events.Options{Name: cardChannel, Version: "UpdatedAt"}); err != nil {
		return nil, err
	}
	db, err := gorm.Open(sqlite.Open("file:"+path+"?_busy_timeout=5000&_journal_mode=WAL"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, err
	}
	if err := db.Use(p); err != nil {
		return nil, err
	}
	return db, nil
}

// writeCard is B's write: the card renamed "written by B", or deleted.
func writeCard(ctx context.Context, db *gorm.DB, id uint, del bool) error {
	if del {
		return db.WithContext(ctx).Delete(&Card{ID: id}).Error
	}
	return db.WithContext(ctx).Model(&Card{ID: id}).Update("title", "written by B").Error
}

func closeDB(t *testing.T, db *gorm.DB) {
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
}

// newCardA opens A, in this process, and the database at path.
func newCardA(t *testing.T, bus broker.Broker, path string) *cardApps {
	apps := &cardApps{bus: bus, held: &heldBroker{Broker: bus}}
	var err error
	if apps.a, err = openCards(path, apps.held); err != nil {
		t.Fatal(err)
	}
	closeDB(t, apps.a)
	if err := apps.a.AutoMigrate(&Card{}); err != nil {
		t.Fatal(err)
	}
	return apps
}

// rows is what a page renders: the channel's position, then the rows.
func (c *cardApps) rows(ctx context.Context) (map[string]any, error) {
	h, err := c.bus.History(ctx, cardChannel, nil)
	if err != nil {
		return nil, err
	}
	var cards []Card
	if err := c.a.WithContext(ctx).Order("id").Find(&cards).Error; err != nil {
		return nil, err
	}
	return map[string]any{"position": h.Position, "rows": cards}, nil
}

// race writes the card twice, first through app A and then through app B,
// and delivers B's event first: A's publication is held until B's has
// been published.
func (c *cardApps) race(ctx context.Context, id uint, del bool) error {
	waiting, release := c.held.hold()
	done := make(chan error, 1)
	go func() {
		done <- c.a.WithContext(ctx).Model(&Card{ID: id}).Update("title", "written by A").Error
	}()
	select {
	case <-waiting: // A has committed; its event waits
	case err := <-done:
		release()
		return fmt.Errorf("A's update published without being held: %v", err)
	}
	// B's UpdatedAt is then after A's even on a coarse clock.
	time.Sleep(time.Millisecond)
	err := c.writeB(ctx, id, del)
	release()
	return errors.Join(err, <-done)
}

// handler serves the stale-event test's app under /stale/.
func (c *cardApps) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			t.Logf("stale: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /stale/rows", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.rows(r.Context())
		reply(w, v, err)
	})
	mux.HandleFunc("POST /stale/create", func(w http.ResponseWriter, r *http.Request) {
		card := Card{Title: r.URL.Query().Get("title")}
		err := c.a.WithContext(r.Context()).Create(&card).Error
		reply(w, card, err)
	})
	mux.HandleFunc("POST /stale/race", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 32)
		if err == nil {
			err = c.race(r.Context(), uint(id), r.URL.Query().Get("delete") == "1")
		}
		reply(w, nil, err)
	})
	return mux
}
