package telegraphy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// obEnv is one *gorm.DB with a plugin in outbox mode (or not).
type obEnv struct {
	db *gorm.DB
	p  *telegraphy.Plugin
}

// openOutbox opens dl (several calls on one Dialector reach one
// database), migrates the test models, and installs a plugin publishing to
// b with cfg. The plugin is closed (its relay drained) before the database.
func openOutbox(t testing.TB, dl gorm.Dialector, gcfg *gorm.Config, cfg telegraphy.Config) obEnv {
	t.Helper()
	if gcfg == nil {
		gcfg = &gorm.Config{}
	}
	gcfg.Logger = logger.Discard
	db := openDB(t, dl, gcfg, &Order{}, &Doc{})
	p := telegraphy.New(cfg)
	for _, m := range []any{Order{}, &Doc{}} {
		if err := p.Register(m, events.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Use(p); err != nil {
		t.Fatalf("use: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("plugin close: %v", err)
		}
	})
	return obEnv{db: db, p: p}
}

func outboxRows(t testing.TB, db *gorm.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Session(&gorm.Session{NewDB: true}).Table(telegraphy.DefaultOutboxTable).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// closePlugin stops p's relay after it has published everything.
func closePlugin(t testing.TB, p *telegraphy.Plugin) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// comparable strips what differs between two runs of one scenario: the
// event ids and times.
func comparable(evs []events.Event) string {
	var sb strings.Builder
	for _, e := range evs {
		e.Meta.ID, e.Meta.Timestamp = "", ""
		var data map[string]any
		if json.Unmarshal(e.Data, &data) == nil && data["deleted_at"] != nil {
			data["deleted_at"] = "set" // the time of the soft delete differs between runs
			e.Data, _ = json.Marshal(data)
		}
		b, _ := json.Marshal(struct {
			Name     string
			Meta     events.Meta
			Data     json.RawMessage
			Channels []string
		}{e.Name, e.Meta, e.Data, e.Channels})
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String()
}

var outboxScenarios = []struct {
	name string
	gcfg func() *gorm.Config
	run  func(db *gorm.DB, p *telegraphy.Plugin) error
}{
	{"implicit transactions", nil, func(db *gorm.DB, p *telegraphy.Plugin) error {
		if err := db.Create(&Order{Status: "a", Total: 1}).Error; err != nil {
			return err
		}
		if err := p.Emit(db, "shop.Note", "noted", "between", "user:1"); err != nil {
			return err
		}
		if err := db.Model(&Order{ID: 1}).Update("status", "b").Error; err != nil {
			return err
		}
		if err := p.Emit(nil, "shop.Note", "noted", "no db"); err != nil {
			return err
		}
		return db.Delete(&Order{ID: 1}).Error
	}},
	{"committed transaction with custom event", nil, func(db *gorm.DB, p *telegraphy.Plugin) error {
		return db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&[]Order{{Status: "a"}, {Status: "b"}}).Error; err != nil {
				return err
			}
			if err := tx.Model(&Order{}).Where("status = ?", "a").Update("total", 5).Error; err != nil {
				return err
			}
			return p.Emit(tx, "shop.Checkout", "paid", map[string]int{"order": 1}, "user:17")
		})
	}},
	{"rolled back transaction", nil, func(db *gorm.DB, p *telegraphy.Plugin) error {
		err := db.Transaction(func(tx *gorm.DB) error {
			tx.Create(&Order{Status: "gone"})
			_ = p.Emit(tx, "shop.Checkout", "paid", nil)
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			return fmt.Errorf("Transaction = %v", err)
		}
		return nil
	}},
	{"nested transaction whose inner part fails", nil, func(db *gorm.DB, p *telegraphy.Plugin) error {
		return db.Transaction(func(tx *gorm.DB) error {
			tx.Create(&Order{Status: "outer"})
			_ = tx.Transaction(func(tx2 *gorm.DB) error {
				tx2.Create(&Order{Status: "inner"})
				return errAbort
			})
			return tx.Create(&Order{Status: "outer2"}).Error
		})
	}},
	{"SkipDefaultTransaction", func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} },
		func(db *gorm.DB, p *telegraphy.Plugin) error {
			if err := db.Create(&Order{Status: "a"}).Error; err != nil {
				return err
			}
			if err := db.Create(&Doc{Title: "d"}).Error; err != nil {
				return err
			}
			if err := db.Model(&Order{}).Where("id = ?", 1).Update("total", 7).Error; err != nil {
				return err
			}
			if err := db.Delete(&Doc{ID: 1}).Error; err != nil {
				return err
			}
			return db.Delete(&Order{ID: 1}).Error
		}},
	{"transactions begun with SQL", func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} },
		func(db *gorm.DB, p *telegraphy.Plugin) error {
			return db.Connection(func(conn *gorm.DB) error {
				tx := conn.Session(&gorm.Session{})
				for _, q := range []any{"BEGIN", &Order{Status: "a"}, &Doc{Title: "d"}, "COMMIT",
					"BEGIN", &Order{Status: "rolled back"}, "ROLLBACK", "BEGIN", &Order{Status: "b"}, "COMMIT"} {
					var err error
					if sql, ok := q.(string); ok {
						err = tx.Exec(sql).Error
					} else {
						err = tx.Create(q).Error
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		}},
	{"PrepareStmt", func() *gorm.Config { return &gorm.Config{PrepareStmt: true} },
		func(db *gorm.DB, p *telegraphy.Plugin) error {
			if err := db.Create(&Order{Status: "a"}).Error; err != nil {
				return err
			}
			return db.Transaction(func(tx *gorm.DB) error {
				return tx.Create(&[]Order{{Status: "b"}, {Status: "c"}}).Error
			})
		}},
}

// TestOutboxPublishesWhatPlainModePublishes runs each scenario twice on
// each database: once without the outbox, once in outbox mode with no
// relay (nothing may be published then, and the outbox holds one row per
// event, none for rolled-back work), after which a relay in a second
// connection pool publishes the rows. The events must be the same, in the
// same order, and the outbox empty.
func TestOutboxPublishesWhatPlainModePublishes(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			for _, sc := range outboxScenarios {
				t.Run(sc.name, func(t *testing.T) {
					gcfg := func() *gorm.Config {
						if sc.gcfg == nil {
							return nil
						}
						return sc.gcfg()
					}
					plainRec := broker.NewRecorder(nil)
					plain := openOutbox(t, d.open(t), gcfg(), telegraphy.Config{Broker: plainRec})
					if err := sc.run(plain.db, plain.p); err != nil {
						t.Fatalf("plain: %v", err)
					}
					want := plainRec.Events()

					dl := d.open(t)
					writerRec := broker.NewRecorder(nil)
					w := openOutbox(t, dl, gcfg(), telegraphy.Config{Broker: writerRec,
						Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}})
					if err := sc.run(w.db, w.p); err != nil {
						t.Fatalf("outbox: %v", err)
					}
					if writerRec.Len() != 0 {
						t.Fatalf("outbox mode without relay published:%s", describe(writerRec.Events()))
					}
					if n := outboxRows(t, w.db); n != int64(len(want)) {
						t.Fatalf("outbox holds %d rows, want %d (one per committed event)", n, len(want))
					}

					rec := broker.NewRecorder(nil)
					r := openOutbox(t, dl, nil, telegraphy.Config{Broker: rec, Outbox: telegraphy.OutboxConfig{Enabled: true}})
					closePlugin(t, r.p)
					if got := comparable(rec.Events()); got != comparable(want) {
						t.Fatalf("relay published\n%s\nplain mode published\n%s", got, comparable(want))
					}
					if n := outboxRows(t, w.db); n != 0 {
						t.Fatalf("outbox holds %d rows after the relay drained it", n)
					}
				})
			}
		})
	}
}

// TestOutboxRelaysShareOneTable runs two connection pools, each with its
// own plugin and relay, against one database, both writing: every event is
// published exactly once, and on the record channel of a row both keep
// updating, the totals arrive in commit order (1, 2, 3, ...).
func TestOutboxRelaysShareOneTable(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			dl := d.open(t)
			rec := broker.NewRecorder(nil)
			cfg := telegraphy.Config{Broker: rec, Outbox: telegraphy.OutboxConfig{Enabled: true,
				PollInterval: 20 * time.Millisecond, BatchSize: 7}}
			a := openOutbox(t, dl, nil, cfg)
			b := openOutbox(t, dl, nil, cfg)
			if err := a.db.Create(&Order{Status: "counter"}).Error; err != nil {
				t.Fatal(err)
			}
			const writers, each = 4, 30
			concurrently(t, writers, each, func(w, j int) error {
				db := a.db
				if w%2 == 1 {
					db = b.db
				}
				return db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Order{ID: 1}).Update("total", gorm.Expr("total + 1")).Error; err != nil {
						return err
					}
					return tx.Create(&Order{Status: fmt.Sprintf("w%d-%d", w, j)}).Error
				})
			})
			closePlugin(t, a.p)
			closePlugin(t, b.p)

			msgs := rec.Messages()
			seen := map[string]int{}
			for _, m := range msgs {
				seen[m.EventID]++
				if seen[m.EventID] > 1 {
					t.Fatalf("event %s published twice", m.EventID)
				}
			}
			if want := 1 + 2*writers*each; len(msgs) != want {
				t.Fatalf("%d events published, want %d", len(msgs), want)
			}
			var totals []int
			for _, e := range rec.Events() {
				if e.Meta.EventType == "update" && slicesContains(e.Channels, "telegraphy_test.Order:1") {
					var o Order
					if err := json.Unmarshal(e.Data, &o); err != nil {
						t.Fatal(err)
					}
					totals = append(totals, o.Total)
				}
			}
			for i, v := range totals {
				if v != i+1 {
					t.Fatalf("record channel totals out of commit order: %v", totals)
				}
			}
			if len(totals) != writers*each {
				t.Fatalf("%d updates on the record channel, want %d", len(totals), writers*each)
			}
		})
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestOutboxBacklog checks OutboxBacklog, the Prometheus gauges and the
// warning log while the broker refuses everything, and that the backlog
// drains once it accepts again.
func TestOutboxBacklog(t *testing.T) {
	dl := sqliteDialector(t)
	rec := broker.NewRecorder(nil)
	var logBuf testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	reg := prometheus.NewRegistry()
	rec.FailWith(errors.New("broker down"))
	e := openOutbox(t, dl, nil, telegraphy.Config{Broker: rec, Logger: log, ErrorHandler: func(error) {},
		Outbox: telegraphy.OutboxConfig{Enabled: true, PollInterval: 10 * time.Millisecond,
			BacklogInterval: 10 * time.Millisecond, BacklogWarnAge: time.Millisecond, Registerer: reg}})

	off := telegraphy.New(telegraphy.Config{Broker: rec})
	if _, err := off.OutboxBacklog(context.Background()); !errors.Is(err, telegraphy.ErrOutboxOff) {
		t.Fatalf("OutboxBacklog without outbox mode = %v, want ErrOutboxOff", err)
	}
	before := time.Now()
	for i := 0; i < 3; i++ {
		if err := e.db.Create(&Order{Status: "x"}).Error; err != nil {
			t.Fatal(err)
		}
	}
	b, err := e.p.OutboxBacklog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Rows != 3 || b.Oldest.Before(before.Add(-time.Second)) || b.Oldest.After(time.Now()) || b.Age < 0 {
		t.Fatalf("backlog = %+v, want 3 rows, oldest after %v", b, before)
	}
	waitFor(t, "backlog gauge at 3 and a warning logged", func() bool {
		logged := strings.Contains(logBuf.String(), "outbox backlog is old")
		return metric(t, reg, "telegraphy_outbox_backlog_rows") == 3 && logged &&
			metric(t, reg, "telegraphy_outbox_oldest_age_seconds") > 0
	})
	if rec.Len() != 0 {
		t.Fatalf("published while the broker refuses: %s", rec)
	}
	rec.FailWith(nil)
	waitFor(t, "backlog drained", func() bool {
		b, err := e.p.OutboxBacklog(context.Background())
		return err == nil && b.Rows == 0 && rec.Len() == 3 &&
			metric(t, reg, "telegraphy_outbox_published_total") == 3
	})
	if got := metric(t, reg, "telegraphy_outbox_relay_leader"); got != 1 {
		t.Fatalf("relay_leader gauge = %v, want 1", got)
	}
}

// metric returns the value of the gauge or counter name in reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, cond, what)
}

// TestOutboxRedisOutage publishes through the Redis broker, whose Publish
// only queues: while Redis is down the relay cannot confirm its batch, so
// the rows stay in the outbox; once Redis is back they all reach the
// channel's history, in order, once each.
func TestOutboxRedisOutage(t *testing.T) {
	// Redis keeps its data in an append-only file across the outage.
	srv := testenv.StartRedisWith(t, true)
	bus, err := redisbroker.New(redisbroker.Config{URL: srv.URL, MaxRetryDelay: 200 * time.Millisecond,
		ErrorHandler: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	e := openOutbox(t, sqliteDialector(t), nil, telegraphy.Config{Broker: bus, ErrorHandler: func(error) {},
		Logger: slog.New(slog.NewTextHandler(discard{}, nil)),
		Outbox: telegraphy.OutboxConfig{Enabled: true, PollInterval: 50 * time.Millisecond, BatchSize: 40}})

	if err := e.db.Create(&Order{Status: "before"}).Error; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first event relayed", func() bool { return outboxRows(t, e.db) == 0 })
	// The channel is watched from here on, as a hub does when a client
	// subscribes, so it keeps history.
	start, err := bus.History(context.Background(), "telegraphy_test.Order", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	const n = 100
	createDuring(t, e.db, n)
	if got := outboxRows(t, e.db); got < n {
		t.Fatalf("outbox holds %d rows while Redis is down, want at least %d", got, n)
	}
	srv.Start()
	waitFor(t, "outbox drained after Redis came back", func() bool { return outboxRows(t, e.db) == 0 })
	// The history holds exactly the events committed during the outage,
	// in order, after the position taken before it.
	checkDuring(t, bus, start.Position, n, true)
}

// createDuring creates n orders with status "during-0", "during-1"...
func createDuring(t testing.TB, db *gorm.DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := db.Create(&Order{Status: fmt.Sprintf("during-%d", i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// checkDuring checks that the order channel's history after start holds
// exactly the n orders of createDuring, in order, once each, and with
// offsets, at offsets 1 to n.
func checkDuring(t testing.TB, b broker.Broker, start broker.Position, n int, offsets bool) {
	t.Helper()
	hres, err := b.History(context.Background(), "telegraphy_test.Order", &start)
	if err != nil {
		t.Fatal(err)
	}
	if !hres.Recovered || len(hres.Publications) != n {
		t.Fatalf("history after the outage: recovered=%v, %d publications, want %d", hres.Recovered, len(hres.Publications), n)
	}
	for i, pub := range hres.Publications {
		var ev events.Event
		if err := json.Unmarshal(pub.Data, &ev); err != nil {
			t.Fatal(err)
		}
		var o Order
		_ = json.Unmarshal(ev.Data, &o)
		if want := fmt.Sprintf("during-%d", i); o.Status != want || (offsets && pub.Offset != uint64(i+1)) {
			t.Fatalf("publication %d: offset %d status %q, want status %q (offset %d)", i, pub.Offset, o.Status, want, i+1)
		}
	}
}

// TestOutboxRecorderAroundRedis checks that a broker.Recorder wrapped
// around the Redis broker, whose Publish only queues, does not make the
// relay take a publication as delivered: while Redis is down the relay
// hands at most one batch to the broker and deletes no row; once Redis is
// back every event reaches the channel's history, in order, once each.
func TestOutboxRecorderAroundRedis(t *testing.T) {
	// Redis keeps its data in an append-only file across the outage.
	srv := testenv.StartRedisWith(t, true)
	bus, err := redisbroker.New(redisbroker.Config{URL: srv.URL, MaxRetryDelay: 200 * time.Millisecond,
		ErrorHandler: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	rec := broker.NewRecorder(bus)
	t.Cleanup(func() {
		// Close flushes what the broker queued until ctx is done: bounded,
		// in case the test failed while Redis was down.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rec.Close(ctx)
	})
	if broker.PublishesSynchronously(rec) {
		t.Fatal("a Recorder around the Redis broker reports a synchronous Publish")
	}
	const batch = 10
	e := openOutbox(t, sqliteDialector(t), nil, telegraphy.Config{Broker: rec, ErrorHandler: func(error) {},
		Logger: slog.New(slog.NewTextHandler(discard{}, nil)),
		Outbox: telegraphy.OutboxConfig{Enabled: true, PollInterval: 20 * time.Millisecond, BatchSize: batch}})
	if err := e.db.Create(&Order{Status: "before"}).Error; err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return outboxRows(t, e.db) == 0 }, "first event relayed")
	// The channel is watched from here on, as a hub does when a client
	// subscribes, so it keeps history.
	start, err := rec.History(context.Background(), "telegraphy_test.Order", nil)
	if err != nil {
		t.Fatal(err)
	}
	orders := func() int {
		n := 0
		for _, ev := range rec.Events() {
			if strings.HasPrefix(ev.Name, "telegraphy_test.Order") {
				n++
			}
		}
		return n
	}
	before := orders()
	recorded := func() int { return orders() - before }
	srv.Stop()
	const n = 3 * batch
	createDuring(t, e.db, n)
	testenv.WaitFor(t, 30*time.Second, func() bool { return recorded() > 0 }, "the relay handing a batch to the broker")
	// Let time pass on purpose: a relay that took the queued batch as
	// delivered would, within a few rounds, delete its rows and hand the
	// next batches over; nothing must happen while Redis is down.
	time.Sleep(300 * time.Millisecond)
	if got := outboxRows(t, e.db); got != n {
		t.Fatalf("outbox holds %d rows while Redis is down, want %d: rows deleted before Redis had them", got, n)
	}
	if got := recorded(); got > batch {
		t.Fatalf("relay handed %d events to the broker while Redis is down, want at most one batch (%d)", got, batch)
	}
	srv.Start()
	testenv.WaitFor(t, 30*time.Second, func() bool { return outboxRows(t, e.db) == 0 }, "outbox drained after Redis came back")
	checkDuring(t, rec, start.Position, n, false)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestOutboxUnpublishableRowDropped: rows no broker would take (written
// by something else than the plugin, or damaged) are dropped with an
// error naming them; the rows around them are published, in order.
func TestOutboxUnpublishableRowDropped(t *testing.T) {
	rec := broker.NewRecorder(nil)
	var logBuf testenv.Buffer
	var mu sync.Mutex
	var errs []string
	reg := prometheus.NewRegistry()
	e := openOutbox(t, sqliteDialector(t), nil, telegraphy.Config{Broker: rec,
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil)),
		ErrorHandler: func(err error) {
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		},
		Outbox: telegraphy.OutboxConfig{Enabled: true, PollInterval: 10 * time.Millisecond, Registerer: reg}})
	// The relay is idle: nothing wakes it until the first create.
	if err := e.db.Create(&Order{Status: "first"}).Error; err != nil {
		t.Fatal(err)
	}
	raw := e.db.Session(&gorm.Session{NewDB: true}).Table(telegraphy.DefaultOutboxTable)
	for _, row := range []map[string]any{
		{"event_id": "not-json", "channels": "[oops", "data": []byte("{}"), "created_ns": 1},
		{"event_id": "no-channels", "channels": "[]", "data": []byte("{}"), "created_ns": 1},
		{"event_id": "bad-channel", "channels": `["a\u0001b"]`, "data": []byte("{}"), "created_ns": 1},
	} {
		if err := raw.Create(row).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := e.db.Create(&Order{Status: "second"}).Error; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both creates published and the outbox empty", func() bool {
		return rec.Len() == 2 && outboxRows(t, e.db) == 0
	})
	var got []string
	for _, ev := range rec.Events() {
		var o Order
		if err := json.Unmarshal(ev.Data, &o); err != nil {
			t.Fatal(err)
		}
		got = append(got, o.Status)
	}
	if fmt.Sprint(got) != "[first second]" {
		t.Fatalf("published %v, want [first second]", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 3 {
		t.Fatalf("error handler got %d errors, want 3: %q", len(errs), errs)
	}
	for i, want := range []string{`(event "not-json") cannot be published`, `(event "no-channels")`, `(event "bad-channel")`} {
		if !strings.Contains(errs[i], want) {
			t.Errorf("error %d = %q, want it to name %s", i, errs[i], want)
		}
	}
	if !strings.Contains(logBuf.String(), "outbox row dropped") || !strings.Contains(logBuf.String(), "[oops") {
		t.Errorf("log does not show the dropped rows:\n%s", logBuf.String())
	}
	if n := metric(t, reg, "telegraphy_outbox_rejected_total"); n != 3 {
		t.Errorf("rejected_total = %v, want 3", n)
	}
	if n := metric(t, reg, "telegraphy_outbox_published_total"); n != 2 {
		t.Errorf("published_total = %v, want 2", n)
	}
}
