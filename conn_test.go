package telegraphy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"
	"weak"

	sqlite3 "github.com/mattn/go-sqlite3"
	"github.com/telegraphy-go/telegraphy/broker"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func TestSavepointOp(t *testing.T) {
	cases := []struct {
		q    string
		op   spOp
		name string
	}{
		{"SAVEPOINT sp1", spSet, "sp1"},
		{"  savepoint `sp1`;", spSet, "sp1"},
		{"\n\tSAVEPOINT \"a\"", spSet, "a"},
		{"ROLLBACK TO SAVEPOINT sp1", spRollback, "sp1"},
		{"rollback to sp2", spRollback, "sp2"},
		{"RELEASE SAVEPOINT sp1", spRelease, "sp1"},
		{"\u00a0SAVEPOINT x", spSet, "x"},
		{"ROLLBACK", spNone, ""},
		{"SELECT 1", spNone, ""},
		{"SAVEPOINT", spNone, ""},
		{"INSERT INTO t VALUES (1)", spNone, ""},
		{"UPDATE t SET a = 1", spNone, ""},
		{"  ", spNone, ""},
		{"", spNone, ""},
	}
	for _, c := range cases {
		if op, name := savepointOp(c.q); op != c.op || name != c.name {
			t.Errorf("savepointOp(%q) = %v %q, want %v %q", c.q, op, name, c.op, c.name)
		}
	}
}

// TestFollowDB checks the one place that writes an unexported field of
// database/sql: the connector of a *sql.DB. It fails when database/sql
// changes that field, and shows what users keep: the *sql.DB, its driver,
// its settings, Close.
func TestFollowDB(t *testing.T) {
	gdb, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "f.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(3)
	drv := sqlDB.Driver()
	if sqlDB.Stats().Idle != 1 {
		t.Fatalf("idle connections before: %d, want the one gorm.Open pinged", sqlDB.Stats().Idle)
	}
	if err := followDB(sqlDB); err != nil {
		t.Fatal(err)
	}
	if err := followDB(sqlDB); err != nil {
		t.Fatal(err)
	}
	f := reflect.ValueOf(sqlDB).Elem().FieldByName("connector")
	c, ok := (*(*driver.Connector)(unsafe.Pointer(f.UnsafeAddr()))).(*connector)
	if !ok {
		t.Fatalf("connector is %s", f.Elem().Type())
	}
	if _, twice := c.Connector.(*connector); twice {
		t.Fatal("connector installed twice")
	}
	if s := sqlDB.Stats(); s.Idle != 1 || s.OpenConnections != 1 || s.MaxOpenConnections != 3 {
		t.Fatalf("stats after: %+v, want the old connection kept and the settings too", s)
	}
	if sqlDB.Driver() != drv {
		t.Fatalf("Driver() changed to %T", sqlDB.Driver())
	}
	conn, err := sqlDB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := sqlDB.Stats(); s.OpenConnections != 1 {
		t.Fatalf("stats: %+v, want the idle connection reused", s)
	}
	err = conn.Raw(func(dc any) error {
		u, ok := dc.(interface{ Unwrap() driver.Conn })
		if !ok {
			return fmt.Errorf("driver connection %T is not wrapped", dc)
		}
		if got := fmt.Sprintf("%T", u.Unwrap()); got != "*sqlite3.SQLiteConn" {
			return fmt.Errorf("Unwrap() = %T", u.Unwrap())
		}
		return nil
	})
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !isFollowed(sqlDB) {
		t.Fatal("not recorded")
	}
	if err := sqlDB.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sqlDB.Ping(); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

// TestFollowedDBNotKeptAlive: what the plugin records of a database
// handle (that it is followed, what its server answered) does not keep
// the handle alive, and goes once the app has dropped it.
func TestFollowedDBNotKeptAlive(t *testing.T) {
	key := func() weak.Pointer[sql.DB] {
		gdb, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "w.db")), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		if err := gdb.Use(New(Config{Broker: broker.NewMemory()})); err != nil {
			t.Fatal(err)
		}
		sqlDB, err := gdb.DB()
		if err != nil {
			t.Fatal(err)
		}
		if !isFollowed(sqlDB) {
			t.Fatal("not followed after Use")
		}
		isolationVariable.Store(serverKey(gdb), "transaction_isolation")
		if err := sqlDB.Close(); err != nil {
			t.Fatal(err)
		}
		return weak.Make(sqlDB)
	}()
	held := func() bool {
		followed.Lock()
		_, ok := followed.dbs[key]
		followed.Unlock()
		_, asked := isolationVariable.Load(key)
		return ok || asked
	}
	deadline := time.Now().Add(10 * time.Second)
	for held() || key.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s of collections: DB alive %v, still recorded %v", key.Value() != nil, held())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStripeWaitBounded: a transaction waits for a record's stripe at most
// the given time, then commits without it instead of waiting forever (a
// COMMIT may itself wait for the transaction that waits for the stripe).
func TestStripeWaitBounded(t *testing.T) {
	s := newStripes()
	first := s.lock([]pendingMsg{{key: "a:1"}, {key: "a:2"}, {key: "a:1"}}, time.Second, slog.Default(), nil)
	if len(first) != 2 {
		t.Fatalf("held %v, want the two stripes of a:1 and a:2", first)
	}
	second := s.lock([]pendingMsg{{key: "a:2"}, {}}, 10*time.Millisecond, slog.New(slog.DiscardHandler), nil)
	if len(second) != 0 {
		t.Fatalf("held %v while another transaction holds it", second)
	}
	s.unlock(first)
	third := s.lock([]pendingMsg{{key: "a:2"}}, time.Second, slog.Default(), nil)
	if len(third) != 1 || third[0] != stripeOf("a:2") {
		t.Fatalf("held %v after the first let go", third)
	}
	s.unlock(third)
}

type bareConn struct{ driver.Conn }
type resetConn struct{ driver.Conn }
type validConn struct{ driver.Conn }
type bothConn struct{ driver.Conn }

func (resetConn) ResetSession(context.Context) error { return nil }
func (validConn) IsValid() bool                      { return true }
func (bothConn) ResetSession(context.Context) error  { return nil }
func (bothConn) IsValid() bool                       { return true }

// TestWrapConnInterfaces: the wrapper offers SessionResetter and Validator
// exactly where the driver's connection does (database/sql decides by them
// whether a connection survives a rollback on a cancelled context).
func TestWrapConnInterfaces(t *testing.T) {
	for _, ci := range []driver.Conn{bareConn{}, resetConn{}, validConn{}, bothConn{}} {
		w := wrapConn(ci)
		_, r := ci.(driver.SessionResetter)
		_, v := ci.(driver.Validator)
		_, wr := w.(driver.SessionResetter)
		_, wv := w.(driver.Validator)
		if r != wr || v != wv {
			t.Errorf("%T: wrapper resetter %v validator %v, driver %v %v", ci, wr, wv, r, v)
		}
		if u, ok := w.(interface{ Unwrap() driver.Conn }); !ok || u.Unwrap() != ci {
			t.Errorf("%T: Unwrap", ci)
		}
	}
}

// preparing counts the statements prepared on a real SQLite connection.
type preparing struct {
	driver.Conn
	prepared map[string]int
}

func (c *preparing) Prepare(query string) (driver.Stmt, error) {
	c.prepared[query]++
	return c.Conn.Prepare(query)
}

// TestStatementCacheKeepsHotStatements: the plugin's prepared reads are
// closed least recently used first, so a statement used between many
// others stays prepared, and the cache never holds more than its bound.
func TestStatementCacheKeepsHotStatements(t *testing.T) {
	raw, err := (&sqlite3.SQLiteDriver{}).Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	pc := &preparing{Conn: raw, prepared: map[string]int{}}
	c := &conn{Conn: pc}
	defer c.Close()
	ctx := context.Background()
	read := func(q string) {
		t.Helper()
		rows, err := c.cachedQuery(ctx, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const hot = "SELECT 0"
	for i := 1; i <= 3*readBackCacheSize; i++ {
		read(hot)
		read(fmt.Sprintf("SELECT %d", i))
		if len(c.stmts) > readBackCacheSize {
			t.Fatalf("%d statements prepared, more than %d", len(c.stmts), readBackCacheSize)
		}
	}
	if n := pc.prepared[hot]; n != 1 {
		t.Fatalf("the statement used between all others was prepared %d times, want 1", n)
	}
	if n := pc.prepared["SELECT 1"]; n != 1 {
		t.Fatalf("SELECT 1 prepared %d times before its second use, want 1", n)
	}
	read("SELECT 1") // closed long ago: prepared again
	if n := pc.prepared["SELECT 1"]; n != 2 {
		t.Fatalf("SELECT 1 prepared %d times after it was closed and used again, want 2", n)
	}
}
