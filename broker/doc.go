// Package broker carries encoded events from the processes that produce
// them to the hubs that deliver them, and keeps a bounded history per
// channel so a reconnecting client can recover what it missed.
//
// Memory, from NewMemory, is the in-process default: one process publishes
// and serves. The redisbroker package implements the same Broker interface
// over Redis for many app processes and many hubs.
//
// # Configuration
//
// The project's packages share one rule for configuration values: a zero
// field means the default its comment documents; a negative value is an
// error naming the field, except in the fields whose comment gives
// negative values a meaning. NewMemory cannot fail, so MemoryConfig is
// the one exception: a negative HistorySize keeps none, and any other
// negative field counts as zero.
//
// # Concurrency
//
// Every Broker and Subscription method is safe to call from any goroutine.
//
// # Delivery
//
// Within a channel, publications carry offsets that grow by one and are
// delivered in offset order. A subscription's buffer is bounded; when it is
// full, Memory drops the new publication for that subscription only and
// counts it in Dropped, so one slow consumer never slows a publisher or
// other subscribers. A consumer that sees an offset jump recovers the gap
// with History, which answers Recovered=false once the history no longer
// reaches back (size or age limit passed, or the channel's epoch changed).
//
// # Optional interfaces
//
// What a broker can do beyond Broker it declares by implementing small
// interfaces, which users of a Broker test for: BoundedHistory (a history
// read that refuses a recovery over a limit before reading it), Pinger (a
// health check of a remote service) and Synchronous (Publish returning nil
// means delivered, and never waits). Memory implements BoundedHistory and
// Synchronous; redisbroker implements BoundedHistory and Pinger; Recorder
// reports the Synchronous answer of the broker it wraps.
package broker
