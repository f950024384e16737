package telegraphy_test

import (
	"testing"

	"gorm.io/gorm"

	"github.com/telegraphy-go/telegraphy"
)

// TestSavepointNameCase: savepoint names are case-insensitive in SQLite,
// PostgreSQL and MariaDB, and so is the plugin's matching.
func TestSavepointNameCase(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			undone(t, d, func(tx *gorm.DB) error { return tx.SavePoint("Mark").Error },
				func(tx *gorm.DB) error { return tx.RollbackTo("mark").Error })
		})
	}
}

// TestSavepointSameNameRelease: two savepoints of one name (PostgreSQL and
// SQLite stack them); RELEASE drops the inner one, ROLLBACK TO then goes
// to the outer one.
func TestSavepointSameNameRelease(t *testing.T) {
	for _, d := range allDialects[:2] {
		t.Run(d.name, func(t *testing.T) {
			undone(t, d, func(tx *gorm.DB) error { return tx.SavePoint("s").Error },
				func(tx *gorm.DB) error {
					if err := tx.SavePoint("s").Error; err != nil {
						return err
					}
					if err := tx.Exec("RELEASE SAVEPOINT s").Error; err != nil {
						return err
					}
					return tx.RollbackTo("s").Error
				})
		})
	}
}

// TestSavepointRollbackSyntax: ROLLBACK TRANSACTION TO and ROLLBACK WORK
// TO drop the events after the savepoint like ROLLBACK TO.
func TestSavepointRollbackSyntax(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			stmt := "ROLLBACK TRANSACTION TO SAVEPOINT sp" // SQLite, PostgreSQL
			if d.name == "mysql" {
				stmt = "ROLLBACK WORK TO SAVEPOINT sp" // MySQL, MariaDB, PostgreSQL
			}
			undone(t, d, func(tx *gorm.DB) error { return tx.SavePoint("sp").Error },
				func(tx *gorm.DB) error { return tx.Exec(stmt).Error })
		})
	}
}

// undone creates order 1 on d, then in one transaction runs mark, updates
// the order, runs undo (which rolls the update back to a savepoint) and
// commits: nothing may be published.
func undone(t *testing.T, d dialect, mark, undo func(tx *gorm.DB) error) {
	t.Helper()
	e := setup(t, d, nil, telegraphy.Config{})
	e.db.Create(&Order{Status: "a"})
	e.rec.Reset()
	tx := e.db.Begin()
	if err := mark(tx); err != nil {
		t.Fatal(err)
	}
	tx.Model(&Order{ID: 1}).Update("status", "rolled back")
	if err := undo(tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if n := e.rec.Len(); n != 0 {
		t.Fatalf("table: %+v; published for rolled-back work:%s", rows(t, e.db), describe(e.rec.Events()))
	}
}
