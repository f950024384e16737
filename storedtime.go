package telegraphy

import (
	"reflect"
	"strings"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
)

// asStored returns the struct v of a create announced from the struct
// (not read back) as the database holds the row: on PostgreSQL, a copy
// whose times are as PostgreSQL keeps them (postgresTime) where that
// differs. Other dialects keep the struct's times (see docs/delivery.md).
func asStored(db *gorm.DB, m *model.Model, v reflect.Value) reflect.Value {
	if db.Dialector.Name() != "postgres" {
		return v
	}
	return m.StoredTimes(v, postgresTime)
}

// unixToY2K is PostgreSQL's epoch, 2000-01-01, in microseconds since 1970.
const unixToY2K = 946_684_800 * 1_000_000

// postgresTime is t as PostgreSQL keeps it in a column c: pgx sends whole
// microseconds, dropping the rest (toward the past); the server rounds
// them to the column's precision when that is below 6, halves away from
// 2000-01-01; a timestamp without time zone keeps t's wall clock, read
// back as UTC. A column of another type (`type:date`, text) is left as
// the struct holds it.
func postgresTime(t time.Time, c model.TimeColumn) time.Time {
	if c.Type != "" && !strings.HasPrefix(c.Type, "timestamp") {
		return t
	}
	zoned := c.Type == "" || strings.HasPrefix(c.Type, "timestamptz") || strings.Contains(c.Type, "with time zone")
	if !zoned {
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	us := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - unixToY2K
	if p := c.Precision; p >= 0 && p < 6 {
		scale := int64(1)
		for range 6 - p {
			scale *= 10
		}
		if us >= 0 {
			us = (us + scale/2) / scale * scale
		} else {
			us = -((-us + scale/2) / scale * scale)
		}
	}
	stored := time.UnixMicro(us + unixToY2K)
	if zoned {
		return stored.In(t.Location())
	}
	return stored.UTC()
}
