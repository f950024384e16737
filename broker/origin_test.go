package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/telegraphy-go/telegraphy/broker"
)

func TestMemoryOrigin(t *testing.T) {
	m := broker.NewMemory()
	defer m.Close(context.Background())
	ctx := context.Background()
	start, err := m.History(ctx, "c", nil) // the channel keeps history from now on
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Add(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	o := broker.Origin{Session: "s1", Subject: "17"}
	if err := m.Publish(ctx, broker.Message{EventID: "a", Channels: []string{"c"}, Data: []byte("1"), Origin: o}); err != nil {
		t.Fatal(err)
	}
	if p := <-s.C(); p.Origin != o {
		t.Errorf("live: origin %+v, want %+v", p.Origin, o)
	}
	h, err := m.History(ctx, "c", &start.Position)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Publications) != 1 || h.Publications[0].Origin != o {
		t.Errorf("history: %+v", h.Publications)
	}
}

func TestCheckMessagesOrigin(t *testing.T) {
	for _, c := range []struct {
		o  broker.Origin
		ok bool
	}{
		{broker.Origin{}, true},
		{broker.Origin{Session: "s", Subject: "u"}, true},
		{broker.Origin{Session: "s"}, false},
		{broker.Origin{Subject: "u"}, false},
		{broker.Origin{Session: "s\x1f", Subject: "u"}, false},
		{broker.Origin{Session: "s", Subject: "u\n"}, false},
		{broker.Origin{Session: strings.Repeat("s", broker.MaxOriginLength+1), Subject: "u"}, false},
	} {
		err := broker.CheckMessages(broker.Message{EventID: "a", Channels: []string{"c"}, Origin: c.o})
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, broker.ErrBadOrigin)) {
			t.Errorf("origin %q: err %v", c.o, err)
		}
		if c.ok && broker.DecodeOrigin(broker.EncodeOrigin(c.o)) != c.o {
			t.Errorf("origin %q does not survive EncodeOrigin/DecodeOrigin", c.o)
		}
	}
}
