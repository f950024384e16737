package events

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// Event types carried in Meta.EventType for model events. A custom event
// carries the name its publisher chose.
const (
	TypeCreate     = "create"
	TypeUpdate     = "update"
	TypeDelete     = "delete"
	TypeBulkUpdate = "bulk_update"
	TypeBulkDelete = "bulk_delete"
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
	// EventType is create, update, delete, bulk_update, bulk_delete or the
	// name of a custom event.
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
	id := newID(time.Now())
	return string(appendID(make([]byte, 0, 36), &id))
}

// lastID is the unix_ts_ms<<12 | rand_a of the newest id: rand_a holds
// the sub-millisecond time in 1/4096 ms steps, bumped when two ids would
// share it, so the ids of one process sort in the order they were made
// (the scheme of google/uuid's NewV7).
var lastID atomic.Int64

// newID returns a UUIDv7 for time t. Its 62 random bits come from the
// runtime's ChaCha8 generator, seeded from the OS: ids need to be unique,
// not secret, and this needs no system call or lock.
func newID(t time.Time) [16]byte {
	nano := t.UnixNano()
	milli := nano / 1e6
	next := milli<<12 | ((nano - milli*1e6) << 12 / 1e6)
	for {
		last := lastID.Load()
		n := next
		if n <= last {
			n = last + 1
		}
		if lastID.CompareAndSwap(last, n) {
			next = n
			break
		}
	}
	var u [16]byte
	ts, seq := uint64(next>>12), uint64(next&0xfff)
	binary.BigEndian.PutUint64(u[0:8], ts<<16|0x7000|seq)
	binary.BigEndian.PutUint64(u[8:16], rand.Uint64()&^(3<<62)|1<<63)
	return u
}

// appendID appends u in the canonical 8-4-4-4-12 hex form.
func appendID(b []byte, u *[16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}

// Timestamp formats t as Meta.Timestamp expects.
func Timestamp(t time.Time) string {
	return string(appendTimestamp(make([]byte, 0, len(TimestampFormat)), t))
}

// appendTimestamp appends t formatted with TimestampFormat, without
// parsing the layout for the years time.Now gives.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimestampFormat)
	}
	hour, min, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, min, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends the n (at most 6) lowest decimal digits of x,
// zero-padded.
func appendDigits(b []byte, x, n int) []byte {
	start := len(b)
	b = append(b, "000000"[:n]...)
	for i := len(b) - 1; i >= start; i-- {
		b[i] = byte('0' + x%10)
		x /= 10
	}
	return b
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
	b = appendString(b, e.Name)
	b = append(b, `,"meta":{"event_type":`...)
	b = appendString(b, m.EventType)
	if m.VerboseName != "" {
		b = append(b, `,"verbose_name":`...)
		b = appendString(b, m.VerboseName)
	}
	b = append(b, `,"timestamp":`...)
	b = appendString(b, m.Timestamp)
	b = append(b, `,"id":`...)
	b = appendString(b, m.ID)
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
	b = appendMetaTail(b, m)
	b = append(b, e.Data...)
	return append(b, '}'), nil
}

// appendMetaTail appends the members of meta after "pk" (changed, soft,
// count), closes meta and opens data.
func appendMetaTail(b []byte, m *Meta) []byte {
	if len(m.Changed) > 0 {
		b = append(b, `,"changed":[`...)
		for i, c := range m.Changed {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, c)
		}
		b = append(b, ']')
	}
	if m.Soft {
		b = append(b, `,"soft":true`...)
	}
	if m.Count != 0 {
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, m.Count, 10)
	}
	return append(b, `},"data":`...)
}

// appendString appends s as a JSON string, escaped as encoding/json does.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
