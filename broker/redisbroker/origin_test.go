package redisbroker

import (
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// TestOrigin: a message's Origin reaches subscribers and the history, on
// a watched channel, one that gets its history from its first subscriber,
// and with NoHistory; the event id it rides beside still dedupes.
func TestOrigin(t *testing.T) {
	b := newBroker(t, testenv.RedisURL(t), Config{})
	o := broker.Origin{Session: "9f1c2b7a4e5d6c3b", Subject: "user 17 ✓"}
	watch(t, b, "o.watched")
	s := subscribe(t, b, "o.watched", "o.live")
	stamped := func(m broker.Message) broker.Message { m.Origin = o; return m }
	noHistory := stamped(msg("e3", "o.watched"))
	noHistory.NoHistory = true
	publish(t, b, stamped(msg("e1", "o.watched", "o.live")), msg("e2", "o.watched"), noHistory,
		stamped(msg("e1", "o.watched"))) // a duplicate of e1: kept once
	want := []struct {
		channel, id string
		origin      broker.Origin
	}{
		{"o.watched", "e1", o}, {"o.live", "e1", o}, {"o.watched", "e2", broker.Origin{}}, {"o.watched", "e3", o},
	}
	got := map[string]broker.Publication{}
	for range want {
		p := receive(t, s, 10*time.Second)
		got[p.Channel+" "+p.EventID] = p
	}
	for _, w := range want {
		p, ok := got[w.channel+" "+w.id]
		if !ok {
			t.Fatalf("no publication of %s on %s; got %v", w.id, w.channel, got)
		}
		if p.Origin != w.origin || string(p.Data) != `{"id":"`+w.id+`"}` {
			t.Errorf("%s on %s: origin %+v data %s, want origin %+v", w.id, w.channel, p.Origin, p.Data, w.origin)
		}
	}
	expectNone(t, s, 200*time.Millisecond)
	res := history(t, b, "o.watched", 2)
	if len(res.Publications) != 2 || res.Publications[0].EventID != "e1" || res.Publications[0].Origin != o ||
		res.Publications[1].EventID != "e2" || !res.Publications[1].Origin.IsZero() {
		t.Fatalf("history: %+v", res.Publications)
	}
}

func TestDecodePubOrigin(t *testing.T) {
	for _, c := range []struct {
		payload string
		id      string
		origin  broker.Origin
	}{
		{"1\ne\n5\nid\n123\n{}", "id", broker.Origin{}},
		{"1\ne\n5\nid\x1fs\x1fu\n123\n{}", "id", broker.Origin{Session: "s", Subject: "u"}},
		{"1\ne\n5\nid\x1fs\n123\n{}", "id", broker.Origin{}},           // no subject: none
		{"1\ne\n5\nid\x1fs\x1fu\x1fx\n123\n{}", "id", broker.Origin{}}, // control character in the subject
		{"1\ne\n5\nid\x1f\x1fu\n123\n{}", "id", broker.Origin{}},       // no session
	} {
		p, err := decodePub("ch", []byte(c.payload))
		if err != nil {
			t.Fatalf("%q: %v", c.payload, err)
		}
		if p.EventID != c.id || p.Origin != c.origin || string(p.Data) != "{}" || p.Offset != 5 {
			t.Errorf("%q: got %+v", c.payload, p)
		}
	}
}
