package telegraphy

import (
	"database/sql/driver"
	"reflect"
	"strconv"
	"strings"

	"github.com/telegraphy-go/telegraphy/internal/model"
	"gorm.io/gorm"
	"gorm.io/gorm/migrator"
	"gorm.io/gorm/schema"
)

// Some column types store another value than the Go value written to
// them: a fixed-point number rounds to its scale, char(n) pads (PostgreSQL)
// or loses trailing spaces (MySQL/MariaDB), a single-precision float
// rounds a float64, a date drops the time of day and the zone, a uuid is
// kept in its canonical form, SQLite turns text that reads as a number
// into that number in a column of numeric affinity. A create from structs
// of a model with such a column is read back by key (see leavesValues),
// like a create from maps; the decision is taken once per model and
// dialect, from the column types AutoMigrate gives the fields, so a model
// without such a column pays one lookup.

// storesOther reports whether a create of m's structs on db's dialect may
// store another value than the structs hold in one of its columns, the
// primary key included: a key given in another form than the table keeps
// (an upper-case uuid) reads back the row the database's comparison finds
// (see rowOfKey), and the events name the key as stored.
func storesOther(db *gorm.DB, m *model.Model) bool {
	dialect := db.Dialector.Name()
	return m.StoresOther(dialect, func(s *schema.Schema) bool {
		for _, f := range s.Fields {
			if f.DBName == "" || f.Serializer != nil {
				continue
			}
			if columnChanges(dialect, columnType(db, f), goKindOf(f)) {
				return true
			}
		}
		return false
	})
}

// columnType is the type AutoMigrate gives f's column: the field type's
// own GormDBDataType, else the dialector's (a `type` tag, or the type of
// GORM's abstract data type with the field's size and precision).
func columnType(db *gorm.DB, f *schema.Field) string {
	cp := *f // a dialector may set a default precision on the field
	if t, ok := reflect.New(f.IndirectFieldType).Interface().(migrator.GormDataTypeInterface); ok {
		if typ := t.GormDBDataType(db, &cp); typ != "" {
			return typ
		}
	}
	return db.Dialector.DataTypeOf(&cp)
}

var valuerType = reflect.TypeFor[driver.Valuer]()

// goKind is what columnChanges needs to know of a field's Go type.
type goKind int

const (
	goInt     goKind = iota // signed and unsigned integers, bool
	goFloat32               // float32: a single-precision column keeps it
	goFloat                 // float64
	goString
	goTime  // time.Time, gorm.DeletedAt, sql.NullTime
	goOther // a struct, a Valuer (decimal types, sql.Null*), a slice
)

func goKindOf(f *schema.Field) goKind {
	if isTimeField(f) {
		return goTime
	}
	t := f.IndirectFieldType
	if t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType) {
		return goOther // written as its Value says
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return goInt
	case reflect.Float32:
		return goFloat32
	case reflect.Float64:
		return goFloat
	case reflect.String:
		return goString
	}
	return goOther
}

// columnChanges reports whether a column of type typ on the dialect may
// store another value than a Go value of kind k written to it. Dialects
// other than postgres, mysql and sqlite answer as either of the first two
// would.
func columnChanges(dialect, typ string, k goKind) bool {
	name, varying, args := parseColumnType(typ)
	if dialect == "sqlite" {
		switch {
		case isFixedPoint(name):
			// NUMERIC affinity: "01.50" is stored as the number 1.5.
			return k == goString || k == goOther
		case k == goString:
			a := sqliteAffinity(typ)
			return a == "INTEGER" || a == "REAL"
		}
		return false
	}
	pg, my := dialect == "postgres", dialect == "mysql"
	if !pg && !my {
		return columnChanges("postgres", typ, k) || columnChanges("mysql", typ, k)
	}
	switch {
	case isFixedPoint(name):
		switch k {
		case goInt:
			return false
		case goFloat, goFloat32:
			// PostgreSQL's numeric without a precision keeps any
			// float; MySQL's decimal without one is decimal(10,0).
			return my || len(args) > 0
		}
		return true
	case name == "char" || name == "character" || name == "nchar" || name == "bpchar":
		return !varying && k != goInt
	case name == "date":
		return k != goInt
	case name == "uuid":
		return k == goString
	case isInteger(name):
		// Numeric text ("012" is 12) and floats (rounded on MySQL; refused
		// on PostgreSQL unless whole) come back as the integer.
		return k == goString || k == goFloat || k == goFloat32
	case name == "jsonb" || my && name == "json":
		// Kept in a normal form: keys sorted, spaces dropped, the last of
		// duplicate keys (MySQL's JSON too; MariaDB's is text, read alike).
		return k == goString || k == goOther
	case name == "real" || name == "float4" || name == "float" || name == "double" || name == "float8":
		if k == goInt {
			return false
		}
		if my && len(args) == 2 {
			return true // FLOAT(M,D), DOUBLE(M,D): rounded to D digits
		}
		single := name == "float4" || name == "real" // MySQL's REAL is FLOAT under REAL_AS_FLOAT
		if name == "float" {
			p := 53
			if len(args) == 1 {
				p, _ = strconv.Atoi(args[0])
			} else if my {
				p = 24 // MySQL's FLOAT; PostgreSQL's is double precision
			}
			single = p <= 24
		}
		return single && k != goFloat32
	}
	return false
}

// isInteger reports whether a column type name is an integer type.
func isInteger(name string) bool {
	switch name {
	case "int", "integer", "bigint", "smallint", "tinyint", "mediumint", "int2", "int4", "int8",
		"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8":
		return true
	}
	return false
}

// isFixedPoint reports whether a column type name is an exact number of
// fixed scale.
func isFixedPoint(name string) bool {
	return name == "numeric" || name == "decimal" || name == "dec" || name == "fixed"
}

// parseColumnType splits a column type ("numeric(10, 2) unsigned",
// "character varying(8)", "national char(3)") into its lower-case name
// ("numeric", "character", "char"), whether it is varying, and its
// arguments.
func parseColumnType(typ string) (name string, varying bool, args []string) {
	s := strings.ToLower(strings.TrimSpace(typ))
	if i := strings.IndexByte(s, '('); i >= 0 {
		if j := strings.IndexByte(s[i:], ')'); j > 0 {
			for _, a := range strings.Split(s[i+1:i+j], ",") {
				args = append(args, strings.TrimSpace(a))
			}
		}
		s = s[:i] + " " + s[i:]
	}
	words := strings.Fields(s)
	if len(words) > 1 && words[0] == "national" {
		words = words[1:]
	}
	if len(words) == 0 {
		return "", false, nil
	}
	varying = len(words) > 1 && words[1] == "varying"
	return words[0], varying, args
}

// sqliteAffinity is the type affinity SQLite gives a column declared with
// type typ (https://www.sqlite.org/datatype3.html, 3.1).
func sqliteAffinity(typ string) string {
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return "INTEGER"
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return "TEXT"
	case strings.Contains(t, "BLOB"), strings.TrimSpace(t) == "":
		return "BLOB"
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}
