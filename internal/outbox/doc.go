// Package outbox is the plugin's outbox mode: the table a committing
// transaction writes its events to, and the relay that publishes them.
//
// The plugin calls an Outbox at commit time and nothing else: Write inside
// the committing transaction (just before COMMIT), Committed after COMMIT,
// WriteNow for an event written outside a transaction. Backlog measures the
// table, Close stops the relay. Users configure it through the root
// package (telegraphy.Config.Outbox); package telegraphy's doc describes
// the guarantees.
//
// The relay is one goroutine built from named parts, each in its file:
//   - table.go: the outbox and lease tables, and the INSERT of a batch;
//   - lease.go: the lease row that lets one relay at a time publish;
//   - backoff.go: the wait after a failed batch;
//   - confirm.go: how the relay learns the broker has a batch before it
//     deletes the rows (at once for a synchronous broker, through a marker
//     message otherwise);
//   - relay.go: the loop that reads, publishes and deletes rows in ID order.
//
// # Concurrency
//
// Write, WriteNow, Committed and Backlog may be called from any goroutine.
// The relay's state is owned by its goroutine, started by New (unless
// Config.NoRelay) and stopped by Close, which is idempotent and waits.
package outbox
