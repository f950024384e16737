package telegraphy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
	"gorm.io/gorm"
)

var originSecret = []byte("origin-test-secret-0123456789abcdef")

// wsTab is one browser tab: a WebSocket connection to a hub, subscribed
// to the Order model channel.
type wsTab struct {
	t       *testing.T
	ws      *websocket.Conn
	session string
	pending []wsMsg
}

type wsMsg struct {
	Type    string          `json:"type"`
	Session string          `json:"session"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Missed  []wsMsg         `json:"missed"`
	Event   json.RawMessage `json:"event"`
}

func (m wsMsg) status(t *testing.T) string {
	var ev events.Event
	if err := json.Unmarshal(m.Event, &ev); err != nil {
		t.Fatalf("event %s: %v", m.Event, err)
	}
	var o Order
	_ = json.Unmarshal(ev.Data, &o)
	return ev.Meta.EventType + ":" + o.Status
}

const orderChannel = "telegraphy_test.Order"

// openTab connects to the hub at url as subject and subscribes to the
// Order channel.
func openTab(t *testing.T, url string, issuer *tokens.Issuer, subject string) *wsTab {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	tok, err := issuer.Issue(subject, []string{orderChannel})
	if err != nil {
		t.Fatal(err)
	}
	tab := &wsTab{t: t, ws: ws}
	tab.write(`{"type":"hello","token":"` + tok + `"}`)
	w := tab.next()
	if w.Type != "welcome" || w.Session == "" {
		t.Fatalf("hello: got %+v, want welcome with a session", w)
	}
	tab.session = w.Session
	tab.write(`{"type":"subscribe","id":1,"channel":"` + orderChannel + `"}`)
	if m := tab.next(); m.Type != "subscribed" {
		t.Fatalf("subscribe: got %+v", m)
	}
	return tab
}

func (tab *wsTab) write(s string) {
	tab.t.Helper()
	if err := tab.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		tab.t.Fatal(err)
	}
}

// next returns the next message; several may share a frame.
func (tab *wsTab) next() wsMsg {
	tab.t.Helper()
	for len(tab.pending) == 0 {
		_ = tab.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := tab.ws.ReadMessage()
		if err != nil {
			tab.t.Fatalf("read: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			var m wsMsg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				tab.t.Fatalf("message %q: %v", line, err)
			}
			tab.pending = append(tab.pending, m)
		}
	}
	m := tab.pending[0]
	tab.pending = tab.pending[1:]
	return m
}

// events reads the next n events and returns them as "type:status".
func (tab *wsTab) events(n int) []string {
	tab.t.Helper()
	var got []string
	for len(got) < n {
		m := tab.next()
		if m.Type != "event" {
			tab.t.Fatalf("got %+v, want an event", m)
		}
		got = append(got, m.status(tab.t))
	}
	return got
}

// originApp is the application: it authenticates the user from the
// X-User header (standing in for its login), and writes orders with the
// request's context.
func originApp(t *testing.T, db *gorm.DB, p *telegraphy.Plugin) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		err := db.WithContext(r.Context()).Create(&Order{Status: r.URL.Query().Get("status")}).Error
		if err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /orders/tx", func(w http.ResponseWriter, r *http.Request) {
		err := db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&Order{Status: r.URL.Query().Get("status")}).Error; err != nil {
				return err
			}
			return tx.Model(&Order{}).Where("status = ?", r.URL.Query().Get("status")).Update("note", "tx").Error
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("POST /emit", func(w http.ResponseWriter, r *http.Request) {
		data := map[string]any{"status": r.URL.Query().Get("status")}
		if err := p.Emit(db.WithContext(r.Context()), "telegraphy_test.Note", "note", data, orderChannel); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	user := func(r *http.Request) string { return r.Header.Get("X-User") }
	srv := httptest.NewServer(telegraphy.OriginMiddleware(user)(mux))
	t.Cleanup(srv.Close)
	return srv
}

// post makes a request as user, sending session in the header
// telegraphy.js's t.headers() sets ("" for none).
func post(t *testing.T, app, path, user, session string) {
	t.Helper()
	req, _ := http.NewRequest("POST", app+path, nil)
	req.Header.Set("X-User", user)
	if session != "" {
		req.Header.Set(telegraphy.SessionHeader, session)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, res.StatusCode, b)
	}
}

func startHub(t *testing.T, b broker.Broker) string {
	h, err := hub.New(hub.Config{Broker: b, Secret: originSecret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func newRedisBroker(t *testing.T, url string) broker.Broker {
	b, err := redisbroker.New(redisbroker.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// TestOriginSkipsTheSendersEcho: the tab whose session id a request
// carries gets no event of that request's writes; the same user's other
// tab and other users get them; a session id sent by a request of another
// user hides nothing.
func TestOriginSkipsTheSendersEcho(t *testing.T) {
	setups := []struct {
		name string
		// hubs returns the brokers of the two hubs (tabs of user 17 are
		// split over them) and of the plugin, and whether to use the outbox.
		brokers func(t *testing.T) (hub1, hub2, plugin broker.Broker)
		outbox  bool
	}{
		{"memory", func(t *testing.T) (broker.Broker, broker.Broker, broker.Broker) {
			m := broker.NewMemory()
			return m, m, m
		}, false},
		{"memory/outbox", func(t *testing.T) (broker.Broker, broker.Broker, broker.Broker) {
			m := broker.NewMemory()
			return m, m, m
		}, true},
		{"redis/two-hubs", func(t *testing.T) (broker.Broker, broker.Broker, broker.Broker) {
			url := testenv.RedisURL(t)
			return newRedisBroker(t, url), newRedisBroker(t, url), newRedisBroker(t, url)
		}, false},
		{"redis/two-hubs/outbox", func(t *testing.T) (broker.Broker, broker.Broker, broker.Broker) {
			url := testenv.RedisURL(t)
			return newRedisBroker(t, url), newRedisBroker(t, url), newRedisBroker(t, url)
		}, true},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			b1, b2, pb := s.brokers(t)
			cfg := telegraphy.Config{Broker: pb}
			if s.outbox {
				cfg.Outbox = telegraphy.OutboxConfig{Enabled: true, PollInterval: 20 * time.Millisecond}
			}
			e := openOutbox(t, sqliteDialector(t), nil, cfg)
			app := originApp(t, e.db, e.p).URL
			issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: originSecret})
			if err != nil {
				t.Fatal(err)
			}
			hub1, hub2 := startHub(t, b1), startHub(t, b2)
			a := openTab(t, hub1, issuer, "17")  // the tab that writes
			b := openTab(t, hub2, issuer, "17")  // the same user's other tab
			c := openTab(t, hub1, issuer, "18")  // another user, beside a
			d := openTab(t, hub2, issuer, "18")  // another user, beside b
			anon := openTab(t, hub1, issuer, "") // no subject at all
			all := []*wsTab{a, b, c, d, anon}
			others := []*wsTab{b, c, d, anon}

			// Writes by 17 from tab a; a plain write after them shows
			// what a received in their place (events arrive in order).
			post(t, app, "/orders?status=own", "17", a.session)
			post(t, app, "/orders/tx?status=owntx", "17", a.session)
			post(t, app, "/emit?status=ownemit", "17", a.session)
			post(t, app, "/orders?status=plain", "17", "")
			want := []string{"create:own", "create:owntx", "update:owntx", "note:ownemit", "create:plain"}
			for i, tab := range others {
				if got := tab.events(len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("tab %d: got %v, want %v", i+1, got, want)
				}
			}
			if got := a.events(1); got[0] != "create:plain" {
				t.Errorf("writing tab: got %v, want only create:plain (no echo)", got)
			}

			// Forged: user 18 sends tab a's session id; user 17 sends
			// tab c's (user 18's). Nothing is hidden from anybody.
			post(t, app, "/orders?status=forged-a", "18", a.session)
			post(t, app, "/orders?status=forged-c", "17", c.session)
			post(t, app, "/emit?status=forged-d", "17", d.session)
			want = []string{"create:forged-a", "create:forged-c", "note:forged-d"}
			for i, tab := range all {
				if got := tab.events(len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("tab %d after forged session ids: got %v, want %v", i, got, want)
				}
			}

			// Recovery on the same connection skips its own events too:
			// a resubscribes from before its next write.
			a.write(`{"type":"unsubscribe","id":2,"channel":"` + orderChannel + `"}`)
			if m := a.next(); m.Type != "unsubscribed" {
				t.Fatalf("unsubscribe: got %+v", m)
			}
			pos, err := pb.History(context.Background(), orderChannel, nil)
			if err != nil {
				t.Fatal(err)
			}
			post(t, app, "/orders?status=own2", "17", a.session)
			post(t, app, "/orders?status=plain2", "17", "")
			want = []string{"create:own2", "create:plain2"}
			for i, tab := range others {
				if got := tab.events(len(want)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("tab %d: got %v, want %v", i+1, got, want)
				}
			}
			since, _ := json.Marshal(pos.Position)
			a.write(`{"type":"subscribe","id":3,"channel":"` + orderChannel + `","since":` + string(since) + `}`)
			m := a.next()
			if m.Type != "subscribed" {
				t.Fatalf("resubscribe: got %+v", m)
			}
			var missed []string
			for _, x := range m.Missed {
				missed = append(missed, x.status(t))
			}
			if fmt.Sprint(missed) != "[create:plain2]" {
				t.Errorf("missed on resubscribe: got %v, want [create:plain2]", missed)
			}
		})
	}
}

// TestOriginNeverReachesTheEvent: the stamp travels beside the event,
// never in the JSON a browser receives.
func TestOriginNeverReachesTheEvent(t *testing.T) {
	rec := broker.NewRecorder(nil)
	e := openOutbox(t, sqliteDialector(t), nil, telegraphy.Config{Broker: rec})
	ctx := telegraphy.WithOrigin(context.Background(), "sess-1", "user-17")
	if err := e.db.WithContext(ctx).Create(&Order{Status: "x"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := e.p.Emit(e.db.WithContext(ctx), "n", "note", 1); err != nil {
		t.Fatal(err)
	}
	msgs := rec.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if m.Origin != (broker.Origin{Session: "sess-1", Subject: "user-17"}) {
			t.Errorf("message %s: origin %+v", m.Data, m.Origin)
		}
		if strings.Contains(string(m.Data), "sess-1") || strings.Contains(string(m.Data), "user-17") {
			t.Errorf("event JSON carries the origin: %s", m.Data)
		}
	}
	// Without a subject, or with a control character, nothing is stamped.
	for _, ctx := range []context.Context{
		telegraphy.WithOrigin(context.Background(), "sess-1", ""),
		telegraphy.WithOrigin(context.Background(), "", "user-17"),
		telegraphy.WithOrigin(context.Background(), "sess\n1", "user-17"),
	} {
		if o, ok := telegraphy.OriginFrom(ctx); ok {
			t.Errorf("origin %+v stamped from a bad value", o)
		}
	}
}

// TestOriginSurvivesTheOutbox: on every database, the relay publishes an
// event with the origin its write was made with, in a transaction or not,
// Emit included; and none for a write without one.
func TestOriginSurvivesTheOutbox(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			rec := broker.NewRecorder(nil)
			e := openOutbox(t, d.open(t), nil, telegraphy.Config{Broker: rec,
				Outbox: telegraphy.OutboxConfig{Enabled: true, PollInterval: 20 * time.Millisecond}})
			o := broker.Origin{Session: "0123456789abcdef", Subject: strings.Repeat("ü", 100)}
			ctx := telegraphy.WithOrigin(context.Background(), o.Session, o.Subject)
			db := e.db.WithContext(ctx)
			if err := db.Create(&Order{Status: "a"}).Error; err != nil {
				t.Fatal(err)
			}
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Order{}).Where("status = ?", "a").Update("note", "n").Error; err != nil {
					return err
				}
				return e.p.Emit(tx, "custom", "note", 1)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.p.Emit(db, "custom", "note", 2); err != nil {
				t.Fatal(err)
			}
			if err := e.db.Create(&Order{Status: "plain"}).Error; err != nil {
				t.Fatal(err)
			}
			waitFor(t, "five events relayed", func() bool { return rec.Len() == 5 })
			var got []string
			for _, m := range rec.Messages() {
				switch {
				case m.Origin == o:
					got = append(got, "stamped")
				case m.Origin.IsZero():
					got = append(got, "none")
				default:
					got = append(got, fmt.Sprintf("%+v", m.Origin))
				}
			}
			if want := "[stamped stamped stamped stamped none]"; fmt.Sprint(got) != want {
				t.Fatalf("origins: %v, want %s", got, want)
			}
		})
	}
}
