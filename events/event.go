package events

import (
	"encoding/json"
	"time"

	"github.com/telegraphy-go/telegraphy/internal/wire"
)

// Event types carried in Meta.EventType for model events. A custom event
// carries the name its publisher chose.
const (
	TypeCreate     = "create"
	TypeUpdate     = "update"
	TypeDelete     = "delete"
	TypeBulkUpdate = "bulk_update"
	TypeBulkDelete = "bulk_delete"
	// TypeEnter is sent, with the whole row, to the channels an update
	// added the row to (Options.Channels); a client treats it like a
	// create.
	TypeEnter = "enter"
	// TypeLeave is sent, with the key and no data, to the channels an
	// update took the row out of; a client treats it like a delete.
	TypeLeave = "leave"
)

// VersionTimeFormat is the layout of a time.Time version in
// Meta.Version: UTC with exactly nine fractional digits, so versions
// compare as text in the order of the times.
const VersionTimeFormat = "2006-01-02T15:04:05.000000000Z"

// TimestampFormat is the layout of Meta.Timestamp: RFC 3339 in UTC with
// exactly six fractional digits.
const TimestampFormat = "2006-01-02T15:04:05.000000Z"

// Event is one change as a browser receives it. Its JSON form is the wire
// contract documented in docs/protocol.md.
type Event struct {
	// Name is the event name: the model's Options.Name, or the name given
	// to a custom event.
	Name string `json:"name"`
	// Meta describes what happened.
	Meta Meta `json:"meta"`
	// Data is the payload, already encoded as a JSON value.
	Data json.RawMessage `json:"data"`
	// Channels are the channels the event is published to. They are not
	// part of the JSON form.
	Channels []string `json:"-"`
}

// Meta is the "meta" object of an Event.
type Meta struct {
	// EventType is create, update, delete, enter, leave, bulk_update,
	// bulk_delete or the name of a custom event.
	EventType string `json:"event_type"`
	// VerboseName is Options.VerboseName; omitted when empty.
	VerboseName string `json:"verbose_name,omitempty"`
	// Timestamp is when the event was built, formatted with TimestampFormat.
	Timestamp string `json:"timestamp"`
	// ID is unique per event (a UUIDv7); clients drop duplicates by it.
	ID string `json:"id"`
	// PK is the primary key: a scalar, or an object of JSON field name to
	// value for composite keys. Absent on bulk and custom events.
	PK any `json:"pk,omitempty"`
	// Version is the row's version (Options.Version): a number, or a
	// timestamp formatted with VersionTimeFormat. Absent when the model
	// declares none, and on bulk and custom events.
	Version any `json:"version,omitempty"`
	// Changed lists the JSON names of the columns an update assigned.
	Changed []string `json:"changed,omitempty"`
	// Soft is true on a soft delete.
	Soft bool `json:"soft,omitempty"`
	// Count is the number of rows a bulk_update or bulk_delete touched.
	Count int64 `json:"count,omitempty"`
}

// NewID returns a fresh event id: a UUIDv7, so ids sort by creation time.
func NewID() string {
	id := wire.NewID(time.Now())
	return string(wire.AppendID(make([]byte, 0, 36), &id))
}

// Timestamp formats t as Meta.Timestamp expects.
func Timestamp(t time.Time) string {
	return string(wire.AppendTimestamp(make([]byte, 0, len(TimestampFormat)), t))
}

// Encode returns the JSON form of e: what json.Marshal(e) returns, except
// that Data (and a json.RawMessage PK) are copied as given rather than
// compacted. It writes directly because it runs once per event on the
// commit path. Callers
// encode an event once and share the bytes with every channel and
// subscriber.
func (e *Event) Encode() ([]byte, error) {
	if e.Data == nil {
		e.Data = json.RawMessage("null")
	}
	if !json.Valid(e.Data) {
		return json.Marshal(e) // reports the error as encoding/json would
	}
	m := &e.Meta
	b := make([]byte, 0, 160+len(e.Name)+len(m.VerboseName)+len(e.Data))
	b = append(b, `{"name":`...)
	b = wire.AppendString(b, e.Name)
	b = append(b, `,"meta":{"event_type":`...)
	b = wire.AppendString(b, m.EventType)
	if m.VerboseName != "" {
		b = append(b, `,"verbose_name":`...)
		b = wire.AppendString(b, m.VerboseName)
	}
	b = append(b, `,"timestamp":`...)
	b = wire.AppendString(b, m.Timestamp)
	b = append(b, `,"id":`...)
	b = wire.AppendString(b, m.ID)
	if m.PK != nil {
		var pk []byte
		if raw, ok := m.PK.(json.RawMessage); ok && json.Valid(raw) {
			pk = raw
		} else {
			var err error
			if pk, err = json.Marshal(m.PK); err != nil {
				return nil, err
			}
		}
		if string(pk) != "null" {
			b = append(b, `,"pk":`...)
			b = append(b, pk...)
		}
	}
	if m.Version != nil {
		v, err := json.Marshal(m.Version)
		if err != nil {
			return nil, err
		}
		if string(v) != "null" {
			b = append(b, `,"version":`...)
			b = append(b, v...)
		}
	}
	b = wire.AppendMetaTail(b, m.Changed, m.Soft, m.Count)
	b = append(b, e.Data...)
	return append(b, '}'), nil
}
