package telegraphy_test

import (
	"testing"

	"github.com/telegraphy-go/telegraphy"
)

// TestSavepointNameCase: savepoint names are case-insensitive in SQLite,
// PostgreSQL and MariaDB, and so is the plugin's matching.
func TestSavepointNameCase(t *testing.T) {
	for _, d := range allDialects {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			e.db.Create(&Order{Status: "a"})
			e.rec.Reset()
			tx := e.db.Begin()
			tx.SavePoint("Mark")
			tx.Model(&Order{ID: 1}).Update("status", "rolled back")
			if err := tx.RollbackTo("mark").Error; err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if n := e.rec.Len(); n != 0 {
				t.Fatalf("table: %+v; published for rolled-back work:%s", rows(t, e.db), describe(e.rec.Events()))
			}
		})
	}
}

// TestSavepointSameNameRelease: two savepoints of one name (PostgreSQL and
// SQLite stack them); RELEASE drops the inner one, ROLLBACK TO then goes
// to the outer one.
func TestSavepointSameNameRelease(t *testing.T) {
	for _, d := range allDialects[:2] {
		t.Run(d.name, func(t *testing.T) {
			e := setup(t, d, nil, telegraphy.Config{})
			e.db.Create(&Order{Status: "a"})
			e.rec.Reset()
			tx := e.db.Begin()
			tx.SavePoint("s")
			tx.Model(&Order{ID: 1}).Update("status", "rolled back")
			tx.SavePoint("s")
			if err := tx.Exec("RELEASE SAVEPOINT s").Error; err != nil {
				t.Fatal(err)
			}
			if err := tx.RollbackTo("s").Error; err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if n := e.rec.Len(); n != 0 {
				t.Fatalf("table: %+v; published for rolled-back work:%s", rows(t, e.db), describe(e.rec.Events()))
			}
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
			e := setup(t, d, nil, telegraphy.Config{})
			e.db.Create(&Order{Status: "a"})
			e.rec.Reset()
			tx := e.db.Begin()
			tx.SavePoint("sp")
			tx.Model(&Order{ID: 1}).Update("status", "rolled back")
			if err := tx.Exec(stmt).Error; err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if n := e.rec.Len(); n != 0 {
				t.Fatalf("table: %+v; published for rolled-back work:%s", rows(t, e.db), describe(e.rec.Events()))
			}
		})
	}
}
