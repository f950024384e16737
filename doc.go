// Package telegraphy turns GORM writes of registered models into events
// that are published to a broker after the transaction commits, and never
// for work that was rolled back.
//
//	bus := broker.NewMemory()
//	p := telegraphy.New(telegraphy.Config{Broker: bus})
//	p.Register(Order{}, events.Options{Name: "shop.Order", Exclude: []string{"Secret"}})
//	db.Use(p)
//
// A model type with a TelegraphyEvents() events.Options method registers
// itself the first time it is written. A model with an EventData() any
// method supplies its own data. Custom events go through Plugin.Emit:
//
//	db.Transaction(func(tx *gorm.DB) error {
//		// ... writes ...
//		return p.Emit(tx, "shop.Checkout", "paid", map[string]any{"order": 42}, "user:17")
//	})
//
// # How commits are followed
//
// GORM has no commit callback and *sql.Tx no hook, and the plugin leaves
// db.ConnPool and every transaction's Statement.ConnPool of the types GORM
// gives them (*sql.DB, *sql.Tx, *gorm.PreparedStmtDB, *gorm.PreparedStmtTX,
// *sql.Conn, or another plugin's wrapper), so commits are followed one
// layer down, in database/sql's driver layer. Initialize installs a
// driver.Connector on the DB's *sql.DB (the same *sql.DB: db.DB() returns
// it, with its pool settings and driver) and wraps its driver connections,
// those opened before it included, which keep their session state. Every
// transaction begun on one of them (db.Begin, db.Transaction, the implicit
// transaction around each write, db.Connection, PrepareStmt globally or per
// session, a transaction begun through database/sql) buffers the events of
// its statements; its COMMIT publishes them, in statement order and in one
// Broker.Publish call, and its ROLLBACK drops them. SAVEPOINT and ROLLBACK
// TO statements (SavePoint, RollbackTo, nested Transaction, or raw Exec)
// cut the buffer back to the savepoint. A transaction begun with SQL on
// one connection (db.Connection with Exec("BEGIN") or "START
// TRANSACTION", then "COMMIT" or "ROLLBACK") is followed the same way; on
// PostgreSQL the COMMIT of one a failed statement aborted publishes
// nothing, as it commits nothing. Not followed: MySQL's implicit commits
// (DDL inside such a transaction), a BEGIN or COMMIT inside a string of
// several statements, and sessions with autocommit off. A write outside
// any transaction (SkipDefaultTransaction, globally or per session)
// publishes as soon as the statement succeeds. A statement finds its transaction through a
// probe that the wrapped driver connection answers without a round trip to
// the server.
//
// gorm.io/plugin/dbresolver may be registered before or after the plugin:
// its sources and replicas get the connector too, writes and their
// transactions run on the sources as without the plugin, and their events
// follow the sources' commits. Outbox mode refuses dbresolver
// (ErrOutboxResolver).
//
// What this changes for the program: a (*sql.Conn).Raw callback receives
// the plugin's driver connection, whose Unwrap() driver.Conn method returns
// the driver's own (pgx's *stdlib.Conn, for example). Code that uses the
// same *sql.DB outside GORM gets the wrapped connections too (its
// transactions carry no events). db.Use must run
// before the DB is used by other goroutines (as for any GORM plugin); a
// connection in use meanwhile stays unwrapped, and a write of a registered
// model in a transaction on it fails with ErrUntracked before it runs, as
// does one through a connection of a *sql.DB the plugin was not
// initialized on, and Emit on either. database/sql has no API to wrap the
// connections of an open *sql.DB: Initialize writes its connector and idle
// connections' unexported fields, after checking their names and types
// (it returns an error rather than guess if a Go release changes them).
// Writes without a model (db.Table("orders").Update, db.Exec) are not seen
// and emit nothing. Nor are writes of a registered model through another
// table than its own (db.Table("orders_archive").Create(&order), another
// schema's table): they run as without the plugin. The table db.Table
// names is compared with the model's as the database resolves names
// (quoting and case, a schema or database qualifier naming the one the
// model's table is found in); an alias of the model's table
// (db.Table("orders AS o")) is the model's table (docs/delivery.md, "The
// model's table").
//
// # Updates and deletes
//
// An update event carries the row as written, never the caller's struct,
// and an update or delete emits an event for exactly the rows it changed.
// The plugin leaves the statement as GORM built it, every clause
// included, and appends RETURNING to it where the database has it
// (PostgreSQL and SQLite for updates and deletes, MariaDB 10.5 and later
// for hard deletes): the rows it returns are the events. On MySQL and
// MariaDB otherwise, the keys are selected first with the statement's own
// WHERE and SELECT ... FOR UPDATE in its transaction, at most the model's
// BulkLimit plus one, and the rows re-read after the write; that is exact
// at REPEATABLE READ and SERIALIZABLE; below, one bulk_update or
// bulk_delete is sent instead (docs/delivery.md). Beyond BulkLimit one bulk_update or bulk_delete event with
// meta.count replaces the per-row events. A hard delete event carries the
// row as it was; a soft delete sets meta.soft. A write outside a
// transaction that needs reads runs in a transaction the plugin begins
// and commits right after the statement, before GORM's After hooks run,
// as autocommit commits it without the plugin.
// meta.changed lists the JSON names of the assigned columns that are sent
// in data. An update that assigns a primary key column emits one
// bulk_update with the row count, and so does a MySQL update with a LIMIT
// clause, whose rows are not known in advance. No rows affected, no event.
//
// For a model with Options.Channels, an update or soft delete first reads
// the rows it is about to change, locked, in its transaction (only the
// columns of Options.ChannelFields, and not at all for an update that
// assigns none of them), so that a row whose channels changed is
// announced where it went and where it was: "enter" with the row on the
// channels it joined, "leave" with its key on those it left, "update" on
// those it stayed in and on the model and record channels. A row the read
// could not see (one that came to match the statement between the read and
// the statement, at READ COMMITTED) makes the statement's event a bulk one
// (docs/delivery.md, "Rows that move between channels").
//
// Create events carry the instance as written (with its new primary key).
// Creates from a map or maps (the generics API and association Append
// with maps among them) read their rows back by key, so their events
// carry database defaults and columns the maps left out. An upsert
// (clause.OnConflict, Save of a missing row) emits create for a row
// inserted, update for a row the conflict clause changed, nothing for a
// row left alone: on PostgreSQL the statement reports which rows it
// inserted and which it updated; elsewhere the rows with the conflict key
// are read before and after the statement, and where MySQL may have met a
// unique key the plugin did not read, one bulk_update is sent instead
// (docs/delivery.md).
//
// On MySQL and MariaDB, RowsAffected counts changed rows: an update that
// assigns the values a row already has emits nothing for a loaded
// instance, and an update by condition that changes none of the rows it
// matched emits nothing either.
//
// # Configuration
//
// The project's packages share one rule for configuration values: a zero
// field means the default its comment documents; a negative value is an
// error naming the field, returned by the constructor (Initialize), except in
// the fields whose comment gives negative values a meaning (none, or no
// limit): here Config.BulkLimit, where it means always bulk.
//
// # Concurrency
//
// Register, Emit and every DB operation may be called from any goroutine.
// Publishing runs on the goroutine that commits, bounded by
// Config.PublishTimeout.
//
// # Order
//
// Within a transaction, events keep statement order. Between transactions
// that wrote a common row (so the database ordered their commits: the
// later one waited for the earlier one's row lock), events reach the
// broker in commit order, in both modes, within a process: in the default
// mode each transaction holds the stripes of its records' channels (1,024
// mutexes, taken in increasing order) from just before its COMMIT until
// the broker has its events, so a conflicting transaction's publication
// waits; unrelated transactions share a stripe only by chance. Across
// processes the default mode promises no order (a model registered with
// events.Options.Version lets clients drop an older event that arrives
// late); outbox mode does (see below). bulk_* events, custom events and creates run outside a
// transaction (SkipDefaultTransaction) have no record channel and are not
// ordered this way.
//
// # Delivery
//
// Each event is encoded once and the same bytes are sent to its model
// channel "<name>", its record channel "<name>:<pk>" and the channels of
// Options.Channels. A failed publish never turns a committed transaction
// into an error: it goes to Config.ErrorHandler and the log.
//
// Without outbox mode (the default) events are published after the
// outermost commit succeeds, on the committing goroutine: delivery to the
// broker is at most once. A committed transaction's events are lost when
//   - the process dies (crash, SIGKILL, OOM kill, a deploy) after the
//     database committed and before Broker.Publish accepted the events;
//   - Broker.Publish fails or exceeds Config.PublishTimeout (reported,
//     never retried);
//   - with redisbroker, whose Publish only queues in memory: the process
//     dies before the background publisher wrote them to Redis (normally
//     a few milliseconds, but the whole outage while Redis is down), the
//     queue is full (Redis down or slow longer than QueueSize events
//     last: each dropped event is reported with ErrQueueFull), Redis
//     refuses them for a reason retrying cannot fix, or the broker's Close
//     gives up before its queue is flushed.
//
// # Outbox mode
//
// With Config.Outbox.Enabled, the transaction itself inserts its events
// (the encoded messages: event id, channels, data, time) into the outbox
// table just before its COMMIT, so they commit or roll back with the
// change. If the insert fails, the transaction is rolled back and Commit
// returns an error wrapping ErrOutbox. A write outside a transaction
// (SkipDefaultTransaction) runs in a transaction the plugin begins and
// commits before GORM's After hooks run; Emit
// outside a transaction inserts its one row on its own. Initialize creates
// the table and its lease table (AutoMigrate) on SQLite, PostgreSQL and
// MySQL/MariaDB.
//
// A relay goroutine, started by Initialize (unless Outbox.NoRelay) and
// stopped by Plugin.Close, publishes the rows in ID order and deletes
// exactly the rows it published once the broker has them: broker.Memory
// when Publish returns; a broker that only queues (redisbroker) when a
// marker published after the batch shows up in the relay's own channel's
// history, which means Redis has the whole batch. While the broker is
// down the rows wait in the table. A commit wakes its own process's relay
// at once; rows written elsewhere are found every Outbox.PollInterval.
//
// Several processes may run relays on one table: one at a time publishes,
// holding a lease row that it renews; another takes over when the lease
// has not been renewed for Outbox.LeaseTTL (so after a crash, events
// committed meanwhile wait up to LeaseTTL). In the normal case no row is
// published twice. After a crash between publishing and deleting, rows
// are published again; the brokers keep each event id once per channel
// history (broker.Memory: the last HistorySize publications; redisbroker:
// HistoryTTL), so clients see the event once, and the JavaScript client
// drops any older duplicate by meta.id.
//
// Order: one relay publishes at a time, in ID order, and an outbox row
// gets its ID just before its transaction commits, after every statement
// of that transaction. So per channel, transactions that touched a common
// row are published in commit order (the later one waited for the
// earlier one's locks), and a row whose transaction commits after later
// IDs were published is published after them. Only transactions that ran
// concurrently with nothing in common may appear in ID rather than commit
// order. The relay deletes rows by ID, never by range, so a lower ID that
// was not yet committed when a batch was read is published later, and
// each read starts from the lowest ID leaving out only those published, so
// such a row goes out before any row committed after it.
//
// Plugin.OutboxBacklog reports the rows waiting and the age of the oldest;
// with Outbox.Registerer the relay exports them as Prometheus gauges, and
// it logs a warning when the oldest is older than Outbox.BacklogWarnAge.
//
// # The sender's own echo
//
// A page sends its hub connection's session id with its own requests
// (telegraphy.js: fetch(url, {headers: t.headers()}), header
// SessionHeader); OriginMiddleware, or WithOrigin, puts it into the
// request's context with the subject (user) the application
// authenticated. Writes made with that context (db.WithContext(ctx)) and
// Emit given such a db stamp their events with it (broker.Message.Origin):
// in plain mode and in outbox mode (the outbox row keeps it), through the
// in-process broker and Redis. A hub then does not deliver those events to
// the one connection whose session id it is and whose token subject is
// that subject, neither live nor when it recovers missed events on the
// same connection; every other connection, the same user's other tabs
// included, gets them. A session id sent by another user hides nothing.
// The stamp never appears in the event JSON. Emit(nil, ...) stamps
// nothing.
//
// Neither mode changes what happens after the broker: a hub delivers live
// events at most once per connection and recovers gaps and reconnects
// from the broker's bounded history; beyond it clients get
// recovered:false and refetch. docs/delivery.md has the details.
package telegraphy
