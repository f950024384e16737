package telegraphy

import (
	"database/sql"
	"reflect"
	"strings"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
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
// back as UTC. A column of another type (text) is left as the struct
// holds it; a create into a `type:date` column is read back (storesOther).
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
	if _, off := t.Zone(); zoned && off%60 == 0 {
		return stored.In(t.Location())
	}
	// RFC 3339 has no seconds in a zone's offset (Go's JSON drops them,
	// moving the instant): such a time is announced in UTC.
	return stored.UTC()
}

// naiveTimestamp reports whether the field's `type` tag makes it a
// PostgreSQL timestamp without time zone.
func naiveTimestamp(f *schema.Field) bool {
	typ := strings.ToLower(strings.TrimSpace(f.TagSettings["TYPE"]))
	return strings.HasPrefix(typ, "timestamp") && !strings.HasPrefix(typ, "timestamptz") && !strings.Contains(typ, "with time zone")
}

// zonedTime reports whether one of the statement's structs holds a time
// with a zone offset other than 0 in f. Such a time in a PostgreSQL
// timestamp without time zone is stored by its wall clock with pgx's
// extended protocol, by its UTC wall clock with the simple protocol
// (PreferSimpleProtocol): the row is read back rather than guessed.
func zonedTime(db *gorm.DB, f *schema.Field) bool {
	return anyStructTime(db, f, func(t time.Time) bool {
		_, off := t.Zone()
		return off != 0
	})
}

// anyStructTime reports whether test holds for the time in f of one of
// the statement's structs. A zero f is judged by a time of db.NowFunc when
// GORM fills it in (autoCreateTime, autoUpdateTime), and passed over
// otherwise.
func anyStructTime(db *gorm.DB, f *schema.Field, test func(time.Time) bool) bool {
	auto := f.AutoCreateTime > 0 || f.AutoUpdateTime > 0
	found := false
	each(db.Statement.ReflectValue, func(v reflect.Value) {
		if found {
			return
		}
		x, zero := f.ValueOf(db.Statement.Context, v)
		if zero {
			found = auto && test(db.NowFunc())
			return
		}
		if t, ok := timeOf(x); ok {
			found = test(t)
		}
	})
	return found
}

// timeOf returns the time a value of a time field holds, false for none.
func timeOf(x any) (time.Time, bool) {
	switch x := x.(type) {
	case time.Time:
		return x, true
	case *time.Time:
		if x != nil {
			return *x, true
		}
	case gorm.DeletedAt:
		return x.Time, x.Valid
	case *gorm.DeletedAt:
		if x != nil {
			return x.Time, x.Valid
		}
	case sql.NullTime:
		return x.Time, x.Valid
	case *sql.NullTime:
		if x != nil {
			return x.Time, x.Valid
		}
	}
	return time.Time{}, false
}
