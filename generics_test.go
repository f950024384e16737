//go:build gorm_generics

package telegraphy_test

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// GORM's generics API (v1.30 and later) creates from a map with Set and
// from a struct with Create; make test-gorm-current builds this file.
func init() {
	ctx := context.Background()
	genericsMapCreateCases = append(genericsMapCreateCases,
		mapCreateCase{"generics Set().Create", func(db *gorm.DB) error {
			return gorm.G[Item](db).Set(clause.Assignment{Column: clause.Column{Name: "name"}, Value: "g"}).Create(ctx)
		}, []ev{{Type: "create", PK: 1, Data: item(1, "g", 7, "none")}}},
		mapCreateCase{"generics Create of a struct", func(db *gorm.DB) error {
			return gorm.G[Item](db).Create(ctx, &Item{Name: "gs", Qty: 4})
		}, []ev{{Type: "create", PK: 1, Data: item(1, "gs", 4, "none")}}},
	)
}
