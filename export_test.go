package telegraphy

// UseReturningOnSQLite makes p take the rows of SQLite updates from
// RETURNING, as it does on PostgreSQL, for benchmarks that compare it with
// the read by key.
func UseReturningOnSQLite(p *Plugin) { p.sqliteReturning = true }
