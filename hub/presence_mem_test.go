package hub

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
)

// TestPresenceMemoryCost measures the memory one present member costs a
// hub and its in-process broker: n subjects join one channel with
// presence, each through its own connection, with a 20-byte info. The
// connections themselves are not counted (they exist without presence).
// docs/scaling.md quotes the figure.
func TestPresenceMemoryCost(t *testing.T) {
	const n = 20_000
	b := broker.NewMemory()
	defer b.Close(context.Background())
	h, err := New(Config{Broker: b, Secret: make([]byte, 32), Presence: []string{"doc:*"}, MaxPresenceMembers: n,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	conns := make([]*conn, n)
	for i := range conns {
		conns[i] = &conn{h: h, subject: "user-" + strconv.Itoa(100000+i)}
	}
	info := json.RawMessage(`{"name":"Ada Lovela"}`)
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for _, c := range conns {
		h.presence.join(ctx, c, "doc:1", info, false)
	}
	after := heap()
	members, err := b.Presence(ctx, "doc:1", 0)
	if err != nil || len(members) != n {
		t.Fatalf("Presence: %d members, %v", len(members), err)
	}
	per := float64(after-before) / n
	t.Logf("presence: %.0f bytes per member (hub and in-process broker, %d members on one channel, 20-byte info)", per, n)
	if per > 2048 {
		t.Errorf("presence costs %.0f bytes per member, more than 2 KiB", per)
	}
	for _, c := range conns {
		h.presence.leave(ctx, c, "doc:1")
	}
	// Their leaves wait PresenceLeaveDelay; closing the hub sends them.
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b.PresenceChannels() != 0 {
		t.Errorf("broker keeps presence after every member left and the hub closed")
	}
	runtime.KeepAlive(conns)
}
