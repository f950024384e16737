package telegraphy_test

import (
	"bytes"
	"database/sql"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
)

// update rewrites the golden files from what the code produces:
// go test -run TestGoldenEvents -update .
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// GoldenKinds has a field of each kind an event carries.
type GoldenKinds struct {
	ID      uint           `json:"id"`
	At      time.Time      `json:"at"`
	Until   *time.Time     `json:"until"`
	Price   money          `json:"price" gorm:"type:varchar(64)"`
	Big     uint64         `json:"big"`
	Neg     int64          `json:"neg"`
	Ratio   float64        `json:"ratio"`
	OK      bool           `json:"ok"`
	Note    sql.NullString `json:"note"`
	Blob    []byte         `json:"blob"`
	Text    string         `json:"text"`
	Renamed string         `json:"label"`
	NoTag   string
	Hidden  string `json:"-"`
}

// GoldenPair has a composite primary key.
type GoldenPair struct {
	OrderID uint   `json:"order_id" gorm:"primaryKey;autoIncrement:false"`
	Line    int    `json:"line" gorm:"primaryKey;autoIncrement:false"`
	Sku     string `json:"sku"`
}

// GoldenDoc is soft-deletable.
type GoldenDoc struct {
	ID        uint           `json:"id"`
	Title     string         `json:"title"`
	DeletedAt gorm.DeletedAt `json:"deleted_at"`
}

// volatile matches the fields of an event that differ on every run: its
// timestamp and its id.
var volatile = regexp.MustCompile(`"timestamp":"[^"]*","id":"[0-9a-f-]{36}"`)

// GoldenEventStamp is what volatile fields read in the golden files.
const goldenEventStamp = `"timestamp":"2000-01-01T00:00:00.000000Z","id":"00000000-0000-0000-0000-000000000000"`

// checkGolden compares got with the golden file testdata/name, or
// rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: what clients receive is a contract.\n got: %s\nwant: %s\n(if the change is meant, run go test -run %s -update and say so in the commit)", path, got, want, t.Name())
	}
}

// TestGoldenEvents: the JSON of each event type and field kind, as
// brokers and browsers receive it, is the one in testdata/events (with
// the timestamp and id of each event normalised).
func TestGoldenEvents(t *testing.T) {
	// GORM's clock sets deleted_at: fixed, so that the soft delete's
	// data is the same on every run.
	now := func() time.Time { return time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC) }
	e := setup(t, sqliteOnly[0], &gorm.Config{NowFunc: now}, telegraphy.Config{})
	if err := e.db.AutoMigrate(&GoldenKinds{}, &GoldenPair{}, &GoldenDoc{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		model any
		opts  events.Options
	}{
		{GoldenKinds{}, events.Options{Name: "shop.Kinds", VerboseName: "Kinds", BulkLimit: 1}},
		{GoldenPair{}, events.Options{Name: "shop.Line"}},
		{GoldenDoc{}, events.Options{Name: "shop.Doc"}},
	} {
		if err := e.p.Register(r.model, r.opts); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 11, 25, 17, 37, 3, 123456789, time.UTC)
	until := at.Add(90 * time.Minute).In(time.FixedZone("CET", 3600))
	k := GoldenKinds{At: at, Until: &until, Price: "19.900000000000000000001", Big: 1<<53 + 1, Neg: -1 << 62,
		Ratio: 0.1, OK: true, Note: sql.NullString{String: "n", Valid: true}, Blob: []byte{1, 2, 255},
		Text: "quote \" backslash \\ newline \n <script> \u2028 é", Renamed: "l", NoTag: "plain", Hidden: "secret"}
	doc := GoldenDoc{Title: "draft"}
	steps := []struct {
		name string
		run  func(db *gorm.DB) error
	}{
		{"create", func(db *gorm.DB) error { return db.Create(&k).Error }},
		{"update", func(db *gorm.DB) error {
			return db.Model(&k).Updates(map[string]any{"text": "paid", "ok": false}).Error
		}},
		{"delete", func(db *gorm.DB) error { return db.Delete(&k).Error }},
		{"composite_key_create", func(db *gorm.DB) error { return db.Create(&GoldenPair{OrderID: 7, Line: 2, Sku: "A-1"}).Error }},
		{"soft_delete", func(db *gorm.DB) error {
			if err := db.Create(&doc).Error; err != nil {
				return err
			}
			e.rec.Reset()
			return db.Delete(&doc).Error
		}},
		{"bulk_update", func(db *gorm.DB) error {
			if err := db.Create([]GoldenKinds{{Text: "a", Big: 1, Price: "1"}, {Text: "b", Big: 2, Price: "2"}}).Error; err != nil {
				return err
			}
			e.rec.Reset()
			return db.Model(&GoldenKinds{}).Where("big > ?", 0).Update("text", "c").Error
		}},
		{"bulk_delete", func(db *gorm.DB) error { return db.Where("big > ?", 0).Delete(&GoldenKinds{}).Error }},
		{"custom", func(db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				return e.p.Emit(tx, "shop.Checkout", "paid", map[string]any{"order": 42, "total": "19.90"}, "user:17")
			})
		}},
	}
	for _, s := range steps {
		e.rec.Reset()
		if err := s.run(e.db); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		msgs := e.rec.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%s: %d messages, want 1", s.name, len(msgs))
		}
		got := volatile.ReplaceAll(msgs[0].Data, []byte(goldenEventStamp))
		if bytes.Equal(got, msgs[0].Data) {
			t.Fatalf("%s: no timestamp and id to normalise in %s", s.name, msgs[0].Data)
		}
		checkGolden(t, "events/"+s.name+".json", append(got, '\n'))
	}
}
