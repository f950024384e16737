package wire_test

import (
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/internal/wire"
)

func TestTimestampFormat(t *testing.T) {
	if wire.TimestampFormat != events.TimestampFormat {
		t.Fatalf("wire.TimestampFormat %q, events.TimestampFormat %q", wire.TimestampFormat, events.TimestampFormat)
	}
	for _, at := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6007000, time.FixedZone("y", -7200)),
		time.Date(1, 1, 1, 0, 0, 0, 999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := string(wire.AppendTimestamp(nil, at)), at.UTC().Format(events.TimestampFormat); got != want {
			t.Errorf("AppendTimestamp(%v) = %s, want %s", at, got, want)
		}
	}
}
