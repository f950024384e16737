package telegraphy_test

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// openWith opens d with gcfg and migrates Order, without the plugin.
func openWith(t *testing.T, d dialect, gcfg *gorm.Config) *gorm.DB {
	t.Helper()
	gcfg.Logger = logger.Discard
	if testing.Verbose() {
		gcfg.Logger = logger.Default.LogMode(logger.Info)
	}
	return openDB(t, d.open(t), gcfg, &Order{})
}

// use installs a plugin publishing to a new Recorder, Order registered.
func use(t *testing.T, db *gorm.DB) (*telegraphy.Plugin, *broker.Recorder) {
	t.Helper()
	rec := broker.NewRecorder(nil)
	p := telegraphy.New(telegraphy.Config{Broker: rec})
	if err := p.Register(Order{}, events.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatalf("use: %v", err)
	}
	return p, rec
}

func typeName(v any) string { return reflect.TypeOf(v).String() }

// TestPoolKeepsItsTypes: after db.Use the DB's connection pool, and the
// connection of every transaction, are what GORM made them, with and
// without PrepareStmt (global or per session); db.DB() returns the same
// *sql.DB with its settings; prepared statements are cached and reused
// inside transactions; and the events are exactly those of the committed
// work.
func TestPoolKeepsItsTypes(t *testing.T) {
	cases := []struct {
		name    string
		gcfg    gorm.Config
		session bool // PrepareStmt through db.Session
		pool    string
		tx      string
	}{
		{name: "plain", pool: "*sql.DB", tx: "*sql.Tx"},
		{name: "PrepareStmt global", gcfg: gorm.Config{PrepareStmt: true}, pool: "*gorm.PreparedStmtDB", tx: "*gorm.PreparedStmtTX"},
		{name: "PrepareStmt session", session: true, pool: "*gorm.PreparedStmtDB", tx: "*gorm.PreparedStmtTX"},
	}
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					gcfg := c.gcfg
					db := openWith(t, d, &gcfg)
					before, _ := db.DB()
					before.SetMaxOpenConns(7)
					poolBefore := db.ConnPool
					_, rec := use(t, db)
					if db.ConnPool != poolBefore {
						t.Fatalf("db.ConnPool changed from %T to %T", poolBefore, db.ConnPool)
					}
					after, err := db.DB()
					if err != nil || after != before {
						t.Fatalf("db.DB() = %p, %v; want the same *sql.DB %p", after, err, before)
					}
					if n := after.Stats().MaxOpenConnections; n != 7 {
						t.Fatalf("MaxOpenConnections = %d after db.Use, want 7", n)
					}
					s := db
					if c.session {
						s = db.Session(&gorm.Session{PrepareStmt: true})
					}
					if got := typeName(s.Statement.ConnPool); got != c.pool {
						t.Fatalf("Statement.ConnPool is %s, want %s", got, c.pool)
					}
					var ps *gorm.PreparedStmtDB
					if c.pool == "*gorm.PreparedStmtDB" {
						ps = s.Statement.ConnPool.(*gorm.PreparedStmtDB)
					}

					insertCached := func() bool {
						return slices.ContainsFunc(stmtKeys(ps), func(k string) bool { return strings.HasPrefix(k, "INSERT") })
					}
					var keys int
					for i, status := range []string{"a", "b"} {
						err := s.Transaction(func(tx *gorm.DB) error {
							if got := typeName(tx.Statement.ConnPool); got != c.tx {
								t.Errorf("transaction's Statement.ConnPool is %s, want %s", got, c.tx)
							}
							if ps != nil {
								if ptx, ok := tx.Statement.ConnPool.(*gorm.PreparedStmtTX); !ok || !sameStmtCache(ptx.PreparedStmtDB, ps) {
									t.Errorf("the transaction does not use the DB's statement cache")
								}
								if _, ok := tx.Statement.ConnPool.(*gorm.PreparedStmtTX).Tx.(*sql.Tx); !ok {
									t.Errorf("PreparedStmtTX.Tx is %T, want *sql.Tx", tx.Statement.ConnPool.(*gorm.PreparedStmtTX).Tx)
								}
							}
							if err := tx.Create(&Order{Status: status, Total: i + 1}).Error; err != nil {
								return err
							}
							if ps != nil && i == 0 && !insertCached() {
								t.Errorf("INSERT not in the statement cache inside the transaction: %q", stmtKeys(ps))
							}
							tx.Transaction(func(tx2 *gorm.DB) error {
								tx2.Model(&Order{ID: uint(i + 1)}).Update("total", 99)
								return errAbort
							})
							return tx.Model(&Order{ID: uint(i + 1)}).Update("note", "n").Error
						})
						if err != nil {
							t.Fatal(err)
						}
						if ps != nil {
							if i == 0 {
								keys = len(stmtKeys(ps))
							} else if n := len(stmtKeys(ps)); n != keys {
								t.Errorf("the second transaction prepared %d more statements; want them reused: %q", n-keys, stmtKeys(ps))
							}
						}
						id := uint(i + 1)
						expect(t, rec, created(id, status, i+1),
							ev{Type: "update", PK: id, Data: order(id, status, i+1, "n"), Changed: []string{"note"}})
					}

					// Begin, as GORM's TestPreparedStmtLruFromTransaction uses it.
					tx := s.Begin()
					if got := typeName(tx.Statement.ConnPool); got != c.tx {
						t.Fatalf("Begin's Statement.ConnPool is %s, want %s", got, c.tx)
					}
					if got := typeName(tx.ConnPool); got != typeName(db.ConnPool) && !c.session {
						t.Fatalf("Begin's ConnPool is %s", got)
					}
					if err := tx.Create(&Order{Status: "c", Total: 3}).Error; err != nil {
						t.Fatal(err)
					}
					if rec.Len() != 0 {
						t.Fatalf("published before commit: %s", rec)
					}
					if err := tx.Commit().Error; err != nil {
						t.Fatal(err)
					}
					expect(t, rec, created(3, "c", 3))

					// db.Connection: a *sql.Conn of the same pool.
					err = s.Connection(func(conn *gorm.DB) error {
						if got := typeName(conn.Statement.ConnPool); got != "*sql.Conn" {
							t.Errorf("Connection's Statement.ConnPool is %s", got)
						}
						return conn.Create(&Order{Status: "d", Total: 4}).Error
					})
					if err != nil {
						t.Fatal(err)
					}
					err = s.Connection(func(conn *gorm.DB) error {
						return conn.Transaction(func(tx *gorm.DB) error {
							if got := typeName(tx.Statement.ConnPool); got != "*sql.Tx" {
								t.Errorf("transaction in Connection: Statement.ConnPool is %s, want *sql.Tx", got)
							}
							return tx.Model(&Order{ID: 4}).Update("status", "e").Error
						})
					})
					if err != nil {
						t.Fatal(err)
					}
					expect(t, rec, created(4, "d", 4),
						ev{Type: "update", PK: 4, Data: order(4, "e", 4, ""), Changed: []string{"status"}})
					if got := rows(t, db); len(got) != 4 {
						t.Fatalf("rows %+v", got)
					}
				})
			}
		})
	}
}

// TestUntracked: a write through a connection that does not come from the
// DB's pool fails before it runs, and so does Emit; a write of another
// table than the model's (db.Table) runs as without the plugin.
func TestUntracked(t *testing.T) {
	t.Run("transaction of another *sql.DB", func(t *testing.T) {
		e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
		other := openWith(t, sqliteOnly[0], &gorm.Config{})
		otherDB, _ := other.DB()
		sqlTx, err := otherDB.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer sqlTx.Rollback()
		s := e.db.WithContext(context.Background()) // a Statement of its own
		s.Statement.ConnPool = sqlTx
		if err := s.Create(&Order{Status: "a"}).Error; !errors.Is(err, telegraphy.ErrUntracked) {
			t.Fatalf("Create = %v, want ErrUntracked", err)
		}
		if err := e.p.Emit(s, "x", "y", nil); !errors.Is(err, telegraphy.ErrUntracked) {
			t.Fatalf("Emit = %v, want ErrUntracked", err)
		}
		var n int
		if err := sqlTx.QueryRow("SELECT count(*) FROM orders").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows written (%v)", n, err)
		}
		// A write of another table than the model's is not the plugin's
		// to announce: it runs as without the plugin.
		if _, err := sqlTx.Exec("CREATE TABLE orders_archive AS SELECT * FROM orders"); err != nil {
			t.Fatal(err)
		}
		if err := s.Table("orders_archive").Create(&Order{ID: 7, Status: "b"}).Error; err != nil {
			t.Fatalf("Create of another table = %v, want nil", err)
		}
		if err := sqlTx.QueryRow("SELECT count(*) FROM orders_archive WHERE id = 7").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d rows written to orders_archive (%v), want 1", n, err)
		}
		expect(t, e.rec)
	})
	t.Run("connection held while db.Use ran", func(t *testing.T) {
		db := openWith(t, sqliteOnly[0], &gorm.Config{})
		sqlDB, _ := db.DB()
		held, err := sqlDB.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		p, rec := use(t, db)
		s := db.WithContext(context.Background()) // a Statement of its own
		s.Statement.ConnPool = held
		err = s.Transaction(func(tx *gorm.DB) error { return tx.Create(&Order{Status: "a"}).Error })
		if !errors.Is(err, telegraphy.ErrUntracked) {
			t.Fatalf("Create in a transaction on a connection opened before db.Use = %v, want ErrUntracked", err)
		}
		if err := p.Emit(s, "x", "y", nil); !errors.Is(err, telegraphy.ErrUntracked) {
			t.Fatalf("Emit = %v, want ErrUntracked", err)
		}
		if n := len(rows(t, db)); n != 0 {
			t.Fatalf("%d rows written", n)
		}
		expect(t, rec)
		// Every other connection is followed.
		if err := db.Create(&Order{Status: "b"}).Error; err != nil {
			t.Fatal(err)
		}
		expect(t, rec, created(1, "b", 0))
	})
	t.Run("Emit on a DB without the plugin", func(t *testing.T) {
		e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
		other := openWith(t, sqliteOnly[0], &gorm.Config{})
		if err := e.p.Emit(other, "x", "y", nil); !errors.Is(err, telegraphy.ErrNotInitialized) {
			t.Fatalf("Emit = %v, want ErrNotInitialized", err)
		}
	})
}

// TestSessionStateKept: the connections a DB opened before db.Use keep
// serving it, with their session state: a private SQLite :memory:
// database and a PRAGMA set on the connection.
func TestSessionStateKept(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(":memory:"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	if err := db.AutoMigrate(&Order{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("PRAGMA foreign_keys = ON").Error; err != nil {
		t.Fatal(err)
	}
	_, rec := use(t, db)
	if err := db.Create(&Order{Status: "a", Total: 1}).Error; err != nil {
		t.Fatalf("Create in the :memory: database migrated before db.Use: %v", err)
	}
	expect(t, rec, created(1, "a", 1))
	var fk int
	if err := db.Raw("PRAGMA foreign_keys").Scan(&fk).Error; err != nil || fk != 1 {
		t.Fatalf("PRAGMA foreign_keys = %d, %v after db.Use; want 1", fk, err)
	}
}

// TestSQLTxFollowed: a transaction begun through database/sql on the DB's
// *sql.DB, and raw SAVEPOINT statements in it, are followed like GORM's.
func TestSQLTxFollowed(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			sqlDB, _ := e.db.DB()
			for _, commit := range []bool{true, false} {
				sqlTx, err := sqlDB.BeginTx(context.Background(), nil)
				if err != nil {
					t.Fatal(err)
				}
				s := e.db.WithContext(context.Background()) // a Statement of its own
				s.Statement.ConnPool = sqlTx
				if err := s.Create(&Order{Status: "a", Total: 1}).Error; err != nil {
					t.Fatal(err)
				}
				if _, err := sqlTx.Exec("SAVEPOINT sp1"); err != nil {
					t.Fatal(err)
				}
				if err := s.Model(&Order{}).Where("status = ?", "a").Update("total", 2).Error; err != nil {
					t.Fatal(err)
				}
				if _, err := sqlTx.Exec("ROLLBACK TO SAVEPOINT sp1"); err != nil {
					t.Fatal(err)
				}
				if e.rec.Len() != 0 {
					t.Fatalf("published before commit: %s", e.rec)
				}
				if !commit {
					if err := sqlTx.Rollback(); err != nil {
						t.Fatal(err)
					}
					expect(t, e.rec)
					continue
				}
				if err := sqlTx.Commit(); err != nil {
					t.Fatal(err)
				}
				got := rows(t, e.db)
				if len(got) != 1 || got[0].Total != 1 {
					t.Fatalf("rows %+v", got)
				}
				expect(t, e.rec, created(got[0].ID, "a", 1))
			}
		})
	}
}
