package telegraphy_test

import (
	"reflect"
	"sort"

	"gorm.io/gorm"
)

// stmtKeys returns the queries in a PreparedStmtDB's statement cache.
// GORM before v1.26 keeps the cache in a map, later releases in a store
// with a Keys method; the tests run against both.
func stmtKeys(ps *gorm.PreparedStmtDB) []string {
	v := reflect.ValueOf(ps.Stmts)
	if m := v.MethodByName("Keys"); m.IsValid() {
		return m.Call(nil)[0].Interface().([]string)
	}
	var keys []string
	for _, k := range v.MapKeys() {
		keys = append(keys, k.String())
	}
	sort.Strings(keys)
	return keys
}

// sameStmtCache reports whether a and b share one statement cache.
func sameStmtCache(a, b *gorm.PreparedStmtDB) bool {
	return reflect.ValueOf(a.Stmts).Pointer() == reflect.ValueOf(b.Stmts).Pointer()
}
