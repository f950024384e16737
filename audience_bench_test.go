package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
)

// orderChannels puts each order in "status:<status>", so that an update
// of its status moves it.
func orderChannels(m any) []string { return []string{"status:" + m.(*Order).Status} }

// withPlugin installs a plugin registering Order with opts on db.
func withPlugin(b *testing.B, db *gorm.DB, opts events.Options) *gorm.DB {
	p := telegraphy.New(telegraphy.Config{Broker: drainedMemory(b)})
	if err := p.Register(Order{}, opts); err != nil {
		b.Fatal(err)
	}
	if err := db.Use(p); err != nil {
		b.Fatal(err)
	}
	return db
}

// benchChannels compares updates by key of a model with Channels (as each
// case registers it) with the same updates of the model without
// Channels, both with the plugin; open opens an empty database.
func benchChannels(b *testing.B, open func(b *testing.B) *gorm.DB) {
	statuses := []string{"new", "paid"}
	moveStatus := func(db *gorm.DB, i int) error {
		return db.Model(&Order{ID: uint(i%100 + 1)}).Update("status", statuses[i/100%2]).Error
	}
	setTotal := func(db *gorm.DB, i int) error {
		return db.Model(&Order{ID: uint(i%100 + 1)}).Update("total", i).Error
	}
	for _, c := range []struct {
		name string
		opts events.Options
		op   func(db *gorm.DB, i int) error
	}{
		{"whole-rows", events.Options{Channels: orderChannels}, moveStatus},
		{"ChannelFields", events.Options{Channels: orderChannels, ChannelFields: []string{"Status"}}, moveStatus},
		{"ChannelFields-other-column", events.Options{Channels: orderChannels, ChannelFields: []string{"Status"}}, setTotal},
	} {
		b.Run(c.name, func(b *testing.B) {
			seed := func(db *gorm.DB) *gorm.DB {
				if err := db.AutoMigrate(&Order{}); err != nil {
					b.Fatal(err)
				}
				for i := 1; i <= 100; i++ {
					if err := db.Create(&Order{Status: "new", Total: i}).Error; err != nil {
						b.Fatal(err)
					}
				}
				return db
			}
			base := withPlugin(b, seed(open(b)), events.Options{})
			moving := withPlugin(b, seed(open(b)), c.opts)
			compareDBs(b, base, moving, "channels", c.op)
		})
	}
}

// BenchmarkUpdateChannels measures what the read before an update costs
// a model with Channels, on SQLite: channels/base is the ratio to the
// same update of the model without Channels (the plugin installed on
// both).
func BenchmarkUpdateChannels(b *testing.B) {
	benchChannels(b, func(b *testing.B) *gorm.DB { return openBench(b, false, 0) })
}

// BenchmarkUpdateChannelsPostgres is BenchmarkUpdateChannels on
// PostgreSQL.
func BenchmarkUpdateChannelsPostgres(b *testing.B) {
	benchChannels(b, func(b *testing.B) *gorm.DB { return openBenchPostgres(b, false, 0) })
}
