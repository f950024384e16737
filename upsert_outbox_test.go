package telegraphy_test

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/telegraphy-go/telegraphy"
)

// Upserts and creates from maps read their rows back inside the
// transaction; in outbox mode their events must be those of plain mode
// too (TestOutboxPublishesWhatPlainModePublishes runs these).
func init() {
	upsertsAndMaps := func(db *gorm.DB, p *telegraphy.Plugin) error {
		if err := db.Create(&Order{Status: "a", Total: 1}).Error; err != nil {
			return err
		}
		up := clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.Assignments(map[string]any{"status": "u"})}
		if err := db.Clauses(up).Create(&[]Order{{ID: 1, Status: "x"}, {ID: 50, Status: "n", Total: 5}}).Error; err != nil {
			return err
		}
		if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Order{ID: 50, Status: "lost"}).Error; err != nil {
			return err
		}
		if err := db.Model(&Order{}).Create(map[string]any{"status": "m", "total": 3}).Error; err != nil {
			return err
		}
		if err := db.Model(&Order{}).Create(&[]map[string]any{{"status": "m1"}, {"status": "m2"}}).Error; err != nil {
			return err
		}
		return db.Save(&Order{ID: 60, Status: "saved"}).Error
	}
	outboxScenarios = append(outboxScenarios,
		struct {
			name string
			gcfg func() *gorm.Config
			run  func(db *gorm.DB, p *telegraphy.Plugin) error
		}{"upserts and creates from maps", nil, upsertsAndMaps},
		struct {
			name string
			gcfg func() *gorm.Config
			run  func(db *gorm.DB, p *telegraphy.Plugin) error
		}{"upserts and creates from maps, SkipDefaultTransaction",
			func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} }, upsertsAndMaps},
	)
}
