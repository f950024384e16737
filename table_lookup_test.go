package telegraphy_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"gorm.io/gorm"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// Tenant's table is tenants in the schema tenantSchema, which the role
// writing below may not use.
type Tenant struct {
	ID   uint   `json:"id"`
	Name string `json:"name" gorm:"size:16"`
}

var tenantSchema = "tgpriv"

func (Tenant) TableName() string { return tenantSchema + ".tenants" }

// TestOtherTableLookupKeepsTransaction: in a PostgreSQL transaction, a
// create through db.Table("tenants") (the table of that name on the search
// path, which the role may write) succeeds as it does without the plugin:
// telling that table from the model's (in a schema the role may not use)
// sends nothing that fails and would abort the transaction. The write is
// to another table than the model's: no event.
func TestOtherTableLookupKeepsTransaction(t *testing.T) {
	d := stDialect("postgres")
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "tg_lookup_" + hex.EncodeToString(b)
	tenantSchema = "tgpriv_" + hex.EncodeToString(b)
	run := func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SET LOCAL ROLE " + role).Error; err != nil {
				return err
			}
			if err := tx.Table("tenants").Create(&Tenant{ID: 1, Name: "a"}).Error; err != nil {
				return err
			}
			return tx.Exec("SELECT 1").Error
		})
	}
	prepare := func(db *gorm.DB) {
		t.Helper()
		for _, q := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + tenantSchema,
			"CREATE TABLE IF NOT EXISTS " + tenantSchema + ".tenants (id bigint primary key, name text)",
			"CREATE TABLE tenants (id bigint primary key, name text)",
			"GRANT USAGE ON SCHEMA " + currentSchema(t, db) + " TO " + role,
			"GRANT ALL ON tenants TO " + role,
		} {
			if err := db.Exec(q).Error; err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		t.Cleanup(func() { db.Exec("DROP OWNED BY " + role) })
	}
	plain := openDB(t, d.open(t), nil)
	if err := plain.Exec("CREATE ROLE " + role).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		plain.Exec("DROP SCHEMA IF EXISTS " + tenantSchema + " CASCADE")
		plain.Exec("DROP ROLE IF EXISTS " + role)
	})
	prepare(plain)
	if err := run(plain); err != nil {
		t.Fatalf("without the plugin: %v", err)
	}

	e := setup(t, d, nil, telegraphy.Config{})
	if err := e.p.Register(&Tenant{}, events.Options{Name: "tenant"}); err != nil {
		t.Fatal(err)
	}
	prepare(e.db)
	if err := run(e.db); err != nil {
		t.Errorf("with the plugin: %v", err)
	}
	var n int64
	e.db.Table("tenants").Count(&n)
	if n != 1 {
		t.Errorf("%d rows in tenants, want 1", n)
	}
	expect(t, e.rec)
}

func currentSchema(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var schema string
	if err := db.Raw("SELECT current_schema()").Scan(&schema).Error; err != nil {
		t.Fatal(err)
	}
	return schema
}
