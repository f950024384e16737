package telegraphy_test

import (
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"gorm.io/gorm"
)

// TestSyntaxErrorAsWithoutPlugin: a delete whose SQL the database cannot
// parse (a malformed or unfinished condition, an OFFSET MariaDB's DELETE
// does not take) fails with the error GORM gives without the plugin, not
// one quoting the RETURNING the plugin appends, and announces nothing.
// SQLite and MariaDB report where parsing stopped up to the end of the
// statement. (PostgreSQL is not covered: there a failed statement aborts
// the transaction it ran in.)
func TestSyntaxErrorAsWithoutPlugin(t *testing.T) {
	writes := map[string]func(db *gorm.DB) error{
		"unfinished condition": func(db *gorm.DB) error { return db.Where("total =").Delete(&Order{}).Error },
		"malformed condition":  func(db *gorm.DB) error { return db.Where("total = = 1").Delete(&Order{}).Error },
		"limit and offset": func(db *gorm.DB) error {
			return db.Where("total > 0").Order("id").Limit(1).Offset(1).Delete(&Order{}).Error
		},
		"soft delete, unfinished": func(db *gorm.DB) error { return db.Where("title =").Delete(&Doc{}).Error },
	}
	for _, d := range []dialect{allDialects[0], allDialects[2]} {
		for name, write := range writes {
			t.Run(d.name+"/"+name, func(t *testing.T) {
				plain := openDB(t, d.open(t), nil, &Order{}, &Doc{})
				e := setup(t, d, nil, telegraphy.Config{})
				for _, db := range []*gorm.DB{plain, e.db} {
					if err := db.Create(&[]Order{{ID: 1, Total: 1}, {ID: 2, Total: 2}}).Error; err != nil {
						t.Fatal(err)
					}
				}
				e.rec.Reset()
				want := write(plain)
				got := write(e.db)
				if want == nil && got == nil {
					return // the dialect ran it (SQLite keeps no LIMIT on a delete)
				}
				if got == nil || want == nil || got.Error() != want.Error() {
					t.Fatalf("with the plugin %v\nwithout it      %v", got, want)
				}
				if strings.Contains(got.Error(), "RETURNING") {
					t.Fatalf("the error quotes the plugin's RETURNING: %v", got)
				}
				expect(t, e.rec)
				if n := len(rows(t, e.db)); n != 2 {
					t.Fatalf("%d orders left, want 2", n)
				}
			})
		}
	}
}
