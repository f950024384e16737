// Package faulttest holds the fault tests of outbox mode: they build the
// faultapp program (an app committing rows through the telegraphy plugin
// in outbox mode, and a hub), start it as real processes against real
// SQLite/PostgreSQL, redis-server and WebSocket clients on 127.0.0.1, kill
// processes with SIGKILL, and check that every committed event reaches
// every connected client exactly once, in commit order.
//
//	go test -race ./internal/faulttest/
//
// The package has no API; everything is in its tests.
package faulttest
