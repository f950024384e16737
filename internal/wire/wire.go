// Package wire holds the low-level appenders of the event JSON form: ids,
// timestamps, JSON strings and the tail of the meta object. The events
// package (Event.Encode, NewID, Timestamp) and the model encoder both
// write through them, so the two produce the same bytes.
package wire

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// TimestampFormat is the layout of meta.timestamp (events.TimestampFormat).
const TimestampFormat = "2006-01-02T15:04:05.000000Z"

// lastID is the unix_ts_ms<<12 | rand_a of the newest id: rand_a holds
// the sub-millisecond time in 1/4096 ms steps, bumped when two ids would
// share it, so the ids of one process sort in the order they were made
// (the scheme of google/uuid's NewV7).
var lastID atomic.Int64

// NewID returns a UUIDv7 for time t. Its 62 random bits come from the
// runtime's ChaCha8 generator, seeded from the OS: ids need to be unique,
// not secret, and this needs no system call or lock.
func NewID(t time.Time) [16]byte {
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

// AppendID appends u in the canonical 8-4-4-4-12 hex form.
func AppendID(b []byte, u *[16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return b
}

// AppendTimestamp appends t formatted with TimestampFormat, without
// parsing the layout for the years time.Now gives.
func AppendTimestamp(b []byte, t time.Time) []byte {
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

// AppendMetaTail appends the members of meta after "pk" and "version"
// (changed, soft, count), closes meta and opens data.
func AppendMetaTail(b []byte, changed []string, soft bool, count int64) []byte {
	if len(changed) > 0 {
		b = append(b, `,"changed":[`...)
		for i, c := range changed {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, c)
		}
		b = append(b, ']')
	}
	if soft {
		b = append(b, `,"soft":true`...)
	}
	if count != 0 {
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, count, 10)
	}
	return append(b, `},"data":`...)
}

// AppendString appends s as a JSON string, escaped as encoding/json does.
func AppendString(b []byte, s string) []byte {
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
