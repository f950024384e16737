package telegraphy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy"
	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// HookStmt's After hooks run a statement that fails on the hook's tx
// when Hook says so: "dup" inserts a row with the key of row 1 (which
// every write in these tests leaves in place) and returns the
// duplicate-key error; "missing" reads a table that does not exist and
// returns nil, so GORM reports the write succeeded.
type HookStmt struct {
	ID        uint           `json:"id"`
	Owner     string         `json:"owner" gorm:"size:16"`
	Hook      string         `json:"hook" gorm:"size:16"`
	DeletedAt gorm.DeletedAt `json:"deleted_at"`
}

func (h *HookStmt) after(tx *gorm.DB) error {
	switch h.Hook {
	case "dup":
		return tx.Exec("INSERT INTO hook_stmts (id, owner, hook) VALUES (1, 'x', 'x')").Error
	case "missing":
		_ = tx.Exec("SELECT 1 FROM telegraphy_no_such_table").Error
	}
	return nil
}

func (h *HookStmt) AfterCreate(tx *gorm.DB) error { return h.after(tx) }
func (h *HookStmt) AfterUpdate(tx *gorm.DB) error { return h.after(tx) }
func (h *HookStmt) AfterDelete(tx *gorm.DB) error { return h.after(tx) }

func hookStmtChannels(m any) []string { return []string{"owner:" + m.(*HookStmt).Owner} }

// hookStmtWrite is one write, run with hook as its instance's Hook, and
// the events it publishes as hookStmtEvents describes them.
type hookStmtWrite struct {
	name   string
	run    func(db *gorm.DB, hook string) error
	events func(hook string) []string
}

// hookStmtWrites each run, with SkipDefaultTransaction, in a transaction
// the plugin begins for them (it reads rows before or after the write),
// on every database.
var hookStmtWrites = []hookStmtWrite{
	{"upsert inserting", func(db *gorm.DB, hook string) error {
		return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&HookStmt{ID: 5, Owner: "ann", Hook: hook}).Error
	}, func(hook string) []string {
		return []string{"create 5 ann " + hook}
	}},
	{"upsert updating", func(db *gorm.DB, hook string) error {
		return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&HookStmt{ID: 1, Owner: "bob", Hook: hook}).Error
	}, func(hook string) []string {
		return []string{"update 1 bob " + hook, "enter 1 bob " + hook, "leave 1"}
	}},
	{"update moving the row to another channel", func(db *gorm.DB, hook string) error {
		return db.Model(&HookStmt{ID: 2}).Updates(map[string]any{"owner": "bob", "hook": hook}).Error
	}, func(hook string) []string {
		return []string{"update 2 bob " + hook, "enter 2 bob " + hook, "leave 2"}
	}},
	{"soft delete", func(db *gorm.DB, hook string) error {
		return db.Delete(&HookStmt{ID: 3, Hook: hook}).Error
	}, func(string) []string {
		return []string{"delete 3 ann  deleted"}
	}},
}

// hookStmtOutboxWrites each run in a transaction the plugin begins in
// outbox mode (and on MariaDB the update in any mode).
var hookStmtOutboxWrites = []hookStmtWrite{
	{"create", func(db *gorm.DB, hook string) error {
		return db.Create(&HookStmt{ID: 5, Owner: "ann", Hook: hook}).Error
	}, func(hook string) []string {
		return []string{"create 5 ann " + hook}
	}},
	{"update", func(db *gorm.DB, hook string) error {
		return db.Model(&HookStmt{ID: 2}).Updates(map[string]any{"hook": hook}).Error
	}, func(hook string) []string {
		return []string{"update 2 ann " + hook}
	}},
	{"hard delete", func(db *gorm.DB, hook string) error {
		return db.Unscoped().Delete(&HookStmt{ID: 3, Hook: hook}).Error
	}, func(string) []string {
		return []string{"delete 3 ann "}
	}},
}

// runHookStmt fills a fresh hook_stmts table with rows 1-3 (owner ann)
// through db, runs w with hook, and returns the table (soft-deleted rows
// included) and the error w returned.
func runHookStmt(t *testing.T, db *gorm.DB, w hookStmtWrite, hook string) (table string, err error) {
	t.Helper()
	s := db.Session(&gorm.Session{NewDB: true})
	if err := s.Migrator().DropTable(&HookStmt{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AutoMigrate(&HookStmt{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(&[]HookStmt{{ID: 1, Owner: "ann"}, {ID: 2, Owner: "ann"}, {ID: 3, Owner: "ann"}}).Error; err != nil {
		t.Fatal(err)
	}
	err = w.run(db, hook)
	var out []HookStmt
	if err := s.Unscoped().Order("id").Find(&out).Error; err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, r := range out {
		fmt.Fprintf(&sb, "{%d %s %s deleted=%v} ", r.ID, r.Owner, r.Hook, r.DeletedAt.Valid)
	}
	return sb.String(), err
}

// hookStmtEvents describes events: type and key, then, for an event with
// data, the owner, the hook and "deleted" for a soft-deleted row.
func hookStmtEvents(t *testing.T, got []events.Event) []string {
	t.Helper()
	out := make([]string, 0, len(got))
	for _, e := range got {
		s := fmt.Sprintf("%s %v", e.Meta.EventType, e.Meta.PK)
		if string(e.Data) != "null" {
			var row HookStmt
			if err := json.Unmarshal(e.Data, &row); err != nil {
				t.Fatalf("%s: %v", e.Data, err)
			}
			s += fmt.Sprintf(" %s %s", row.Owner, row.Hook)
			if row.DeletedAt.Valid {
				s += " deleted"
			}
		}
		out = append(out, s)
	}
	return out
}

// TestHookStatementFailsAfterOwnTransactionWrite: with
// SkipDefaultTransaction, a write that the plugin runs in a transaction of
// its own is committed before GORM's After hooks run, as autocommit
// commits it without the plugin. An After hook whose statement fails on
// the hook's tx (which on PostgreSQL would abort a transaction still
// open) leaves the table as it is without the plugin, whether the hook
// returns that error or nil; the write returns what it returns without
// the plugin; and the write's events are published, as for a write
// whose hook succeeds.
func TestHookStatementFailsAfterOwnTransactionWrite(t *testing.T) {
	gcfg := func() *gorm.Config { return &gorm.Config{SkipDefaultTransaction: true} }
	created := []string{"create 1 ann ", "create 2 ann ", "create 3 ann "}
	for _, d := range allDialects {
		for _, outbox := range []bool{false, true} {
			writes := hookStmtWrites
			if outbox {
				writes = append(append([]hookStmtWrite(nil), hookStmtWrites...), hookStmtOutboxWrites...)
			}
			for _, w := range writes {
				for _, hook := range []string{"dup", "missing"} {
					t.Run(fmt.Sprintf("%s/outbox=%v/%s/%s", d.name, outbox, w.name, hook), func(t *testing.T) {
						plain := openDB(t, d.open(t), gcfg())
						wantTable, wantErr := runHookStmt(t, plain, w, hook)
						if (hook == "dup") != (wantErr != nil) {
							t.Fatalf("without the plugin the write returned %v", wantErr)
						}

						rec := broker.NewRecorder(nil)
						cfg := telegraphy.Config{Broker: rec}
						if outbox {
							cfg.Outbox = telegraphy.OutboxConfig{Enabled: true}
						}
						p := telegraphy.New(cfg)
						if err := p.Register(&HookStmt{}, events.Options{Channels: hookStmtChannels}); err != nil {
							t.Fatal(err)
						}
						db := openDB(t, d.open(t), gcfg())
						if err := db.Use(p); err != nil {
							t.Fatal(err)
						}
						table, err := runHookStmt(t, db, w, hook)
						closePlugin(t, p) // the relay publishes what the outbox holds
						if fmt.Sprint(err) != fmt.Sprint(wantErr) {
							t.Errorf("the write returned %v with the plugin, %v without", err, wantErr)
						}
						if table != wantTable {
							t.Errorf("table %s with the plugin, %s without", table, wantTable)
						}
						want := append(append([]string(nil), created...), w.events(hook)...)
						if got := hookStmtEvents(t, rec.Events()); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
							t.Errorf("events\n %q\nwant\n %q", got, want)
						}
					})
				}
			}
		}
	}
}
