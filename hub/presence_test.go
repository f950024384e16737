package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// presenceReply is the presence answer or a join/leave notice.
type presenceReply struct {
	Type      string                  `json:"type"`
	ID        *uint64                 `json:"id"`
	Channel   string                  `json:"channel"`
	Members   []broker.PresenceMember `json:"members"`
	Member    broker.PresenceMember   `json:"member"`
	Truncated bool                    `json:"truncated"`
	Code      string                  `json:"code"`
	Message   string                  `json:"message"`
}

func decodePresence(t testing.TB, m msg) presenceReply {
	t.Helper()
	var r presenceReply
	if err := json.Unmarshal([]byte(m.raw), &r); err != nil {
		t.Fatalf("%s: %v", m, err)
	}
	return r
}

// connectInfo connects with a token for subject carrying info.
func (e *env) connectInfo(subject, info string, channels ...string) *client {
	e.t.Helper()
	tok, err := e.issuer.IssueInfo(subject, channels, json.RawMessage(info))
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.mustDial()
	c.send(`{"type":"hello","token":"` + tok + `"}`)
	c.expect("welcome")
	return c
}

// watch subscribes asking for join/leave notices.
func (c *client) watch(id int, channel string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"type":"subscribe","id":%d,"channel":%q,"presence":true}`, id, channel))
	if m := c.expect("subscribed"); m.Channel != channel {
		c.t.Fatalf("subscribed %s, want %s", m, channel)
	}
}

// who asks who is on channel and returns the subjects with their info.
func (c *client) who(id int, channel string) []string {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"type":"presence","id":%d,"channel":%q}`, id, channel))
	r := decodePresence(c.t, c.expect("presence"))
	if r.ID == nil || *r.ID != uint64(id) || r.Channel != channel {
		c.t.Fatalf("presence reply %+v, want id %d channel %s", r, id, channel)
	}
	out := []string{}
	for _, m := range r.Members {
		s := m.Subject
		if m.Info != nil {
			s += string(m.Info)
		}
		out = append(out, s)
	}
	return out
}

// notice reads the next message, which must be a join or leave of
// subject on channel.
func (c *client) notice(typ, channel, subject string) presenceReply {
	c.t.Helper()
	r := decodePresence(c.t, c.expect(typ))
	if r.Channel != channel || r.Member.Subject != subject {
		c.t.Fatalf("%s %+v, want %s of %s on %s", typ, r, typ, subject, channel)
	}
	return r
}

// refused asks presence of channel and returns the error code and message.
func (c *client) refused(id int, channel string) (string, string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"type":"presence","id":%d,"channel":%q}`, id, channel))
	m := c.expect("error")
	return m.Code, m.Message
}

// withPresence gives the channels matching patterns presence, with the
// shortest PresenceLeaveDelay: the tests that wait for a leave wait less.
func withPresence(patterns ...string) envOption {
	return func(c *hub.Config, _ *broker.MemoryConfig) {
		c.Presence = patterns
		c.PresenceLeaveDelay = hub.MinPresenceLeaveDelay
	}
}

func TestPresenceMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) { c.PublicChannels = []string{"doc:public"} })

	ada := e.connectInfo("ada", `{"name":"Ada"}`, "doc:*", "other:*")
	ada.watch(1, "doc:1")
	ada.notice("join", "doc:1", "ada")
	if got := ada.who(2, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`}) {
		t.Fatalf("members %v", got)
	}

	// bob subscribes without asking for notices, from two tabs: one join.
	bob1 := e.connect("bob", "doc:*")
	bob1.subscribe(1, "doc:1", nil)
	ada.notice("join", "doc:1", "bob")
	bob2 := e.connect("bob", "doc:*")
	bob2.subscribe(1, "doc:1", nil)
	ada.alive(3) // no second join
	if got := bob1.who(2, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`, "bob"}) {
		t.Fatalf("members %v", got)
	}
	if got := e.waitMetric("telegraphy_hub_presence_members", 2); got != 2 {
		t.Errorf("presence_members = %v, want 2", got)
	}
	if got := e.metric("telegraphy_hub_presence_channels"); got != 1 {
		t.Errorf("presence_channels = %v, want 1", got)
	}

	// An anonymous subscriber is no member, but may look.
	anon := e.mustDial()
	anon.send(`{"type":"hello"}`)
	anon.expect("welcome")
	anon.watch(1, "doc:public")
	ada.subscribe(4, "doc:public", nil)
	anon.notice("join", "doc:public", "ada")
	if got := anon.who(2, "doc:public"); !slices.Equal(got, []string{`ada{"name":"Ada"}`}) {
		t.Fatalf("doc:public members %v", got)
	}

	// Closing one of bob's tabs is no leave; the last one is.
	_ = bob1.ws.Close()
	if got := e.waitMetric("telegraphy_hub_subscriptions", 4); got != 4 {
		t.Fatalf("subscriptions = %v, want 4", got)
	}
	if got := ada.who(5, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`, "bob"}) {
		t.Fatalf("members after one of bob's tabs closed: %v", got)
	}
	bob2.send(`{"type":"unsubscribe","id":7,"channel":"doc:1"}`)
	bob2.expect("unsubscribed")
	ada.notice("leave", "doc:1", "bob") // the next message: no second join came
	if got := ada.who(6, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`}) {
		t.Fatalf("members after bob left: %v", got)
	}

	// Presence is seen only on a channel with presence the client is
	// subscribed to, and every other case looks the same.
	cy := e.connect("cy", "doc:*", "other:*")
	code1, msg1 := cy.refused(1, "doc:1") // allowed, not subscribed
	cy.watch(2, "other:1")                // no presence on other:*
	code2, msg2 := cy.refused(3, "other:1")
	eve := e.connect("eve", "other:*")
	code3, msg3 := eve.refused(1, "doc:1") // not allowed
	for _, got := range [][2]string{{code1, msg1}, {code2, msg2}, {code3, msg3}} {
		if got != [2]string{"not_found", msg1} || code1 != "not_found" {
			t.Errorf("refusal %v, want not_found %q for all", got, msg1)
		}
	}
	cy.send(`{"type":"presence","id":4}`)
	if m := cy.expect("error"); m.Code != "bad_request" {
		t.Errorf("presence without channel: %s", m)
	}
	// Nothing was kept for the channel without presence.
	if n := e.broker.PresenceChannels(); n != 2 {
		t.Errorf("broker holds presence of %d channels, want 2 (doc:1, doc:public)", n)
	}

	// Once everyone has gone, nothing is left.
	for _, c := range []*client{ada, bob2, anon, cy, eve} {
		_ = c.ws.Close()
	}
	if got := e.waitMetric("telegraphy_hub_presence_channels", 0); got != 0 {
		t.Errorf("presence_channels = %v, want 0", got)
	}
	if got := e.metric("telegraphy_hub_presence_members"); got != 0 {
		t.Errorf("presence_members = %v, want 0", got)
	}
	if n := e.broker.PresenceChannels(); n != 0 {
		t.Errorf("broker holds presence of %d channels, want 0", n)
	}
}

func TestPresenceLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withPresence("doc:*"), func(c *hub.Config, _ *broker.MemoryConfig) {
		c.MaxPresenceMembers = 2
		c.PresenceTTL = 3 * time.Second
		c.PresenceHeartbeat = 50 * time.Millisecond
		c.RequestBurst = 5
		c.RequestRate = 0.001
	})
	a := e.connect("a", "doc:*")
	a.watch(1, "doc:1")
	a.notice("join", "doc:1", "a")
	b := e.connect("b", "doc:*")
	b.subscribe(1, "doc:1", nil)
	a.notice("join", "doc:1", "b")
	c := e.connect("c", "doc:*")
	c.subscribe(1, "doc:1", nil) // subscribed, but the channel is full
	if got := c.who(2, "doc:1"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members of a full channel: %v", got)
	}
	if got := e.waitMetric(`telegraphy_hub_limited_total{limit="presence_members"}`, 1); got != 1 {
		t.Errorf("limited{presence_members} = %v, want 1", got)
	}
	// When b goes, a heartbeat lists c.
	_ = b.ws.Close()
	a.notice("leave", "doc:1", "b")
	a.notice("join", "doc:1", "c")

	// Presence requests count toward the request rate: a has used 1 of
	// its burst of 5.
	var lines []string
	for i := 10; i < 16; i++ {
		lines = append(lines, fmt.Sprintf(`{"type":"presence","id":%d,"channel":"doc:1"}`, i))
	}
	a.send(lines...)
	for i := 10; i < 14; i++ {
		a.expect("presence")
	}
	for i := 14; i < 16; i++ {
		if m := a.expect("error"); m.Code != "limit" {
			t.Fatalf("presence request beyond the rate: %s", m)
		}
	}
}

// noPresence is a broker without presence.
type noPresence struct{ broker.Broker }

func TestPresenceConfig(t *testing.T) {
	t.Parallel()
	b := broker.NewMemory()
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	for _, tt := range []struct {
		name string
		cfg  hub.Config
	}{
		{"broker without presence", hub.Config{Broker: noPresence{b}, Presence: []string{"doc:*"}}},
		{"bad pattern", hub.Config{Broker: b, Presence: []string{"doc:*:x*"}}},
		{"reserved pattern", hub.Config{Broker: b, Presence: []string{"$x"}}},
		{"heartbeat not shorter than TTL", hub.Config{Broker: b, Presence: []string{"doc:*"}, PresenceTTL: time.Second, PresenceHeartbeat: time.Second}},
		{"TTL under 10ms (a zero heartbeat)", hub.Config{Broker: b, Presence: []string{"doc:*"}, PresenceTTL: 2}},
		{"heartbeat under 1ms", hub.Config{Broker: b, Presence: []string{"doc:*"}, PresenceTTL: time.Second, PresenceHeartbeat: time.Microsecond}},
		{"request rate NaN (no limit)", hub.Config{Broker: b, RequestRate: math.NaN()}},
		{"request rate +Inf", hub.Config{Broker: b, RequestRate: math.Inf(1)}},
		{"origin with a trailing slash", hub.Config{Broker: b, AllowedOrigins: []string{"https://app.example.com/"}}},
		{"origin with a path", hub.Config{Broker: b, AllowedOrigins: []string{"https://app.example.com/app"}}},
		{"origin with https's default port", hub.Config{Broker: b, AllowedOrigins: []string{"https://app.example.com:443"}}},
		{"origin with http's default port", hub.Config{Broker: b, AllowedOrigins: []string{"http://app.example.com:80"}}},
		{"origin with an empty port", hub.Config{Broker: b, AllowedOrigins: []string{"https://app.example.com:"}}},
		{"negative cap", hub.Config{Broker: b, Presence: []string{"doc:*"}, MaxPresenceMembers: -1}},
	} {
		tt.cfg.Secret = testSecret
		if _, err := hub.New(tt.cfg); !errors.Is(err, hub.ErrBadConfig) {
			t.Errorf("%s: New = %v, want ErrBadConfig", tt.name, err)
		}
	}
	// A broker without presence is fine when no channel has presence.
	h, err := hub.New(hub.Config{Broker: noPresence{b}, Secret: testSecret, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Close(context.Background())
}

// TestPresenceRedisTwoHubs runs presence across two hubs sharing one
// Redis: members of either are seen from both, a hub that stops its
// heartbeat (a dead process) loses its members once their lease ends, and
// a Redis restart that lost everything is recovered from.
func TestPresenceRedisTwoHubs(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	newHub := func() (*env, *redisbroker.Broker) {
		bus, err := redisbroker.New(redisbroker.Config{URL: r.URL, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close(context.Background()) })
		cfg := hub.Config{Secret: testSecret, Broker: bus, Logger: quietLogger(), ServeMetrics: true,
			Presence: []string{"doc:*"}, PresenceTTL: time.Second, PresenceHeartbeat: 100 * time.Millisecond,
			PresenceLeaveDelay: hub.MinPresenceLeaveDelay}
		return newEnvWith(t, cfg, nil), bus
	}
	a, bus := newHub()
	b, _ := newHub()

	bob := b.connect("bob", "doc:*", "other:*")
	bob.watch(1, "doc:1")
	bob.notice("join", "doc:1", "bob")
	ada1 := a.connectInfo("ada", `{"name":"Ada"}`, "doc:*")
	ada1.subscribe(1, "doc:1", nil)
	if r := bob.notice("join", "doc:1", "ada"); string(r.Member.Info) != `{"name":"Ada"}` {
		t.Errorf("join of ada: info %s", r.Member.Info)
	}
	if got := bob.who(2, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`, "bob"}) {
		t.Fatalf("members seen from hub B: %v", got)
	}
	if got := ada1.who(2, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`, "bob"}) {
		t.Fatalf("members seen from hub A: %v", got)
	}

	// ada opens a second tab on hub B, then closes the first on hub A:
	// still present; closing the second is her leave.
	ada2 := b.connectInfo("ada", `{"name":"Ada"}`, "doc:*")
	ada2.subscribe(1, "doc:1", nil)
	ada2.alive(2) // answered once hub B has added her
	_ = ada1.ws.Close()
	if got := a.waitMetric("telegraphy_hub_presence_channels", 0); got != 0 {
		t.Fatalf("hub A presence_channels = %v", got)
	}
	if got := bob.who(3, "doc:1"); !slices.Equal(got, []string{`ada{"name":"Ada"}`, "bob"}) {
		t.Fatalf("members after ada's tab on A closed: %v", got)
	}
	_ = ada2.ws.Close()
	bob.notice("leave", "doc:1", "ada") // the next message: no leave nor join before

	// No key is made for a channel without presence, subscribed or asked.
	bob.watch(4, "other:1")
	if code, _ := bob.refused(5, "other:1"); code != "not_found" {
		t.Fatalf("presence of other:1: %s", code)
	}
	keys := presenceKeys(t, bus.Client())
	if !slices.Equal(keys, []string{"telegraphy:{doc:1}:pi", "telegraphy:{doc:1}:pn", "telegraphy:{doc:1}:pz"}) {
		t.Fatalf("presence keys %v", keys)
	}

	// carl is on hub A, whose heartbeat then stops: he leaves once his
	// lease has ended, noticed by hub B's heartbeat.
	carl := a.connect("carl", "doc:*")
	carl.subscribe(1, "doc:1", nil)
	bob.notice("join", "doc:1", "carl")
	hub.StopPresenceHeartbeat(a.hub)
	bob.notice("leave", "doc:1", "carl")
	if got := bob.who(6, "doc:1"); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("members after hub A stopped: %v", got)
	}

	// Redis restarts empty: hub B's heartbeat announces bob again.
	r.Stop()
	r.Start()
	// (Its notice of bob's join reaches bob when hub B's subscription has
	// reconnected first.)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		bob.send(`{"type":"presence","id":7,"channel":"doc:1"}`)
		m := bob.next()
		for m.Type == "join" {
			m = bob.next() // bob's own join, announced again
		}
		// Otherwise error "internal" while Redis is coming back.
		if m.Type == "presence" {
			if r := decodePresence(t, m); len(r.Members) == 1 && r.Members[0].Subject == "bob" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("bob not present again after the Redis restart")
		}
	}

	// Once everyone has gone, no presence key is left.
	_ = bob.ws.Close()
	_ = carl.ws.Close()
	if got := b.waitMetric("telegraphy_hub_presence_channels", 0); got != 0 {
		t.Fatalf("hub B presence_channels = %v", got)
	}
	for deadline := time.Now().Add(10 * time.Second); len(presenceKeys(t, bus.Client())) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("presence keys left: %v", presenceKeys(t, bus.Client()))
		}
	}
}

// presenceKeys lists the presence keys in Redis, sorted.
func presenceKeys(t *testing.T, c redis.UniversalClient) []string {
	t.Helper()
	keys, err := c.Keys(context.Background(), "telegraphy:{*}:p[zin]").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}
