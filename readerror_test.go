package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// TestReadBeforeErrorAsWithoutPlugin: on PostgreSQL the plugin reads the
// rows an update or soft delete of a model with Channels is about to
// change with the statement's conditions; when those conditions fail (a
// column that does not exist), the write fails with the database's error,
// as GORM without the plugin returns it, and announces nothing.
func TestReadBeforeErrorAsWithoutPlugin(t *testing.T) {
	d := allDialects[1]
	writes := map[string]func(db *gorm.DB) error{
		"update": func(db *gorm.DB) error {
			return db.Model(&Order{}).Where("nosuch = 1").Update("status", "x").Error
		},
		"soft delete": func(db *gorm.DB) error { return db.Where("nosuch = 1").Delete(&Doc{}).Error },
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			plain := openDB(t, d.open(t), nil, &Order{}, &Doc{})
			want := write(plain)
			if want == nil {
				t.Fatal("the write succeeded without the plugin")
			}
			db := openDB(t, d.open(t), nil, &Order{}, &Doc{})
			rec := broker.NewRecorder(nil)
			p := telegraphy.New(telegraphy.Config{Broker: rec})
			if err := p.Register(Order{}, events.Options{Channels: func(m any) []string { return []string{"status:" + m.(*Order).Status} }}); err != nil {
				t.Fatal(err)
			}
			if err := p.Register(Doc{}, events.Options{Channels: func(m any) []string { return []string{"title:" + m.(*Doc).Title} }}); err != nil {
				t.Fatal(err)
			}
			if err := db.Use(p); err != nil {
				t.Fatal(err)
			}
			got := write(db)
			if got == nil || got.Error() != want.Error() {
				t.Fatalf("with the plugin %v\nwithout it      %v", got, want)
			}
			expect(t, rec)
		})
	}
}
