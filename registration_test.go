package telegraphy_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

type Customer struct {
	ID     uint    `json:"id"`
	Name   string  `json:"name"`
	Orders []Order `gorm:"foreignKey:Total"`
}

type NoKey struct{ Name string }

func TestRegisterErrors(t *testing.T) {
	p := telegraphy.New(telegraphy.Config{Broker: broker.NewRecorder(nil)})
	if err := p.Register(&Order{}, events.Options{Name: "shop.Order"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		model any
		opts  events.Options
		err   error
		text  string
	}{
		{"not a struct", 42, events.Options{}, telegraphy.ErrNotStruct, "int"},
		{"nil", nil, events.Options{}, telegraphy.ErrNotStruct, ""},
		{"unknown field in Fields", Doc{}, events.Options{Fields: []string{"Title", "Nope"}}, telegraphy.ErrUnknownField, `"Nope"`},
		{"unknown field in Exclude", Doc{}, events.Options{Exclude: []string{"secret"}}, telegraphy.ErrUnknownField, `"secret"`},
		{"duplicate, value after pointer", Order{}, events.Options{}, telegraphy.ErrDuplicate, "Order"},
		{"name taken", Doc{}, events.Options{Name: "shop.Order"}, telegraphy.ErrNameTaken, "shop.Order"},
		{"no primary key", NoKey{}, events.Options{}, telegraphy.ErrNoPrimaryKey, "NoKey"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.Register(c.model, c.opts)
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.text) || !strings.HasPrefix(err.Error(), "telegraphy: ") {
				t.Fatalf("Register = %v, want %v naming %q", err, c.err, c.text)
			}
		})
	}
	// Field names are accepted by Go name or JSON name.
	for _, names := range [][]string{{"Title"}, {"title"}, {"DeletedAt", "id"}} {
		q := telegraphy.New(telegraphy.Config{Broker: broker.NewRecorder(nil)})
		if err := q.Register(Doc{}, events.Options{Fields: names}); err != nil {
			t.Errorf("Fields %v: %v", names, err)
		}
	}
	if err := telegraphy.New(telegraphy.Config{}).Initialize(nil); !errors.Is(err, telegraphy.ErrNoBroker) {
		t.Errorf("Initialize without broker = %v", err)
	}
}

// TestNegativeConfigRefused: a negative value is an error naming the
// field, from Initialize (db.Use); zero means the default.
func TestNegativeConfigRefused(t *testing.T) {
	for _, c := range []struct {
		field string
		cfg   telegraphy.Config
	}{
		{"PublishTimeout", telegraphy.Config{PublishTimeout: -time.Second}},
		{"Outbox.BatchSize", telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, BatchSize: -1}}},
		{"Outbox.LeaseTTL", telegraphy.Config{Outbox: telegraphy.OutboxConfig{Enabled: true, LeaseTTL: -time.Second}}},
	} {
		c.cfg.Broker = broker.NewRecorder(nil)
		db, err := gorm.Open(sqliteDialector(t), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Use(telegraphy.New(c.cfg))
		if !errors.Is(err, telegraphy.ErrBadConfig) || !strings.Contains(err.Error(), "Config."+c.field+" is negative") {
			t.Errorf("%s negative: db.Use = %v, want ErrBadConfig naming the field", c.field, err)
		}
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	}
}

type money string

func (m money) MarshalJSON() ([]byte, error) { return []byte(m), nil }

type status int

func (s status) MarshalJSON() ([]byte, error) { return []byte(`"s` + string(rune('0'+s)) + `"`), nil }

type Rich struct {
	ID       uint           `json:"id"`
	At       time.Time      `json:"at"`
	Maybe    *string        `json:"maybe"`
	Nothing  *int           `json:"nothing"`
	NullS    sql.NullString `json:"null_s"`
	NullI    sql.NullInt64  `json:"null_i"`
	Blob     []byte         `json:"blob"`
	Price    money          `json:"price" gorm:"type:varchar(64)"`
	State    status         `json:"state"`
	Big      uint64         `json:"big"`
	Hidden   string         `json:"-"`
	NoTag    string
	Gone     gorm.DeletedAt `json:"gone"`
	Customer *Customer      `json:"customer" gorm:"foreignKey:ID"`
}

// TestEncoding checks the data of a create event field by field, as the
// browser would parse it.
func TestEncoding(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	if err := e.db.AutoMigrate(&Customer{}, &Rich{}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Register(Rich{}, events.Options{Name: "rich", Fields: []string{"ID", "at", "Maybe", "Nothing", "NullS", "NullI", "Blob", "Price", "State", "Big", "Hidden", "NoTag", "Gone", "Customer"}}); !errors.Is(err, telegraphy.ErrUnknownField) {
		// Associations are not columns.
		t.Fatalf("Register with an association in Fields = %v", err)
	}
	if err := e.p.Register(Rich{}, events.Options{Name: "rich", VerboseName: "Rich thing", Exclude: []string{"customer"}}); err == nil {
		t.Fatal("association accepted in Exclude")
	}
	if err := e.p.Register(Rich{}, events.Options{Name: "rich", VerboseName: "Rich thing",
		Fields: []string{"ID", "at", "Maybe", "Nothing", "NullS", "NullI", "Blob", "Price", "State", "Big", "Hidden", "NoTag", "Gone"}}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 17, 37, 3, 123456000, time.UTC)
	s := "yes"
	r := Rich{At: at, Maybe: &s, NullS: sql.NullString{String: "n", Valid: true}, Blob: []byte{1, 2, 255},
		Price: "19.900000000000000000001", State: 3, Big: 1<<53 + 1, Hidden: "secret", NoTag: "plain",
		Customer: &Customer{ID: 9, Name: "c"}}
	if err := e.db.Omit("Customer").Create(&r).Error; err != nil {
		t.Fatal(err)
	}
	msgs := e.rec.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	raw := string(msgs[0].Data)
	for _, want := range []string{
		`"data":{"id":1,"at":"2026-11-25T17:37:03.123456Z","maybe":"yes","nothing":null,"null_s":"n","null_i":null,"blob":"AQL/","price":19.900000000000000000001,"state":"s3","big":9007199254740993,"NoTag":"plain","gone":null}`,
		`"verbose_name":"Rich thing"`,
		`"name":"rich"`,
		`"pk":1`,
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("event %s\nlacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "secret") || strings.Contains(raw, "customer") {
		t.Errorf("hidden field or association sent: %s", raw)
	}
	if got := msgs[0].Channels; len(got) != 2 || got[0] != "rich" || got[1] != "rich:1" {
		t.Errorf("channels %v", got)
	}
}

// Profile supplies its own data and channels, and registers itself.
type Profile struct {
	UserID uint   `gorm:"primaryKey"`
	Slot   string `gorm:"primaryKey;size:16"`
	Bio    string
}

func (Profile) TelegraphyEvents() events.Options {
	return events.Options{
		Name:       "people.Profile",
		Operations: events.OpCreate | events.OpDelete,
		Channels:   func(m any) []string { return []string{"user:" + itoa(m.(*Profile).UserID)} },
	}
}

func (p *Profile) EventData() any { return map[string]string{"bio": strings.ToUpper(p.Bio)} }

func itoa(u uint) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + u%10)}, b...)
		u /= 10
		if u == 0 {
			return string(b)
		}
	}
}

// TestAutodiscoverEventDataChannels: a model with TelegraphyEvents is
// registered on first write; EventData, Channels, composite keys and
// Operations are honoured.
func TestAutodiscoverEventDataChannels(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	if err := e.db.AutoMigrate(&Profile{}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Create(&Profile{UserID: 17, Slot: "main", Bio: "hi"}).Error; err != nil {
		t.Fatal(err)
	}
	msgs := e.rec.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	if got := strings.Join(msgs[0].Channels, " "); got != "people.Profile people.Profile:17,main user:17" {
		t.Errorf("channels %q", got)
	}
	expect(t, e.rec, ev{Name: "people.Profile", Type: "create", PK: map[string]any{"UserID": 17, "Slot": "main"}, Data: map[string]string{"bio": "HI"}})
	// Updates are switched off for Profile.
	if err := e.db.Model(&Profile{UserID: 17, Slot: "main"}).Update("bio", "x").Error; err != nil {
		t.Fatal(err)
	}
	expect(t, e.rec)
	if err := e.db.Delete(&Profile{UserID: 17, Slot: "main"}).Error; err != nil {
		t.Fatal(err)
	}
	expect(t, e.rec, ev{Name: "people.Profile", Type: "delete", PK: map[string]any{"UserID": 17, "Slot": "main"}, Data: map[string]string{"bio": "X"}})
	// Registering it again by hand is a duplicate now.
	if err := e.p.Register(Profile{}, events.Options{}); !errors.Is(err, telegraphy.ErrDuplicate) {
		t.Errorf("Register after autodiscovery = %v", err)
	}
}

// TestOperationsNone: OpNone switches a model's events off.
func TestOperationsNone(t *testing.T) {
	db, rec := openPlain(t)
	p := telegraphy.New(telegraphy.Config{Broker: rec})
	if err := p.Register(Order{}, events.Options{Operations: events.OpNone}); err != nil {
		t.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	db.Create(&Order{Status: "a"})
	db.Model(&Order{ID: 1}).Update("status", "b")
	db.Delete(&Order{ID: 1})
	expect(t, rec)
}

func openPlain(t *testing.T) (*gorm.DB, *broker.Recorder) {
	t.Helper()
	db, err := gorm.Open(sqliteDialector(t), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&Order{}); err != nil {
		t.Fatal(err)
	}
	return db, broker.NewRecorder(nil)
}

// TestEmit: custom events join a transaction, are dropped with it, or go
// out at once without one.
func TestEmit(t *testing.T) {
	e := setup(t, sqliteOnly[0], nil, telegraphy.Config{})
	custom := func(data any) ev { return ev{Name: "shop.Checkout", Type: "paid", Data: data} }

	if err := e.p.Emit(e.db, "shop.Checkout", "paid", map[string]int{"order": 1}, "user:17", "shop.Checkout"); err != nil {
		t.Fatal(err)
	}
	if got := e.rec.Messages()[0].Channels; strings.Join(got, " ") != "user:17 shop.Checkout" {
		t.Errorf("channels %v", got)
	}
	expect(t, e.rec, custom(map[string]int{"order": 1}))

	if err := e.p.Emit(nil, "shop.Checkout", "paid", "nil db"); err != nil {
		t.Fatal(err)
	}
	expect(t, e.rec, custom(`"nil db"`))

	err := e.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&Order{Status: "a", Total: 1}).Error; err != nil {
			return err
		}
		if err := e.p.Emit(tx, "shop.Checkout", "paid", 1); err != nil {
			return err
		}
		tx.Transaction(func(tx2 *gorm.DB) error {
			e.p.Emit(tx2, "shop.Checkout", "paid", "dropped with the savepoint")
			return errAbort
		})
		if e.rec.Len() != 0 {
			t.Error("custom event published before commit")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, e.rec, created(1, "a", 1), custom(1))

	e.db.Transaction(func(tx *gorm.DB) error {
		e.p.Emit(tx, "shop.Checkout", "paid", "rolled back")
		return errAbort
	})
	expect(t, e.rec)

	if err := e.p.Emit(e.db, "", "paid", nil); !errors.Is(err, telegraphy.ErrEmptyName) {
		t.Errorf("Emit without a name = %v", err)
	}
	if err := e.p.Emit(e.db, "x", "y", func() {}); err == nil {
		t.Error("Emit of unencodable data succeeded")
	}
	e.rec.FailWith(errors.New("down"))
	if err := e.p.Emit(e.db.WithContext(context.Background()), "x", "y", nil); err == nil {
		t.Error("Emit outside a transaction hid the publish error")
	}
}
