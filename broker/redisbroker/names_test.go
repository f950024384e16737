package redisbroker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// oddNames are channel names that play with Redis Cluster's hash-tag
// rule ("{...}") and the broker's key layout.
var oddNames = []string{"}x", "}", "a}b", "{}", "x{y}z", "}:pub", "#0123456789abcdef", "#0123456789abcdef}:x", "plain"}

// TestChannelNamesRoundTrip: every channel name maps to keys whose hash
// tag is not empty and is the same for all of its keys, and its pub/sub
// channel maps back to it.
func TestChannelNamesRoundTrip(t *testing.T) {
	b := &Broker{cfg: Config{Prefix: "telegraphy"}}
	for _, ch := range oddNames {
		var tags []string
		for _, k := range []string{b.metaKey(ch), b.streamKey(ch), b.idsKey(ch), b.pubChannel(ch)} {
			open := strings.IndexByte(k, '{')
			end := strings.IndexByte(k[open+1:], '}')
			if open < 0 || end <= 0 {
				t.Errorf("%q: key %q has an empty hash tag", ch, k)
				continue
			}
			tags = append(tags, k[open+1:open+1+end])
		}
		if len(tags) < 4 {
			continue
		}
		for _, tag := range tags[1:] {
			if tag != tags[0] {
				t.Errorf("%q: keys with different hash tags %q", ch, tags)
			}
		}
		if got, ok := b.channelOf(b.pubChannel(ch)); !ok || got != ch {
			t.Errorf("channelOf(pubChannel(%q)) = %q, %v", ch, got, ok)
		}
	}
	for _, pub := range []string{"telegraphy:{}:pub", "telegraphy:{#00}:x:pub", "other:{a}:pub", "telegraphy:{a}"} {
		if ch, ok := b.channelOf(pub); ok {
			t.Errorf("channelOf(%q) = %q, want no channel", pub, ch)
		}
	}
}

// TestBadEventIDsAndChannels: Publish, History and Add refuse what would
// break the pub/sub framing or cannot be a channel.
func TestBadEventIDsAndChannels(t *testing.T) {
	t.Parallel()
	b := newBroker(t, testenv.StartRedis(t).URL, Config{})
	mem := broker.NewMemory()
	defer mem.Close(context.Background())
	ctx := context.Background()
	for _, bb := range []broker.Broker{b, mem} {
		for _, tc := range []struct {
			m    broker.Message
			want error
		}{
			{msg("a\nb", "c"), broker.ErrBadEventID},
			{msg("a\rb", "c"), broker.ErrBadEventID},
			{msg(strings.Repeat("x", broker.MaxEventIDLength+1), "c"), broker.ErrBadEventID},
			{msg("ok", "c\n"), broker.ErrBadChannel},
			{msg("ok", "c\xff"), broker.ErrBadChannel},
		} {
			if err := bb.Publish(ctx, tc.m); !errors.Is(err, tc.want) {
				t.Errorf("%T: Publish(id %q, channels %q): %v, want %v", bb, tc.m.EventID, tc.m.Channels, err, tc.want)
			}
		}
		if _, err := bb.History(ctx, "c\n", nil); !errors.Is(err, broker.ErrBadChannel) {
			t.Errorf("%T: History: %v", bb, err)
		}
		s, err := bb.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(ctx, "c\x00"); !errors.Is(err, broker.ErrBadChannel) {
			t.Errorf("%T: Add: %v", bb, err)
		}
		_ = s.Close()
	}
}

// TestClusterOddChannelNames: on Redis Cluster, channels whose names hold
// braces subscribe, publish, keep history and are delivered like any
// other; a message to several of them reaches each.
func TestClusterOddChannelNames(t *testing.T) {
	t.Parallel()
	addrs := startCluster(t)
	app := newClusterBroker(t, addrs)
	hub := newClusterBroker(t, addrs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, ch := range oddNames {
		if _, err := hub.History(ctx, ch, nil); err != nil {
			t.Fatalf("History(%q): %v", ch, err)
		}
	}
	sub := subscribe(t, hub, oddNames...)
	if err := app.Publish(ctx, msg("e1", oddNames...)); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for range oddNames {
		p := receive(t, sub, 10*time.Second)
		got[p.Channel] = p.Offset
	}
	for _, ch := range oddNames {
		if got[ch] != 1 {
			t.Errorf("%q: offset %d, want 1", ch, got[ch])
		}
		res, err := hub.History(ctx, ch, &broker.Position{})
		if err != nil {
			t.Errorf("History(%q): %v", ch, err)
		} else if res.Position.Offset != 1 {
			t.Errorf("History(%q): position %+v", ch, res.Position)
		}
	}
	if st := app.Stats(); st.Dropped != 0 {
		t.Errorf("dropped %d", st.Dropped)
	}
}
