package jsclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// envCardWriter, set to a cardWrite in JSON, makes the test binary app
// process B: it writes one card and exits (see TestMain).
const envCardWriter = "TELEGRAPHY_TEST_CARD_WRITER"

// cardWrite is what process B is asked to do.
type cardWrite struct {
	DB     string `json:"db"`
	Redis  string `json:"redis"`
	Prefix string `json:"prefix"`
	ID     uint   `json:"id"`
	Delete bool   `json:"delete"`
}

// cardWriterMain is process B: it opens the card database with a plugin
// publishing through Redis, writes the card, and closes the broker, which
// flushes the event to Redis before the process exits.
func cardWriterMain() int {
	var w cardWrite
	if err := json.Unmarshal([]byte(os.Getenv(envCardWriter)), &w); err != nil {
		fmt.Fprintln(os.Stderr, "card writer:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := redisbroker.New(redisbroker.Config{URL: w.Redis, Prefix: w.Prefix})
	if err != nil {
		fmt.Fprintln(os.Stderr, "card writer:", err)
		return 1
	}
	db, err := openCards(w.DB, bus)
	if err == nil {
		err = writeCard(ctx, db, w.ID, w.Delete)
		if sqlDB, e := db.DB(); e == nil {
			_ = sqlDB.Close()
		}
	}
	if e := bus.Close(ctx); err == nil {
		err = e
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "card writer:", err)
		return 1
	}
	return 0
}

// newCardProcesses runs A in this process and B in processes of its own
// (this test binary, started once per write), both publishing through
// the Redis at url with prefix; bus is this process's broker on it.
func newCardProcesses(t *testing.T, bus *redisbroker.Broker, url, prefix string) *cardApps {
	path := filepath.Join(t.TempDir(), "cards.db")
	apps := newCardA(t, bus, path)
	apps.writeB = func(ctx context.Context, id uint, del bool) error {
		w, _ := json.Marshal(cardWrite{DB: path, Redis: url, Prefix: prefix, ID: id, Delete: del})
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envCardWriter+"="+string(w))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("process B: %w: %s", err, out)
		}
		return nil
	}
	return apps
}

// TestNodeTwoProcesses runs the stale-event case of the collections with
// two app processes: this one (A) and a child process (B) write one card
// in one SQLite database and publish through one Redis; a hub on that
// Redis serves the node client. B's event reaches Redis before A's,
// though A committed first.
func TestNodeTwoProcesses(t *testing.T) {
	nodeCommand(t) // skips without node
	url := testenv.RedisURL(t)
	prefix := fmt.Sprintf("stale%d", time.Now().UnixNano())
	bus, err := redisbroker.New(redisbroker.Config{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()
	hs := &hubServer{broker: bus, secret: testSecret, addr: "127.0.0.1:0"}
	if err := hs.start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := hs.stop(); err != nil {
			t.Errorf("stop hub: %v", err)
		}
	}()
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cards := newCardProcesses(t, bus, url, prefix)
	ctl := httptest.NewServer(control(t, map[string]*hubServer{"main": hs}, issuer, cards))
	defer ctl.Close()
	runNode(t, ctl.URL, "test/stale.processes.mjs")
}
