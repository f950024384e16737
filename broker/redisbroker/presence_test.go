package redisbroker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

var _ broker.Presencer = (*Broker)(nil)

func TestPresence(t *testing.T) {
	t.Parallel()
	url := testenv.StartRedis(t).URL
	b := newBroker(t, url, Config{})
	ctx := context.Background()
	long := broker.PresenceLease{TTL: time.Hour, MaxMembers: 2}
	subjects := func() []string {
		t.Helper()
		ms, err := b.Presence(ctx, "doc:1", 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Subject+string(m.Info))
		}
		return out
	}
	update := func(node string, add []broker.PresenceMember, remove []string, lease broker.PresenceLease) broker.PresenceChange {
		t.Helper()
		ch, err := b.UpdatePresence(ctx, "doc:1", node, add, remove, lease)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}

	// Reading creates nothing.
	if got := subjects(); len(got) != 0 {
		t.Fatalf("members of an empty channel: %v", got)
	}
	if n := b.client.Exists(ctx, b.presenceKeys("doc:1")...).Val(); n != 0 {
		t.Fatalf("%d presence keys after a read", n)
	}

	ch := update("A", []broker.PresenceMember{{Subject: "ada", Info: []byte(`{"n":1}`)}}, nil, long)
	if len(ch.Joined) != 1 || ch.Joined[0].Subject != "ada" || string(ch.Joined[0].Info) != `{"n":1}` {
		t.Fatalf("first add: %+v", ch)
	}
	// The same subject from another node is no join; its removal from one
	// node is no leave.
	if ch := update("B", []broker.PresenceMember{{Subject: "ada"}}, nil, long); len(ch.Joined)+len(ch.Left) != 0 {
		t.Fatalf("ada on B too: %+v", ch)
	}
	if ch := update("A", nil, []string{"ada"}, long); len(ch.Left) != 0 {
		t.Fatalf("ada removed from A: %+v", ch)
	}
	if got := subjects(); !slices.Equal(got, []string{"ada"}) {
		t.Fatalf("members: %v", got)
	}
	// The cap counts subjects.
	if ch := update("A", []broker.PresenceMember{{Subject: "bob"}, {Subject: "cy"}}, nil, long); !slices.Equal(ch.Full, []string{"cy"}) || len(ch.Joined) != 1 {
		t.Fatalf("third subject over a cap of 2: %+v", ch)
	}
	if ch := update("B", nil, []string{"ada"}, long); !slices.Equal(ch.Left, []string{"ada"}) {
		t.Fatalf("ada's last entry removed: %+v", ch)
	}

	// A node whose lease ends loses its members, at the next update of
	// any node; until then readers no longer see them.
	short := broker.PresenceLease{TTL: 100 * time.Millisecond, MaxMembers: 2}
	update("C", []broker.PresenceMember{{Subject: "dan"}}, nil, short)
	for deadline := time.Now().Add(10 * time.Second); slices.Contains(subjects(), "dan"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("dan still listed after his lease")
		}
	}
	if ch := update("A", nil, nil, long); !slices.Equal(ch.Left, []string{"dan"}) {
		t.Fatalf("expiry of C's entries: %+v", ch)
	}

	// Redis lost everything: a refresh restores the node's members as
	// joins.
	if err := b.client.Del(ctx, b.presenceKeys("doc:1")...).Err(); err != nil {
		t.Fatal(err)
	}
	if ch := update("A", []broker.PresenceMember{{Subject: "bob"}}, nil, long); len(ch.Joined) != 1 || ch.Joined[0].Subject != "bob" {
		t.Fatalf("refresh after data loss: %+v", ch)
	}

	// The last removal deletes the keys; the others expire with the
	// leases.
	update("A", nil, []string{"bob"}, long)
	if n := b.client.Exists(ctx, b.presenceKeys("doc:1")...).Val(); n != 0 {
		t.Fatalf("%d presence keys left after the last member", n)
	}
	update("A", []broker.PresenceMember{{Subject: "eve"}}, nil, long)
	for _, k := range b.presenceKeys("doc:1") {
		if ttl := b.client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour+2*time.Second {
			t.Errorf("%s expires in %v, want about an hour", k, ttl)
		}
	}

	if _, err := b.UpdatePresence(ctx, "doc:1", "", nil, nil, long); !errors.Is(err, broker.ErrBadPresence) {
		t.Errorf("empty node: %v", err)
	}
	if _, err := b.UpdatePresence(ctx, "doc:1", "A", []broker.PresenceMember{{}}, nil, long); !errors.Is(err, broker.ErrBadPresence) {
		t.Errorf("empty subject: %v", err)
	}
}
