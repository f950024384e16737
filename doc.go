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
// GORM has no commit callback. Initialize wraps the DB's connection pool;
// every transaction begun through it (db.Begin, db.Transaction, the
// implicit transaction around each write, prepared-statement sessions)
// is a wrapper whose Commit publishes the events buffered for it, in
// statement order and in one Broker.Publish call, and whose Rollback drops
// them. SAVEPOINT and ROLLBACK TO statements (SavePoint, RollbackTo, nested
// Transaction) pass through the wrapper too, which cuts the buffer back to
// the savepoint. A write outside any transaction (SkipDefaultTransaction,
// globally or per session) publishes as soon as the statement succeeds.
//
// Paths the plugin cannot follow fail loudly: a write of a registered
// model through db.Connection or through a transaction begun outside GORM
// fails with ErrUntracked before it runs, and so does Emit. Initialize
// refuses a DB that already uses gorm.io/plugin/dbresolver, whose sources
// were opened without the plugin. A dbresolver registered after the plugin
// is fine: it opens its sources with the DB's config, which initializes the
// plugin on each of them.
// Writes without a model (db.Table("orders").Update, db.Exec) are not seen
// and emit nothing.
//
// # Updates and deletes
//
// An update event carries the row as committed, never the caller's struct:
// after the UPDATE the plugin re-reads the affected rows by primary key in
// the same transaction. When the statement names one row by the full
// primary key of a loaded instance that row is re-read; otherwise the keys
// are selected first with the statement's own WHERE (SELECT ... FOR UPDATE
// on PostgreSQL and MySQL; SQLite's single writer gives the same), at most
// the model's BulkLimit plus one. Beyond BulkLimit one bulk_update or
// bulk_delete event with meta.count replaces the per-row events. A hard
// delete reads the rows before deleting them; a soft delete re-reads them
// and sets meta.soft. A write outside a transaction that needs these reads
// runs in a transaction the plugin begins. meta.changed lists the JSON
// names of the assigned columns that are sent in data. No rows affected,
// no event. Create events carry the instance as written (with its new
// primary key); an upsert (OnConflict) emits create events.
//
// # Concurrency
//
// Register, Emit and every DB operation may be called from any goroutine.
// Publishing runs on the goroutine that commits, bounded by
// Config.PublishTimeout.
//
// # Delivery
//
// Events are published after the outermost commit succeeds. If the
// process dies between the commit and the publish, the events are lost:
// delivery is at most once. A failed publish never turns a committed
// transaction into an error: it goes to Config.ErrorHandler and the log.
// Each event is encoded once and the same bytes are sent to its model
// channel "<name>", its record channel "<name>:<pk>" and the channels of
// Options.Channels.
package telegraphy
