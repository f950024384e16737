package outbox

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestNewRefusesBrokerItCannotUse: outbox mode refuses, with an error
// naming the setting, a broker the relay could never confirm a batch on:
// one that keeps no history (the relay reads the position of its marker),
// and one whose publish queue is smaller than a batch and its marker
// (every attempt would be refused, and the rows retried forever).
func TestNewRefusesBrokerItCannotUse(t *testing.T) {
	url := testenv.StartRedis(t).URL
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "o.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		rcfg      redisbroker.Config
		batchSize int
		want      string // in the error; "" for none
	}{
		{redisbroker.Config{HistorySize: -1}, 0, "no history"},
		{redisbroker.Config{QueueSize: 100}, 0, "BatchSize 500"},
		{redisbroker.Config{QueueSize: 100}, 99, ""},
		{redisbroker.Config{QueueSize: 100}, 100, "QueueSize"},
	} {
		c.rcfg.URL, c.rcfg.Logger = url, quiet
		bus, err := redisbroker.New(c.rcfg)
		if err != nil {
			t.Fatal(err)
		}
		o, err := New(db, Config{Table: "outbox", Broker: bus, BatchSize: c.batchSize, NoRelay: true, Logger: quiet})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v, BatchSize %d: %v", c.rcfg, c.batchSize, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v, BatchSize %d: error %v, want one naming %q", c.rcfg, c.batchSize, err, c.want)
		}
		if o != nil {
			o.Close(context.Background())
		}
		bus.Close(context.Background())
	}
}

// TestMarkerOfAnEarlierAttemptDoesNotConfirm: the relay confirms a batch
// by its own marker: an earlier attempt's marker that reaches the broker
// late (that attempt timed out while the broker's queue was long) does not
// confirm the next attempt, whose rows may not be written yet.
func TestMarkerOfAnEarlierAttemptDoesNotConfirm(t *testing.T) {
	url := testenv.StartRedis(t).URL
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus, err := redisbroker.New(redisbroker.Config{URL: url, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	ctx := context.Background()
	c := &markerConfirm{b: bus, timeout: 300 * time.Millisecond, log: quiet, keep: func(context.Context) error { return nil }, ch: "telegraphy.outbox.relay:test"}
	// A first batch, confirmed by its marker.
	if err := c.publish(ctx, []broker.Message{{EventID: "row1", Channels: []string{"c"}, Data: []byte("1")}}); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	// An earlier attempt's marker arrives now; this attempt's never does.
	if err := bus.Publish(ctx, broker.Message{EventID: "stale-marker", Channels: []string{c.ch}, Data: []byte("null")}); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(ctx, "never-published"); err == nil {
		t.Fatal("confirmed by an earlier attempt's marker")
	}
	// Its own marker confirms it.
	if err := c.publish(ctx, []broker.Message{{EventID: "row2", Channels: []string{"c"}, Data: []byte("2")}}); err != nil {
		t.Fatalf("third batch: %v", err)
	}
}
