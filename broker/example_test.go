package broker_test

import (
	"context"
	"fmt"
	"log"

	"github.com/telegraphy-go/telegraphy/broker"
)

// Publish and subscribe on the in-process broker, then recover what a
// subscriber missed from a position it saw.
func ExampleMemory() {
	ctx := context.Background()
	bus := broker.NewMemory()
	defer bus.Close(ctx)

	sub, err := bus.Subscribe(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Add(ctx, "shop.Order"); err != nil {
		log.Fatal(err)
	}
	for i, id := range []string{"e1", "e2", "e3"} {
		err := bus.Publish(ctx, broker.Message{
			EventID:  id,
			Channels: []string{"shop.Order"},
			Data:     fmt.Appendf(nil, `{"n":%d}`, i+1),
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	var first broker.Position
	for range 3 {
		p := <-sub.C()
		if p.Offset == 1 {
			first = broker.Position{Epoch: p.Epoch, Offset: p.Offset}
		}
		fmt.Println("live:", p.Channel, p.Offset, string(p.Data))
	}

	// A client that saw offset 1 and reconnects asks for what followed.
	res, err := bus.History(ctx, "shop.Order", &first)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("recovered:", res.Recovered, "position:", res.Position.Offset)
	for _, p := range res.Publications {
		fmt.Println("missed:", p.Offset, string(p.Data))
	}
	// Output:
	// live: shop.Order 1 {"n":1}
	// live: shop.Order 2 {"n":2}
	// live: shop.Order 3 {"n":3}
	// recovered: true position: 3
	// missed: 2 {"n":2}
	// missed: 3 {"n":3}
}

// A Recorder keeps what is published, for tests of code that publishes.
func ExampleRecorder() {
	rec := broker.NewRecorder(nil)
	_ = rec.Publish(context.Background(), broker.Message{
		EventID:  "e1",
		Channels: []string{"shop.Order", "shop.Order:42"},
		Data:     []byte(`{"name":"shop.Order","meta":{"event_type":"create","timestamp":"2026-11-25T17:37:03.123456Z","id":"e1","pk":42},"data":{"id":42}}`),
	})
	for _, e := range rec.Events() {
		fmt.Println(e.Name, e.Meta.EventType, e.Meta.PK, e.Channels)
	}
	// Output:
	// shop.Order create 42 [shop.Order shop.Order:42]
}
