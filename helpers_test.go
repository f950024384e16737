package telegraphy_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Order is the main test model.
type Order struct {
	ID     uint   `json:"id"`
	Status string `json:"status" gorm:"size:32"`
	Total  int    `json:"total"`
	Note   string `json:"note" gorm:"size:64"`
	Secret string `json:"-" gorm:"size:64"`
}

// Doc is soft-deletable.
type Doc struct {
	ID        uint           `json:"id"`
	Title     string         `json:"title" gorm:"size:64"`
	DeletedAt gorm.DeletedAt `json:"deleted_at"`
}

type dialect struct {
	name string
	open func(t testing.TB) gorm.Dialector
}

func sqliteDialector(t testing.TB) gorm.Dialector {
	return sqlite.Open(filepath.Join(t.TempDir(), "test.db") + "?_journal_mode=WAL&_busy_timeout=5000")
}

var sqliteOnly = []dialect{{"sqlite", sqliteDialector}}

var allDialects = []dialect{
	{"sqlite", sqliteDialector},
	{"postgres", func(t testing.TB) gorm.Dialector { return postgres.Open(testenv.PostgresDSN(t)) }},
	{"mysql", func(t testing.TB) gorm.Dialector { return mysql.Open(testenv.MySQLDSN(t)) }},
}

type env struct {
	db  *gorm.DB
	rec *broker.Recorder
	p   *telegraphy.Plugin
}

// setup opens d with gcfg, migrates the test models, then installs a
// plugin publishing to a Recorder, with Order and Doc registered.
func setup(t testing.TB, d dialect, gcfg *gorm.Config, pcfg telegraphy.Config) env {
	t.Helper()
	db := openDB(t, d.open(t), gcfg, &Order{}, &Doc{})
	rec := broker.NewRecorder(nil)
	if pcfg.Broker == nil {
		pcfg.Broker = rec
	}
	p := telegraphy.New(pcfg)
	for _, m := range []any{Order{}, &Doc{}} {
		if err := p.Register(m, events.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Use(p); err != nil {
		t.Fatalf("use: %v", err)
	}
	return env{db: db, rec: rec, p: p}
}

// ev is an expected event. Zero fields other than Type are asserted to be
// absent.
type ev struct {
	Name    string
	Type    string
	PK      any
	Data    any
	Changed []string
	Soft    bool
	Count   int64
}

func norm(t testing.TB, v any) any {
	t.Helper()
	if v == nil {
		return nil
	}
	var b []byte
	switch x := v.(type) {
	case json.RawMessage:
		b = x
	case string:
		b = []byte(x)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return out
}

func describe(evs []events.Event) string {
	var sb strings.Builder
	for _, e := range evs {
		b, _ := json.Marshal(struct {
			Name string
			Meta events.Meta
			Data json.RawMessage
		}{e.Name, events.Meta{EventType: e.Meta.EventType, PK: e.Meta.PK, Changed: e.Meta.Changed, Soft: e.Meta.Soft, Count: e.Meta.Count}, e.Data})
		sb.WriteString("\n  ")
		sb.Write(b)
	}
	return sb.String()
}

// expect asserts that exactly want was published since the last Reset, in
// order, then resets the recorder.
func expect(t testing.TB, rec *broker.Recorder, want ...ev) {
	t.Helper()
	got := rec.Events()
	rec.Reset()
	if len(got) != len(want) {
		t.Fatalf("published %d events, want %d:%s", len(got), len(want), describe(got))
	}
	for i, w := range want {
		g := got[i]
		name := w.Name
		if name == "" {
			name = "telegraphy_test.Order"
		}
		pk := norm(t, w.PK)
		if g.Name != name || g.Meta.EventType != w.Type || !reflect.DeepEqual(norm(t, g.Meta.PK), pk) ||
			!reflect.DeepEqual(g.Meta.Changed, w.Changed) || g.Meta.Soft != w.Soft || g.Meta.Count != w.Count ||
			!reflect.DeepEqual(norm(t, g.Data), norm(t, w.Data)) {
			t.Fatalf("event %d:\n got %s\nwant %+v", i, describe(got[i:i+1]), w)
		}
		if g.Meta.ID == "" || g.Meta.Timestamp == "" {
			t.Fatalf("event %d without id or timestamp: %+v", i, g.Meta)
		}
	}
}

func order(id uint, status string, total int, note string) map[string]any {
	return map[string]any{"id": id, "status": status, "total": total, "note": note}
}

// rows returns the orders in the table, by id.
func rows(t testing.TB, db *gorm.DB) []Order {
	t.Helper()
	var out []Order
	if err := db.Session(&gorm.Session{NewDB: true}).Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// addModel gives e a fresh table for model (dropped first: the server's
// databases outlive a test) and registers it with opts.
func addModel(t testing.TB, e env, model any, opts events.Options) {
	t.Helper()
	if err := e.db.Migrator().DropTable(model); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AutoMigrate(model); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Register(model, opts); err != nil {
		t.Fatal(err)
	}
}

// concurrently runs do(w, i) for i from 0 to each-1 in each of workers
// goroutines, and fails t with the first error once all have stopped (a
// goroutine stops at its first error).
func concurrently(t testing.TB, workers, each int, do func(w, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := do(w, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// openDB opens dl with gcfg (nil means the defaults; a nil Logger means
// none), closes it when the test ends and migrates models.
func openDB(t testing.TB, dl gorm.Dialector, gcfg *gorm.Config, models ...any) *gorm.DB {
	t.Helper()
	if gcfg == nil {
		gcfg = &gorm.Config{}
	}
	if gcfg.Logger == nil {
		gcfg.Logger = logger.Discard
	}
	db, err := gorm.Open(dl, gcfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlDB.Close() })
	if err := db.AutoMigrate(models...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}
