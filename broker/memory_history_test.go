package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
)

func publishN(t *testing.T, m *broker.Memory, ch string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		msg := broker.Message{EventID: fmt.Sprintf("%s-%d", ch, i), Channels: []string{ch}, Data: []byte(fmt.Sprint(i))}
		if err := m.Publish(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

// watch starts the channel's history, as a hub does when a client
// subscribes: History on a channel is what makes it keep history.
func watch(t *testing.T, m *broker.Memory, chs ...string) {
	t.Helper()
	for _, ch := range chs {
		if res := history(t, m, ch, nil); res.Position.Offset != 0 || res.Position.Epoch == "" {
			t.Fatalf("watch %s: %+v, want an epoch at offset 0", ch, res)
		}
	}
}

func history(t *testing.T, m *broker.Memory, ch string, since *broker.Position) broker.HistoryResult {
	t.Helper()
	res, err := m.History(context.Background(), ch, since)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestMemoryHistory: History serves exactly the publications after a
// position while the history reaches back to it, and says Recovered=false
// otherwise.
func TestMemoryHistory(t *testing.T) {
	m := broker.NewMemory(broker.MemoryConfig{HistorySize: 5})
	defer m.Close(context.Background())
	watch(t, m, "c")
	publishN(t, m, "c", 1, 8) // offsets 1..8, history keeps 4..8
	top := history(t, m, "c", nil)
	if top.Position.Offset != 8 || !top.Recovered || len(top.Publications) != 0 {
		t.Fatalf("History(nil) = %+v, want offset 8, recovered, no publications", top)
	}
	epoch := top.Position.Epoch
	cases := []struct {
		name      string
		since     broker.Position
		recovered bool
		offsets   []uint64
	}{
		{"within", broker.Position{Epoch: epoch, Offset: 5}, true, []uint64{6, 7, 8}},
		{"oldest kept", broker.Position{Epoch: epoch, Offset: 3}, true, []uint64{4, 5, 6, 7, 8}},
		{"up to date", broker.Position{Epoch: epoch, Offset: 8}, true, nil},
		{"past the history", broker.Position{Epoch: epoch, Offset: 2}, false, nil},
		{"other epoch", broker.Position{Epoch: "nope", Offset: 7}, false, nil},
		{"from the future", broker.Position{Epoch: epoch, Offset: 9}, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := history(t, m, "c", &tc.since)
			if res.Recovered != tc.recovered {
				t.Fatalf("Recovered = %v, want %v", res.Recovered, tc.recovered)
			}
			var got []uint64
			for _, p := range res.Publications {
				got = append(got, p.Offset)
				if string(p.Data) != fmt.Sprint(p.Offset) {
					t.Fatalf("offset %d carries %q", p.Offset, p.Data)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.offsets) {
				t.Fatalf("offsets = %v, want %v", got, tc.offsets)
			}
		})
	}
}

// TestMemoryHistoryStartsWhenWatched: a channel keeps history from the
// first time it has a subscriber or is asked for its History; before
// that its publications reach nobody and are not kept.
func TestMemoryHistoryStartsWhenWatched(t *testing.T) {
	ctx := context.Background()
	m := broker.NewMemory()
	defer m.Close(ctx)
	publishN(t, m, "unwatched", 1, 3)
	publishN(t, m, "subscribed", 1, 3)
	publishN(t, m, "asked", 1, 3)
	watch(t, m, "unwatched")
	sub, err := m.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Add(ctx, "subscribed"); err != nil {
		t.Fatal(err)
	}
	publishN(t, m, "subscribed", 4, 5)
	if p := <-sub.C(); p.Offset != 1 || string(p.Data) != "4" {
		t.Fatalf("first publication after Add: offset %d data %s, want offset 1 data 4", p.Offset, p.Data)
	}
	if err := sub.Remove(ctx, "subscribed"); err != nil {
		t.Fatal(err)
	}
	// Once watched, a channel keeps history with no subscriber left.
	publishN(t, m, "subscribed", 6, 6)
	res := history(t, m, "subscribed", &broker.Position{Epoch: "", Offset: 0})
	if res.Position.Offset != 3 {
		t.Fatalf("subscribed: %+v, want offset 3", res)
	}
	res = history(t, m, "subscribed", &broker.Position{Epoch: res.Position.Epoch, Offset: 0})
	if !res.Recovered || len(res.Publications) != 3 || string(res.Publications[0].Data) != "4" || string(res.Publications[2].Data) != "6" {
		t.Fatalf("subscribed history: %+v, want publications 4, 5, 6", res)
	}
	top := history(t, m, "asked", nil)
	publishN(t, m, "asked", 4, 4)
	if res := history(t, m, "asked", &top.Position); !res.Recovered || len(res.Publications) != 1 || res.Publications[0].Offset != 1 {
		t.Fatalf("asked: %+v, want publication 4 at offset 1", res)
	}
}

// TestMemoryMaxChannels: past MaxChannels the least recently used channel
// is forgotten (its epoch changes), and a recently used one is kept.
func TestMemoryMaxChannels(t *testing.T) {
	m := broker.NewMemory(broker.MemoryConfig{MaxChannels: 3})
	defer m.Close(context.Background())
	watch(t, m, "a", "b", "c")
	publishN(t, m, "a", 1, 2)
	publishN(t, m, "b", 1, 2)
	publishN(t, m, "c", 1, 2)
	a := history(t, m, "a", nil).Position // a is now the most recently used
	b := history(t, m, "b", nil).Position
	c := history(t, m, "c", nil).Position
	publishN(t, m, "a", 3, 3) // order of use, oldest first: b, c, a
	watch(t, m, "d")          // evicts b
	if res := history(t, m, "a", &a); !res.Recovered || len(res.Publications) != 1 {
		t.Fatalf("a: %+v, want its one new publication", res)
	}
	if res := history(t, m, "c", &c); !res.Recovered {
		t.Fatalf("c was forgotten before b: %+v", res)
	}
	res := history(t, m, "b", &b) // evicts the least recent again, b comes back empty
	if res.Recovered || res.Position.Epoch == b.Epoch || res.Position.Offset != 0 {
		t.Fatalf("b: %+v, want a new epoch at offset 0 and Recovered=false", res)
	}
}

// TestMemoryHistoryTTL: publications older than HistoryTTL leave the
// history, and a channel unused that long is forgotten.
func TestMemoryHistoryTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the once-a-second sweep")
	}
	m := broker.NewMemory(broker.MemoryConfig{HistoryTTL: 200 * time.Millisecond})
	defer m.Close(context.Background())
	watch(t, m, "old", "kept")
	publishN(t, m, "old", 1, 3)
	publishN(t, m, "kept", 1, 3)
	old := history(t, m, "old", nil).Position
	kept := history(t, m, "kept", nil).Position
	start := broker.Position{Epoch: kept.Epoch, Offset: 0}
	// Let time pass on purpose: the first three publications must be
	// older than HistoryTTL (200 ms) when the fourth is published.
	time.Sleep(600 * time.Millisecond)
	publishN(t, m, "kept", 4, 4)
	// The first three have expired: a position before them is lost, one
	// after them still recovers.
	if res := history(t, m, "kept", &start); res.Recovered {
		t.Fatalf("expired publications recovered: %+v", res)
	}
	if res := history(t, m, "kept", &kept); !res.Recovered || len(res.Publications) != 1 {
		t.Fatalf("kept: %+v, want the one new publication", res)
	}
	// Let time pass on purpose: the sweep of idle channels runs at most
	// once a second, on a publication.
	time.Sleep(1100 * time.Millisecond)
	publishN(t, m, "kept", 5, 5) // runs the sweep
	if res := history(t, m, "old", &old); res.Recovered || res.Position.Epoch == old.Epoch {
		t.Fatalf("old channel not forgotten: %+v", res)
	}
}

// TestMemoryHistoryTTLFromPublish: HistoryTTL counts from when the broker
// got a publication, not from the event's own time: an event written an
// hour ago and published now (an outbox relay catching up, a clock behind)
// stays in the history like any other, and keeps its time.
func TestMemoryHistoryTTLFromPublish(t *testing.T) {
	ctx := context.Background()
	m := broker.NewMemory(broker.MemoryConfig{HistoryTTL: time.Minute})
	defer m.Close(ctx)
	watch(t, m, "c")
	start := history(t, m, "c", nil).Position
	written := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := m.Publish(ctx, broker.Message{EventID: "late", Channels: []string{"c"}, Data: []byte("1"), Time: written}); err != nil {
		t.Fatal(err)
	}
	publishN(t, m, "c", 2, 2)
	res := history(t, m, "c", &start)
	if !res.Recovered || len(res.Publications) != 2 {
		t.Fatalf("history since the start: %+v, want both publications", res)
	}
	if p := res.Publications[0]; p.EventID != "late" || !p.Time.Equal(written) {
		t.Fatalf("first publication %+v, want event late with its time %v", p, written)
	}
}

// TestMemorySlowSubscriber: a full subscription drops new publications
// for itself only, counts them, and never blocks the publisher.
func TestMemorySlowSubscriber(t *testing.T) {
	ctx := context.Background()
	m := broker.NewMemory(broker.MemoryConfig{SubscriberBuffer: 4})
	defer m.Close(ctx)
	slow, _ := m.Subscribe(ctx)
	fast, _ := m.Subscribe(ctx)
	for _, s := range []broker.Subscription{slow, fast} {
		if err := s.Add(ctx, "c"); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan uint64, 10)
	go func() {
		for p := range fast.C() {
			got <- p.Offset
		}
		close(got)
	}()
	for i := 1; i <= 10; i++ {
		publishN(t, m, "c", i, i)
		if o := <-got; o != uint64(i) {
			t.Fatalf("fast subscriber got offset %d, want %d", o, i)
		}
	}
	if d := slow.Dropped(); d != 6 {
		t.Fatalf("slow subscriber dropped %d, want 6", d)
	}
	for i := 1; i <= 4; i++ {
		if p := <-slow.C(); p.Offset != uint64(i) {
			t.Fatalf("slow subscriber got offset %d, want %d", p.Offset, i)
		}
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-got; ok {
		t.Fatal("fast subscription still open after Close")
	}
}
