package model

import (
	"database/sql"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm/schema"
)

var nullTimeType = reflect.TypeFor[sql.NullTime]()

// TimeColumn describes a column of a time type (time.Time, *time.Time,
// gorm.DeletedAt, sql.NullTime) for a function that says how a database
// stores its values.
type TimeColumn struct {
	// Type is the field's `type` tag, lower case, or "" without one (or
	// with GORM's abstract "time").
	Type string
	// Precision is the number of fractional second digits the column
	// keeps, from the `type` tag ("timestamptz(3)") when there is one,
	// else from the `precision` tag; -1 when it does not say.
	Precision int
}

// timeColumn is a column of a time type, and how to reach it.
type timeColumn struct {
	col   *column
	index []int // the field's path from the model's struct
	kind  int   // timeValue, timePointer or timeNull
	desc  TimeColumn
}

const (
	timeValue   = iota // time.Time
	timePointer        // *time.Time
	timeNull           // gorm.DeletedAt, sql.NullTime: {Time time.Time; Valid bool}
)

// timeColumns returns the columns of cols whose Go type is one of the
// time types above.
func timeColumns(cols []*column) []timeColumn {
	var out []timeColumn
	for _, c := range cols {
		t := c.field.StructField.Type
		kind := -1
		switch {
		case t == timeType:
			kind = timeValue
		case t.Kind() == reflect.Pointer && t.Elem() == timeType:
			kind = timePointer
		case t == deletedAtType || t == nullTimeType:
			kind = timeNull
		}
		if kind < 0 {
			continue
		}
		if c.field.Serializer != nil {
			continue // stored as its serializer writes it
		}
		// A `type` tag names the column's type, its precision included
		// (GORM then ignores `precision`), except GORM's own "time",
		// which the dialect turns into its time type with `precision`.
		typ := strings.ToLower(strings.TrimSpace(c.field.TagSettings["TYPE"]))
		if typ == "time" {
			typ = ""
		}
		prec := -1
		if typ == "" {
			if c.field.Precision > 0 {
				prec = c.field.Precision
			}
		} else if i := strings.IndexByte(typ, '('); i >= 0 {
			if j := strings.IndexByte(typ[i:], ')'); j > 0 {
				if n, err := strconv.Atoi(strings.TrimSpace(typ[i+1 : i+j])); err == nil {
					prec = n
				}
			}
		}
		out = append(out, timeColumn{col: c, index: c.field.StructField.Index, kind: kind,
			desc: TimeColumn{Type: typ, Precision: prec}})
	}
	return out
}

// StoredTimes returns v, a struct of the model, or, when stored changes
// the value of one of its time columns, a copy of v holding stored's
// values there: the row as a database that keeps times with less
// precision than Go (or without their zone) holds it. stored returns its
// argument for a column whose values the database keeps as they are. v
// itself is never changed, nor anything it points to: a pointer to a time
// or to an embedded struct on the way to one is replaced in the copy.
func (m *Model) StoredTimes(v reflect.Value, stored func(t time.Time, c TimeColumn) time.Time) reflect.Value {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return v
		}
		v = v.Elem()
	}
	var cp reflect.Value
	for i := range m.times {
		tc := &m.times[i]
		fv, ok := fieldAt(v, tc.index)
		if !ok || !fv.CanInterface() {
			continue
		}
		var t time.Time
		switch tc.kind {
		case timeValue:
			t = fv.Interface().(time.Time)
		case timePointer:
			if fv.IsNil() {
				continue
			}
			t = fv.Elem().Interface().(time.Time)
		case timeNull:
			if !fv.Field(1).Bool() {
				continue
			}
			t = fv.Field(0).Interface().(time.Time)
		}
		st := stored(t, tc.desc)
		if st.Equal(t) && st.Location() == t.Location() {
			continue
		}
		if !cp.IsValid() {
			cp = reflect.New(v.Type()).Elem()
			cp.Set(v)
		}
		dst := settableAt(cp, tc.index)
		switch tc.kind {
		case timeValue:
			dst.Set(reflect.ValueOf(st))
		case timePointer:
			dst.Set(reflect.ValueOf(&st))
		case timeNull:
			dst.Field(0).Set(reflect.ValueOf(st))
		}
	}
	if cp.IsValid() {
		return cp
	}
	return v
}

// valueOf returns field f of the struct v, reading it without changing v:
// GORM's ReflectValueOf allocates the nil embedded pointers on the way, in
// the caller's struct. Past a nil pointer the field is its type's zero
// value (addressable, for encoders of pointer receivers).
func valueOf(f *schema.Field, v reflect.Value) reflect.Value {
	if fv, ok := fieldAt(v, f.StructField.Index); ok {
		return fv
	}
	return reflect.New(f.FieldType).Elem()
}

// fieldAt returns the field of the struct v at index, false when a nil
// pointer is on the way.
func fieldAt(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 {
			for v.Kind() == reflect.Pointer {
				if v.IsNil() {
					return reflect.Value{}, false
				}
				v = v.Elem()
			}
		}
		v = v.Field(fieldIndex(x))
	}
	return v, true
}

// settableAt is fieldAt in cp, a copy the caller owns, replacing each
// pointer on the way by a pointer to a copy of what it points to, so that
// setting the field leaves the original alone. The path is known to have
// no nil pointer (fieldAt said so on the original).
func settableAt(cp reflect.Value, index []int) reflect.Value {
	v := cp
	for i, x := range index {
		if i > 0 {
			for v.Kind() == reflect.Pointer {
				own := reflect.New(v.Type().Elem())
				own.Elem().Set(v.Elem())
				v.Set(own)
				v = own.Elem()
			}
		}
		v = v.Field(fieldIndex(x))
	}
	return v
}

// fieldIndex is a step of a GORM field's StructField.Index, which marks an
// embedded pointer by storing -i-1 for its index i.
func fieldIndex(x int) int {
	if x < 0 {
		return -x - 1
	}
	return x
}
