package hub_test

import (
	"context"
	"sync"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
)

// gatedBroker is a memory broker whose history reads and live deliveries
// a test can hold, to order a hub's subscribes against its dispatcher.
type gatedBroker struct {
	mem *broker.Memory

	mu sync.Mutex
	// holdSince: a history read from this offset waits, once it has
	// read, until release is closed; read is closed when it has read.
	holdSince uint64
	read      chan struct{}
	release   chan struct{}
	// live holds deliveries to the hub while paused.
	paused bool
	resume chan struct{}
}

func (g *gatedBroker) Publish(ctx context.Context, msgs ...broker.Message) error {
	return g.mem.Publish(ctx, msgs...)
}

func (g *gatedBroker) Close(ctx context.Context) error { return g.mem.Close(ctx) }

func (g *gatedBroker) History(ctx context.Context, channel string, since *broker.Position) (broker.HistoryResult, error) {
	res, err := g.mem.History(ctx, channel, since)
	g.mu.Lock()
	hold := since != nil && since.Offset == g.holdSince && g.read != nil
	read, release := g.read, g.release
	if hold {
		g.read = nil
	}
	g.mu.Unlock()
	if hold {
		close(read)
		<-release
	}
	return res, err
}

func (g *gatedBroker) Subscribe(ctx context.Context) (broker.Subscription, error) {
	sub, err := g.mem.Subscribe(ctx)
	if err != nil {
		return nil, err
	}
	gs := &gatedSub{Subscription: sub, c: make(chan broker.Publication, 64)}
	go func() {
		defer close(gs.c)
		for p := range sub.C() {
			g.mu.Lock()
			resume := g.resume
			paused := g.paused
			g.mu.Unlock()
			if paused {
				<-resume
			}
			gs.c <- p
		}
	}()
	return gs, nil
}

type gatedSub struct {
	broker.Subscription
	c chan broker.Publication
}

func (s *gatedSub) C() <-chan broker.Publication { return s.c }

// TestSubscribeBehindAnotherSubscribe: two clients resubscribe, with the
// positions they saw, to a channel that has no other subscriber on the
// hub. The first reads the history up to offset 2; events 3 and 4 are
// published; the second reads up to 4 and completes before the hub's
// dispatcher has delivered them live; then the first completes. The first
// receives 3 and 4 after its subscribed reply, both receive 5, and neither
// is told that events were lost.
func TestSubscribeBehindAnotherSubscribe(t *testing.T) {
	mem := broker.NewMemory()
	withBroker(t, mem)
	g := &gatedBroker{mem: mem}
	e := newEnvWith(t, hub.Config{Secret: testSecret, Broker: g, Logger: quietLogger(), ServeMetrics: true}, mem)
	res, err := mem.History(context.Background(), "c", nil) // the channel keeps history from now
	if err != nil {
		t.Fatal(err)
	}
	epoch := res.Position.Epoch
	e.publish("c", 2)
	first, second := e.connect("a", "c"), e.connect("b", "c")

	g.mu.Lock()
	g.holdSince, g.read, g.release = 1, make(chan struct{}), make(chan struct{})
	read, release := g.read, g.release
	g.mu.Unlock()
	first.send(`{"type":"subscribe","id":1,"channel":"c","since":{"epoch":"` + epoch + `","offset":1}}`)
	<-read // the first has read offset 2, and the position 2

	// The dispatcher holds what is published now while the second
	// subscribes.
	g.mu.Lock()
	g.paused, g.resume = true, make(chan struct{})
	resume := g.resume
	g.mu.Unlock()
	more := e.publish("c", 2) // offsets 3 and 4
	sub := second.subscribe(1, "c", &broker.Position{Epoch: epoch, Offset: 2})
	if sub.Offset != 4 || !sub.Recovered {
		t.Fatalf("second subscribed %s, want offset 4, recovered", sub)
	}
	g.mu.Lock()
	g.paused = false
	g.mu.Unlock()
	close(resume)
	// The dispatcher takes 3 and 4 before the first completes.
	if got := e.waitMetric("telegraphy_hub_events_received_total", 2); got != 2 {
		t.Fatalf("the hub received %v publications, want 2", got)
	}
	close(release)
	m := first.expect("subscribed")
	if m.Offset != 2 || !m.Recovered {
		t.Fatalf("first subscribed %s, want offset 2, recovered", m)
	}
	first.expectEvents("c", 2, more)
	last := e.publish("c", 1)
	first.expectEvents("c", 4, last)
	second.expectEvents("c", 4, last)
}
