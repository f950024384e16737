package outbox

import (
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// row is one event waiting in the outbox: the already-encoded
// broker.Message. ID orders the rows: the relay publishes them by
// increasing ID.
type row struct {
	ID        uint64 `gorm:"primaryKey;autoIncrement"`
	EventID   string `gorm:"size:64;not null"`
	Channels  string `gorm:"type:text;not null"` // JSON array of channel names
	Data      []byte `gorm:"not null"`
	CreatedNs int64  `gorm:"not null"` // unix nanoseconds of the event
	// Origin is broker.EncodeOrigin of the message's origin, "" for none.
	Origin string `gorm:"size:511;not null;default:''"`
}

// leaseRow is the one row per outbox table that says which relay may
// publish. Version grows with every renewal; a relay that sees it standing
// still for LeaseTTL may take the lease over.
type leaseRow struct {
	Name    string `gorm:"primaryKey;size:191"`
	Holder  string `gorm:"size:64;not null;default:''"`
	Version int64  `gorm:"not null;default:0"`
}

// chunk bounds the rows of one INSERT or DELETE, well below every
// dialect's limit on placeholders (65,535 on PostgreSQL and MySQL, 32,766
// on SQLite).
const chunk = 1000

// table names the outbox table and its lease table, and builds the INSERT
// of n rows in the dialect's quoting and placeholders.
type table struct {
	name   string
	lease  string
	insert func(n int) string
}

func newTable(d gorm.Dialector, name string) table {
	return table{name: name, lease: name + "_lease", insert: insertStatement(d, name)}
}

// migrate creates the outbox and lease tables and the lease row.
func (t table) migrate(db *gorm.DB) error {
	if err := db.Table(t.name).AutoMigrate(&row{}); err != nil {
		return fmt.Errorf("telegraphy: create outbox table %s: %w", t.name, err)
	}
	if err := db.Table(t.lease).AutoMigrate(&leaseRow{}); err != nil {
		return fmt.Errorf("telegraphy: create outbox lease table %s: %w", t.lease, err)
	}
	err := db.Table(t.lease).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&leaseRow{Name: t.name}).Error
	if err != nil {
		return fmt.Errorf("telegraphy: create outbox lease row: %w", err)
	}
	return nil
}

// insertStatement returns a function building the INSERT of n outbox
// rows, with the dialect's quoting and placeholders.
func insertStatement(d gorm.Dialector, table string) func(n int) string {
	var head strings.Builder
	head.WriteString("INSERT INTO ")
	d.QuoteTo(&head, table)
	head.WriteString(" (")
	for i, c := range []string{"event_id", "channels", "data", "created_ns", "origin"} {
		if i > 0 {
			head.WriteString(",")
		}
		d.QuoteTo(&head, c)
	}
	head.WriteString(") VALUES ")
	prefix := head.String()
	return func(n int) string {
		var b strings.Builder
		b.WriteString(prefix)
		stmt := &gorm.Statement{}
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('(')
			for j := 0; j < 5; j++ {
				if j > 0 {
					b.WriteByte(',')
				}
				stmt.Vars = append(stmt.Vars, nil)
				d.BindVarTo(&b, stmt, nil)
			}
			b.WriteByte(')')
		}
		return b.String()
	}
}
