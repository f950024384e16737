// Package events defines the event as browsers receive it (Event, Meta),
// the options a model is registered with (Options, Operation), the
// registration errors, and the interfaces a model may implement (Eventer,
// DataProvider). It imports nothing from GORM, so the hub, the brokers and
// the token handler can use its types without pulling GORM in; the
// plugin resolves a model type against its Options itself.
//
// Data encoding follows encoding/json where it can and a database's view
// where it must: keys are JSON names (a `json:"-"` field is never sent,
// even when listed in Options.Fields), values implementing json.Marshaler
// use it (time.Time as RFC 3339, gorm.DeletedAt, decimal types), values
// implementing driver.Valuer otherwise send their database value (sql.Null*
// as the value or null), nil pointers are null, []byte is base64 as in
// encoding/json. Associations are not columns and are never followed. A
// model implementing DataProvider sends EventData() instead.
//
// Options.Version names a row's version field (an integer or a
// time.Time); each event of the row then carries it in meta.version, so
// a client can drop an event that reaches it after a newer one, as events
// of several processes publishing after their own commits can.
//
// # Concurrency
//
// NewID and Timestamp are safe for concurrent use. Event.Encode fills in
// a nil Data, so an Event must not be encoded from two goroutines at once.
//
// # Delivery
//
// This package does not deliver anything: it defines and encodes events.
// An event is encoded once (Event.Encode) and the same bytes go to every
// channel and subscriber.
package events
