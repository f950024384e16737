// Package events defines the event as browsers receive it (Event, Meta),
// the options a model is registered with (Options, Operation), and the
// resolution of a model type against those options (Model, Registry): which
// columns are sent under which JSON names, how the primary key and data are
// encoded.
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
// A Model is immutable once built; Registry and Model methods are safe for
// concurrent use.
//
// # Delivery
//
// This package does not deliver anything: it builds and encodes events.
// An event is encoded once (Event.Encode) and the same bytes go to every
// channel and subscriber.
package events
