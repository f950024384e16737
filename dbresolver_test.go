package telegraphy_test

import (
	"errors"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
)

// TestDBResolver: with gorm.io/plugin/dbresolver registered before or
// after the plugin, writes and their transactions go to the source, and
// the events follow the source's commits exactly as on a plain DB. The DB
// itself, the source and the replica are three PostgreSQL schemas.
func TestDBResolver(t *testing.T) {
	for _, resolverFirst := range []bool{false, true} {
		name := "plugin first"
		if resolverFirst {
			name = "dbresolver first"
		}
		t.Run(name, func(t *testing.T) {
			mainDSN, sourceDSN, replicaDSN := testenv.PostgresDSN(t), testenv.PostgresDSN(t), testenv.PostgresDSN(t)
			plain := map[string]*gorm.DB{}
			for role, dsn := range map[string]string{"main": mainDSN, "source": sourceDSN, "replica": replicaDSN} {
				db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				sqlDB, _ := db.DB()
				t.Cleanup(func() { sqlDB.Close() })
				if err := db.AutoMigrate(&Order{}); err != nil {
					t.Fatal(err)
				}
				plain[role] = db
			}
			db, err := gorm.Open(postgres.Open(mainDSN), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			resolver := dbresolver.Register(dbresolver.Config{
				Sources:  []gorm.Dialector{postgres.Open(sourceDSN)},
				Replicas: []gorm.Dialector{postgres.Open(replicaDSN)},
			})
			rec := broker.NewRecorder(nil)
			p := telegraphy.New(telegraphy.Config{Broker: rec})
			if err := p.Register(Order{}, events.Options{}); err != nil {
				t.Fatal(err)
			}
			first, second := gorm.Plugin(p), gorm.Plugin(resolver)
			if resolverFirst {
				first, second = second, first
			}
			if err := db.Use(first); err != nil {
				t.Fatal(err)
			}
			if err := db.Use(second); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				resolver.Call(func(pool gorm.ConnPool) error {
					if c, ok := pool.(interface{ Close() error }); ok {
						c.Close()
					}
					return nil
				})
				if sqlDB, err := db.DB(); err == nil {
					sqlDB.Close()
				}
			})

			// Autocommit writes: an implicit transaction on the source each.
			if err := db.Create(&Order{Status: "a", Total: 1}).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Model(&Order{ID: 1}).Update("status", "b").Error; err != nil {
				t.Fatal(err)
			}
			expect(t, rec, created(1, "a", 1),
				ev{Type: "update", PK: 1, Data: order(1, "b", 1, ""), Changed: []string{"status"}})

			// A transaction begun on the source, with a savepoint rolled back.
			err = db.Clauses(dbresolver.Write).Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Order{Status: "c", Total: 2}).Error; err != nil {
					return err
				}
				tx.Transaction(func(tx2 *gorm.DB) error {
					tx2.Model(&Order{ID: 2}).Update("total", 9)
					return errAbort
				})
				if rec.Len() != 0 {
					t.Errorf("published before commit: %s", rec)
				}
				return tx.Delete(&Order{ID: 1}).Error
			})
			if err != nil {
				t.Fatal(err)
			}
			expect(t, rec, created(2, "c", 2), ev{Type: "delete", PK: 1, Data: order(1, "b", 1, "")})

			// A rolled back transaction publishes nothing.
			err = db.Clauses(dbresolver.Write).Transaction(func(tx *gorm.DB) error {
				tx.Create(&Order{Status: "gone", Total: 3})
				return errAbort
			})
			if !errors.Is(err, errAbort) {
				t.Fatalf("Transaction = %v", err)
			}
			expect(t, rec)
			if err := p.Emit(db, "shop.Ping", "ping", 1); err != nil {
				t.Fatal(err)
			}
			expect(t, rec, ev{Name: "shop.Ping", Type: "ping", Data: 1})

			if got := rows(t, plain["source"]); len(got) != 1 || got[0] != (Order{ID: 2, Status: "c", Total: 2}) {
				t.Fatalf("source rows %+v", got)
			}
			for _, role := range []string{"main", "replica"} {
				if got := rows(t, plain[role]); len(got) != 0 {
					t.Fatalf("%s rows %+v, want none", role, got)
				}
			}
			// Reads go to the replica, as without the plugin.
			var n int64
			if err := db.Model(&Order{}).Count(&n).Error; err != nil || n != 0 {
				t.Fatalf("count through the resolver = %d, %v; want the replica's 0", n, err)
			}
		})
	}
}

// TestDBResolverOutbox: outbox mode refuses dbresolver, in either order,
// rather than let the relay read the outbox from a replica.
func TestDBResolverOutbox(t *testing.T) {
	for _, resolverFirst := range []bool{false, true} {
		db := openWith(t, sqliteOnly[0], &gorm.Config{})
		p := telegraphy.New(telegraphy.Config{Broker: broker.NewRecorder(nil), Outbox: telegraphy.OutboxConfig{Enabled: true, NoRelay: true}})
		resolver := dbresolver.Register(dbresolver.Config{Sources: []gorm.Dialector{sqliteDialector(t)}})
		var err error
		if resolverFirst {
			if err := db.Use(resolver); err != nil {
				t.Fatal(err)
			}
			err = db.Use(p)
		} else {
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			err = db.Use(resolver)
		}
		if !errors.Is(err, telegraphy.ErrOutboxResolver) {
			t.Fatalf("resolver first %v: Use = %v, want ErrOutboxResolver", resolverFirst, err)
		}
	}
}
