// Package brokertest holds the tests every broker of the project passes
// alike, run by each broker's own tests (broker.Memory, redisbroker).
package brokertest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// Long is a presence lease that does not end during a test, with room for
// two subjects.
var Long = broker.PresenceLease{TTL: time.Hour, MaxMembers: 2}

// Doc is the presence of channel "doc:1" on a broker, read and updated
// with t failing on an error.
type Doc struct {
	t *testing.T
	b broker.Presencer
}

// Subjects lists the members, each as its subject followed by its info.
func (d Doc) Subjects() []string {
	d.t.Helper()
	ms, err := d.b.Presence(context.Background(), "doc:1", 10)
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Subject+string(m.Info))
	}
	return out
}

// Update is UpdatePresence on the channel.
func (d Doc) Update(node string, add []broker.PresenceMember, remove []string, lease broker.PresenceLease) broker.PresenceChange {
	d.t.Helper()
	ch, err := d.b.UpdatePresence(context.Background(), "doc:1", node, add, remove, lease)
	if err != nil {
		d.t.Fatal(err)
	}
	return ch
}

// Presence checks the presence contract on b, whose channel "doc:1" must
// hold nothing yet: reading creates nothing (stored reports how much
// presence state b keeps for the channel), a subject is one member
// whatever the number of nodes holding it, MaxMembers counts subjects,
// a node whose lease ends loses its members, and an empty node or subject
// is refused with ErrBadPresence. It returns the channel
// for the broker's own checks; "ada", "cy" and "dan" are gone by then and
// "bob" is a member held by node A.
func Presence(t *testing.T, b broker.Presencer, stored func() int) Doc {
	t.Helper()
	d := Doc{t: t, b: b}
	if got := d.Subjects(); len(got) != 0 {
		t.Fatalf("members of an empty channel: %v", got)
	}
	if n := stored(); n != 0 {
		t.Fatalf("presence state (%d) after a read", n)
	}

	ch := d.Update("A", []broker.PresenceMember{{Subject: "ada", Info: []byte(`{"n":1}`)}}, nil, Long)
	if len(ch.Joined) != 1 || ch.Joined[0].Subject != "ada" || string(ch.Joined[0].Info) != `{"n":1}` {
		t.Fatalf("first add: %+v", ch)
	}
	// The same subject from another node is no join; its removal from one
	// node is no leave.
	if ch := d.Update("B", []broker.PresenceMember{{Subject: "ada"}}, nil, Long); len(ch.Joined)+len(ch.Left) != 0 {
		t.Fatalf("ada on B too: %+v", ch)
	}
	if ch := d.Update("A", nil, []string{"ada"}, Long); len(ch.Left) != 0 {
		t.Fatalf("ada removed from A: %+v", ch)
	}
	if got := d.Subjects(); !slices.Equal(got, []string{"ada"}) {
		t.Fatalf("members: %v", got)
	}
	// The cap counts subjects.
	if ch := d.Update("A", []broker.PresenceMember{{Subject: "bob"}, {Subject: "cy"}}, nil, Long); !slices.Equal(ch.Full, []string{"cy"}) || len(ch.Joined) != 1 {
		t.Fatalf("third subject over a cap of 2: %+v", ch)
	}
	if ch := d.Update("B", nil, []string{"ada"}, Long); !slices.Equal(ch.Left, []string{"ada"}) {
		t.Fatalf("ada's last entry removed: %+v", ch)
	}

	// A node whose lease ends loses its members, at the next update of
	// any node; until then readers no longer see them.
	short := broker.PresenceLease{TTL: 100 * time.Millisecond, MaxMembers: 2}
	d.Update("C", []broker.PresenceMember{{Subject: "dan"}}, nil, short)
	testenv.WaitFor(t, 10*time.Second, func() bool { return !slices.Contains(d.Subjects(), "dan") }, "dan unlisted after his lease")
	if ch := d.Update("A", nil, nil, Long); !slices.Equal(ch.Left, []string{"dan"}) {
		t.Fatalf("expiry of C's entries: %+v", ch)
	}

	ctx := context.Background()
	if _, err := b.UpdatePresence(ctx, "doc:1", "", nil, nil, Long); !errors.Is(err, broker.ErrBadPresence) {
		t.Errorf("empty node: %v", err)
	}
	if _, err := b.UpdatePresence(ctx, "doc:1", "A", []broker.PresenceMember{{}}, nil, Long); !errors.Is(err, broker.ErrBadPresence) {
		t.Errorf("empty subject: %v", err)
	}
	return d
}
