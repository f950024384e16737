package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
)

// TestMemoryDuplicateIDs: an event id still in a channel's history is not
// published again; once it has left the history it is. Histories both
// shorter and longer than the broker's small-ring threshold are covered.
func TestMemoryDuplicateIDs(t *testing.T) {
	for _, size := range []int{3, 16, 17, 40} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m := broker.NewMemory(broker.MemoryConfig{HistorySize: size})
			defer m.Close(ctx)
			sub, err := m.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Add(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			publish := func(id string) {
				t.Helper()
				if err := m.Publish(ctx, broker.Message{EventID: id, Channels: []string{"c"}, Data: []byte(`1`)}); err != nil {
					t.Fatal(err)
				}
			}
			received := func() int {
				n := 0
				for {
					select {
					case <-sub.C():
						n++
					default:
						return n
					}
				}
			}
			publish("") // no id: never a duplicate
			publish("")
			for i := 0; i < size+5; i++ {
				publish(fmt.Sprint("e", i))
			}
			if n := received(); n != size+7 {
				t.Fatalf("received %d, want %d", n, size+7)
			}
			// The history holds e5 .. e<size+4>.
			for _, id := range []string{"e5", fmt.Sprint("e", size/2+5), fmt.Sprint("e", size+4)} {
				publish(id)
			}
			publish("e4")
			if n := received(); n != 1 {
				t.Errorf("re-publishing ids in the history and e4 (evicted) delivered %d, want 1", n)
			}
			res, err := m.History(ctx, "c", &broker.Position{Epoch: "", Offset: 0})
			if err != nil {
				t.Fatal(err)
			}
			if res.Position.Offset != uint64(size+8) {
				t.Errorf("offset %d, want %d", res.Position.Offset, size+8)
			}
		})
	}
}

// TestMemoryEpochs: every channel gets its own epoch, and so does every
// broker.
func TestMemoryEpochs(t *testing.T) {
	ctx := context.Background()
	seen := map[string]bool{}
	for b := 0; b < 3; b++ {
		m := broker.NewMemory()
		for i := 0; i < 100; i++ {
			res, err := m.History(ctx, fmt.Sprint("ch", i), nil)
			if err != nil {
				t.Fatal(err)
			}
			if e := res.Position.Epoch; len(e) != 12 || seen[e] {
				t.Fatalf("epoch %q (seen before: %v)", e, seen[e])
			}
			seen[res.Position.Epoch] = true
		}
		m.Close(ctx)
	}
}

// TestMemoryEmptyChannel: an empty channel name is refused everywhere, and
// a Publish naming one publishes none of its messages.
func TestMemoryEmptyChannel(t *testing.T) {
	ctx := context.Background()
	m := broker.NewMemory()
	defer m.Close(ctx)
	sub, err := m.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Add(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	err = m.Publish(ctx,
		broker.Message{EventID: "1", Channels: []string{"c"}, Data: []byte(`1`)},
		broker.Message{EventID: "2", Channels: []string{"c", ""}, Data: []byte(`2`)})
	if !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("Publish with an empty channel: %v, want ErrEmptyChannel", err)
	}
	if h := history(t, m, "c", nil); h.Position.Offset != 0 {
		t.Errorf("channel c is at offset %d after the refused Publish, want 0", h.Position.Offset)
	}
	select {
	case p := <-sub.C():
		t.Errorf("the refused Publish delivered %s", p.Data)
	default:
	}
	if _, err := m.History(ctx, "", nil); !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("History of an empty channel: %v, want ErrEmptyChannel", err)
	}
	if err := sub.Add(ctx, "d", ""); !errors.Is(err, broker.ErrEmptyChannel) {
		t.Errorf("Add of an empty channel: %v, want ErrEmptyChannel", err)
	}
	if err := m.Publish(ctx, broker.Message{EventID: "3", Channels: []string{"d"}, Data: []byte(`3`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-sub.C():
		t.Errorf("the refused Add subscribed to d: received %s", p.Data)
	default:
	}
}
