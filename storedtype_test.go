package telegraphy

import "testing"

// TestColumnChanges: the column types that store another value than the
// Go value, per dialect and Go kind; and the ones GORM gives fields
// without a `type` tag (PostgreSQL's decimal for a float64, MySQL's
// double, SQLite's real, varchar, text) store the value as given, so
// creates of models with only those are not read back.
func TestColumnChanges(t *testing.T) {
	for _, c := range []struct {
		dialect, typ string
		k            goKind
		want         bool
	}{
		{"postgres", "numeric(10, 2)", goFloat, true},
		{"postgres", "numeric(10)", goFloat, true},
		{"postgres", "decimal", goFloat, false},
		{"postgres", "numeric", goString, true},
		{"postgres", "NUMERIC(10,2)", goInt, false},
		{"postgres", "numeric(10,2)", goOther, true},
		{"postgres", "char(6)", goString, true},
		{"postgres", "character(3)", goString, true},
		{"postgres", "character varying(3)", goString, false},
		{"postgres", "varchar(32)", goString, false},
		{"postgres", "text", goString, false},
		{"postgres", "real", goFloat, true},
		{"postgres", "real", goFloat32, false},
		{"postgres", "float4", goFloat, true},
		{"postgres", "float(24)", goFloat, true},
		{"postgres", "float(25)", goFloat, false},
		{"postgres", "double precision", goFloat, false},
		{"postgres", "date", goTime, true},
		{"postgres", "timestamptz", goTime, false},
		{"postgres", "uuid", goString, true},
		{"postgres", "uuid", goOther, false},
		{"postgres", "bigint", goInt, false},
		{"postgres", "integer", goString, true},
		{"postgres", "bigint", goFloat, true},
		{"postgres", "jsonb", goString, true},
		{"postgres", "jsonb", goOther, true},
		{"postgres", "json", goString, false},
		{"mysql", "int", goFloat, true},
		{"mysql", "json", goString, true},
		{"mysql", "bigint unsigned", goInt, false},
		{"mysql", "decimal(10, 2)", goFloat, true},
		{"mysql", "decimal", goFloat, true},
		{"mysql", "decimal(10,2) unsigned", goString, true},
		{"mysql", "double", goFloat, false},
		{"mysql", "double(8,2)", goFloat, true},
		{"mysql", "float", goFloat, true},
		{"mysql", "float", goFloat32, false},
		{"mysql", "float(30)", goFloat, false},
		{"mysql", "char(6)", goString, true},
		{"mysql", "national char(6)", goString, true},
		{"mysql", "nchar varying(6)", goString, false},
		{"mysql", "varchar(191)", goString, false},
		{"mysql", "longtext", goString, false},
		{"mysql", "datetime(3)", goTime, false},
		{"mysql", "date", goTime, true},
		{"mysql", "uuid", goString, true},
		{"sqlite", "numeric(10,2)", goFloat, false},
		{"sqlite", "numeric(10,2)", goString, true},
		{"sqlite", "decimal", goOther, true},
		{"sqlite", "integer", goString, true},
		{"sqlite", "real", goFloat, false},
		{"sqlite", "real", goString, true},
		{"sqlite", "char(6)", goString, false},
		{"sqlite", "text", goString, false},
		{"sqlite", "date", goTime, false},
		{"sqlserver", "real", goFloat, true},
		{"sqlserver", "nvarchar(10)", goString, false},
	} {
		if got := columnChanges(c.dialect, c.typ, c.k); got != c.want {
			t.Errorf("%s %q kind %d: %v, want %v", c.dialect, c.typ, c.k, got, c.want)
		}
	}
}
