package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
)

var _ tokens.ReplayStore = (*redisbroker.ReplayStore)(nil)

const secret = "integration-secret-0123456789abcdef"

type Order struct {
	ID     uint   `json:"id"`
	Status string `json:"status"`
}

func newRedisBroker(t testing.TB, url string) *redisbroker.Broker {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: url, ErrorHandler: func(err error) { t.Logf("broker: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// newApp is the app side: GORM on a SQLite file with the plugin publishing
// through its own redisbroker.
func newApp(t testing.TB, url string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "app.db")+"?_journal_mode=WAL&_busy_timeout=5000"),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { _ = sqlDB.Close() })
	if err := db.AutoMigrate(&Order{}); err != nil {
		t.Fatal(err)
	}
	p := telegraphy.New(telegraphy.Config{Broker: newRedisBroker(t, url)})
	if err := p.Register(Order{}, events.Options{Name: "shop.Order"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	return db
}

// newHub is one gateway with its own redisbroker and the shared token store.
func newHub(t testing.TB, url string) (*hub.Hub, string) {
	t.Helper()
	bus := newRedisBroker(t, url)
	h, err := hub.New(hub.Config{Broker: bus, Secret: []byte(secret), ReplayStore: bus.ReplayStore()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Close(ctx)
		srv.Close()
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func token(t testing.TB, sub string) string {
	t.Helper()
	iss, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Issue(sub, []string{"shop.Order", "shop.Order:*"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client reads protocol messages on its own goroutine.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	msgs chan map[string]any
	err  error
}

func connect(t testing.TB, url, tok string) *client {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws, msgs: make(chan map[string]any, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.msgs)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if len(bytes.TrimSpace(line)) > 0 {
					if err := json.Unmarshal(line, &m); err != nil {
						c.err = err
						return
					}
					c.msgs <- m
				}
			}
		}
	}()
	t.Cleanup(func() { ws.Close(); <-done })
	if err := ws.WriteJSON(map[string]any{"type": "hello", "token": tok}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message, or the error that closed the connection.
func (c *client) next() (map[string]any, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return nil, c.err
		}
		return m, nil
	case <-time.After(10 * time.Second):
		return nil, errors.New("no message within 10s")
	}
}

func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m, err := c.next()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if m["type"] != typ {
		c.t.Fatalf("got %v, want %s", m, typ)
	}
	return m
}

// closeCode waits for the hub to close the connection and returns the code.
func (c *client) closeCode() int {
	c.t.Helper()
	for {
		_, err := c.next()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.t.Fatalf("connection ended without a close frame: %v", err)
	}
}

// summary is "offset:event_type:status" of an event message.
func summary(m any) string {
	e := m.(map[string]any)
	ev := e["event"].(map[string]any)
	meta := ev["meta"].(map[string]any)
	data, _ := ev["data"].(map[string]any)
	return fmt.Sprintf("%v:%v:%v", e["offset"], meta["event_type"], data["status"])
}

// TestAppAndTwoHubs: one app (GORM, plugin, redisbroker) and two hubs,
// each with its own redisbroker, on one Redis.
func TestAppAndTwoHubs(t *testing.T) {
	url := testenv.StartRedis(t).URL
	db := newApp(t, url)
	hubA, urlA := newHub(t, url)
	_, urlB := newHub(t, url)

	// A client on hub A receives what the app commits.
	tokA := token(t, "17")
	a := connect(t, urlA, tokA)
	a.expect("welcome")
	a.send(map[string]any{"type": "subscribe", "id": 1, "channel": "shop.Order"})
	sub := a.expect("subscribed")
	epoch := sub["epoch"]
	o := Order{Status: "new"}
	if err := db.Create(&o).Error; err != nil {
		t.Fatal(err)
	}
	if got := summary(a.expect("event")); got != "1:create:new" {
		t.Errorf("hub A delivered %s", got)
	}

	// The client leaves A; the app commits meanwhile.
	a.ws.Close()
	if err := db.Model(&o).Update("status", "paid").Error; err != nil {
		t.Fatal(err)
	}
	o2 := Order{Status: "other"}
	if err := db.Create(&o2).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(&o).Error; err != nil {
		t.Fatal(err)
	}

	// It reconnects to hub B with since: exactly the missed events.
	b := connect(t, urlB, token(t, "17"))
	b.expect("welcome")
	// Publishing is asynchronous: wait until the three events are in
	// Redis before asking.
	waitOffset(t, url, "shop.Order", 4)
	b.send(map[string]any{"type": "subscribe", "id": 2, "channel": "shop.Order", "since": map[string]any{"epoch": epoch, "offset": 1}})
	res := b.expect("subscribed")
	if res["recovered"] != true || res["epoch"] != epoch || res["offset"] != 4.0 {
		t.Fatalf("subscribed with since: %v", res)
	}
	var missed []string
	for _, m := range res["missed"].([]any) {
		missed = append(missed, summary(m))
	}
	if fmt.Sprint(missed) != "[2:update:paid 3:create:other 4:delete:paid]" {
		t.Errorf("missed %v", missed)
	}
	if err := db.Model(&o2).Update("status", "later").Error; err != nil {
		t.Fatal(err)
	}
	if got := summary(b.expect("event")); got != "5:update:later" {
		t.Errorf("hub B delivered %s", got)
	}

	// The token used on A is refused on B.
	reused := connect(t, urlB, tokA)
	m, err := reused.next()
	var ce *websocket.CloseError
	switch {
	case err == nil && m["type"] == "error" && m["code"] == "unauthorized":
	case errors.As(err, &ce) && ce.Code == 4001:
	default:
		t.Errorf("token reused on hub B: %v, %v", m, err)
	}

	// Revoking subject 17 on A closes its connections on A and on B.
	a2 := connect(t, urlA, token(t, "17"))
	a2.expect("welcome")
	other := connect(t, urlB, token(t, "18"))
	other.expect("welcome")
	if err := hubA.Revoke(context.Background(), "17"); err != nil {
		t.Fatal(err)
	}
	if code := a2.closeCode(); code != 4010 {
		t.Errorf("on hub A: close %d, want 4010", code)
	}
	if code := b.closeCode(); code != 4010 {
		t.Errorf("on hub B: close %d, want 4010", code)
	}
	other.send(map[string]any{"type": "ping", "id": 9})
	if m := other.expect("pong"); m["id"] != 9.0 {
		t.Errorf("another subject's connection: %v", m)
	}
}

func waitOffset(t testing.TB, url, channel string, want uint64) {
	t.Helper()
	r := newRedisBroker(t, url)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := r.History(context.Background(), channel, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Position.Offset >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at offset %d, want %d", channel, res.Position.Offset, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisRestartTwoHubs kills Redis under an app and two hubs with
// clients, and starts it again empty: the app's publisher and both hubs
// reconnect by themselves, each client is told recovered:false (the
// history is gone, the epoch changed), and what the app commits after the
// restart reaches both.
func TestRedisRestartTwoHubs(t *testing.T) {
	r := testenv.StartRedis(t)
	db := newApp(t, r.URL)
	_, urlA := newHub(t, r.URL)
	_, urlB := newHub(t, r.URL)
	var clients []*client
	var epochs []any
	for _, u := range []string{urlA, urlB} {
		c := connect(t, u, token(t, "17"))
		c.expect("welcome")
		c.send(map[string]any{"type": "subscribe", "id": 1, "channel": "shop.Order"})
		epochs = append(epochs, c.expect("subscribed")["epoch"])
		clients = append(clients, c)
	}
	if err := db.Create(&Order{Status: "before"}).Error; err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if got := summary(c.expect("event")); got != "1:create:before" {
			t.Fatalf("before the restart: %s", got)
		}
	}

	r.Stop()
	r.Start()

	// Commit until both clients have an event from after the restart: the
	// hubs resubscribe on their own schedule.
	got := make([]string, len(clients))
	lost := make([]bool, len(clients))
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; got[0] == "" || got[1] == ""; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, clients got %q", got)
		}
		if err := db.Create(&Order{Status: fmt.Sprintf("after%d", i)}).Error; err != nil {
			t.Fatal(err)
		}
		for k, c := range clients {
			for got[k] == "" {
				var m map[string]any
				select {
				case m = <-c.msgs:
				case <-time.After(300 * time.Millisecond):
				}
				if m == nil {
					break
				}
				switch m["type"] {
				case "subscribed":
					if m["recovered"] == false && m["epoch"] != epochs[k] {
						lost[k] = true
					}
				case "event":
					got[k] = summary(m)
				default:
					t.Fatalf("client %d: %v", k, m)
				}
			}
		}
	}
	for k := range clients {
		if !lost[k] {
			t.Errorf("client %d was not told recovered:false", k)
		}
		if !strings.Contains(got[k], ":create:after") {
			t.Errorf("client %d after the restart: %s", k, got[k])
		}
	}
}

// TestMain fails the run when goroutines started by the tests outlive them.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunCheckingLeaks(m, "redisbroker.", "go-redis", "telegraphy/hub.", "gorilla/websocket"))
}
