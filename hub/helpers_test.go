package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/tokens"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// TestMain fails the run when a hub goroutine outlives the tests.
func TestMain(m *testing.M) {
	if spec := os.Getenv(clientProcEnv); spec != "" {
		os.Exit(runClientProc(spec))
	}
	code := m.Run()
	if code == 0 {
		if err := waitNoHubGoroutines(5 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// hubGoroutines returns the stacks of goroutines running hub code.
func hubGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "telegraphy/hub.(*conn)") || strings.Contains(g, "telegraphy/hub.(*Hub)") || strings.Contains(g, "telegraphy/hub.(*presence)") {
			out = append(out, g)
		}
	}
	return out
}

func waitNoHubGoroutines(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		gs := hubGoroutines()
		if len(gs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d hub goroutines leaked:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// env is a hub served over loopback with a memory broker.
type env struct {
	t      testing.TB
	broker *broker.Memory
	hub    *hub.Hub
	srv    *httptest.Server
	issuer *tokens.Issuer
	url    string // ws://.../telegraphy/ws, or wss://
	base   string // http://.../telegraphy
}

type envOption func(*hub.Config, *broker.MemoryConfig)

// newEnv starts a hub mounted at /telegraphy with a fresh memory broker;
// cleanup closes it and checks that none of its goroutines is left.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	var bcfg broker.MemoryConfig
	cfg := hub.Config{Secret: testSecret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ServeMetrics: true}
	for _, o := range opts {
		o(&cfg, &bcfg)
	}
	b := broker.NewMemory(bcfg)
	cfg.Broker = b
	withBroker(t, b)
	return newEnvWith(t, cfg, b)
}

// withBroker closes b when the test ends, after the hubs using it, and
// then checks that no hub goroutine is left.
func withBroker(t testing.TB, b *broker.Memory) {
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		if err := waitNoHubGoroutines(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
}

func newEnvWith(t testing.TB, cfg hub.Config, b *broker.Memory) *env {
	t.Helper()
	return newEnvOn(t, cfg, b, httptest.NewServer)
}

// newEnvOn is newEnvWith on a server that serve starts: httptest.NewServer,
// or httptest.NewTLSServer for wss://.
func newEnvOn(t testing.TB, cfg hub.Config, b *broker.Memory, serve func(http.Handler) *httptest.Server) *env {
	t.Helper()
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatalf("hub.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/telegraphy/", http.StripPrefix("/telegraphy", h))
	srv := serve(mux)
	iss, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, broker: b, hub: h, srv: srv, issuer: iss,
		url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/telegraphy/ws", base: srv.URL + "/telegraphy"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("hub.Close: %v", err)
		}
		srv.Close()
	})
	return e
}

func (e *env) token(subject string, channels ...string) string {
	e.t.Helper()
	tok, err := e.issuer.Issue(subject, channels)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// msg is any message the hub sends.
type msg struct {
	Type      string            `json:"type"`
	ID        *uint64           `json:"id"`
	Session   string            `json:"session"`
	Subject   string            `json:"subject"`
	Channel   string            `json:"channel"`
	Epoch     string            `json:"epoch"`
	Offset    uint64            `json:"offset"`
	Recovered bool              `json:"recovered"`
	Missed    []json.RawMessage `json:"missed"`
	Event     json.RawMessage   `json:"event"`
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	raw       string
}

func (m msg) String() string { return m.raw }

// eventID returns meta.id of an event message.
func (m msg) eventID() string {
	var ev events.Event
	_ = json.Unmarshal(m.Event, &ev)
	return ev.Meta.ID
}

// client is a real WebSocket client over loopback.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	pending []msg
	frames  int
}

func (e *env) dial(hdr http.Header) (*client, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if e.srv.TLS != nil {
		d.TLSClientConfig = e.srv.Client().Transport.(*http.Transport).TLSClientConfig
	}
	ws, resp, err := d.Dial(e.url, hdr)
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: e.t, ws: ws}
	e.t.Cleanup(func() { _ = ws.Close() })
	return c, resp, nil
}

func (e *env) mustDial() *client {
	e.t.Helper()
	c, _, err := e.dial(nil)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	return c
}

// connect dials and says hello with a token for subject granting channels.
func (e *env) connect(subject string, channels ...string) *client {
	e.t.Helper()
	c := e.mustDial()
	c.send(`{"type":"hello","token":"` + e.token(subject, channels...) + `"}`)
	if m := c.next(); m.Type != "welcome" {
		e.t.Fatalf("hello: got %s, want welcome", m)
	}
	return c
}

// send writes the messages as one text frame, separated by "\n".
func (c *client) send(msgs ...string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(strings.Join(msgs, "\n"))); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next message, or the read error.
func (c *client) read(timeout time.Duration) (msg, error) {
	for len(c.pending) == 0 {
		_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return msg{}, err
		}
		if mt != websocket.TextMessage {
			return msg{}, fmt.Errorf("frame type %d", mt)
		}
		c.frames++
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m msg
			if err := json.Unmarshal(line, &m); err != nil {
				return msg{}, fmt.Errorf("hub sent a line that is not JSON: %q: %v", line, err)
			}
			m.raw = string(line)
			c.pending = append(c.pending, m)
		}
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	return m, nil
}

// next returns the next message, failing the test after 10 s.
func (c *client) next() msg {
	c.t.Helper()
	m, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// expect returns the next message, failing unless it has type typ.
func (c *client) expect(typ string) msg {
	c.t.Helper()
	m := c.next()
	if m.Type != typ {
		c.t.Fatalf("got %s, want type %q", m, typ)
	}
	return m
}

// expectClose reads (and drops) messages until the connection ends and
// returns the close code, failing unless it is want.
func (c *client) expectClose(want int) {
	c.t.Helper()
	for {
		_, err := c.read(15 * time.Second)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("connection ended with %v, want close code %d", err, want)
		}
		if ce.Code != want {
			c.t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, want)
		}
		return
	}
}

// alive checks that the connection still answers a ping.
func (c *client) alive(id int) {
	c.t.Helper()
	c.send(`{"type":"ping","id":` + strconv.Itoa(id) + `}`)
	m := c.expect("pong")
	if m.ID == nil || *m.ID != uint64(id) {
		c.t.Fatalf("pong %s, want id %d", m, id)
	}
}

// subscribe subscribes and returns the subscribed reply.
func (c *client) subscribe(id int, channel string, since *broker.Position) msg {
	c.t.Helper()
	req := map[string]any{"type": "subscribe", "id": id, "channel": channel}
	if since != nil {
		req["since"] = since
	}
	b, _ := json.Marshal(req)
	c.send(string(b))
	m := c.expect("subscribed")
	if m.ID == nil || *m.ID != uint64(id) || m.Channel != channel {
		c.t.Fatalf("subscribed %s, want id %d channel %s", m, id, channel)
	}
	return m
}

// publish publishes n events to channel and returns their ids.
func (e *env) publish(channel string, n int) []string {
	e.t.Helper()
	return publishTo(e.t, e.broker, channel, n, 0)
}

func publishTo(t testing.TB, b broker.Broker, channel string, n, pad int) []string {
	t.Helper()
	ids, err := tryPublish(b, channel, n, pad)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ids
}

// tryPublish is publishTo for goroutines other than the test's.
func tryPublish(b broker.Broker, channel string, n, pad int) ([]string, error) {
	ids := make([]string, n)
	msgs := make([]broker.Message, n)
	for i := range msgs {
		id, data, err := eventData(i, pad)
		if err != nil {
			return nil, err
		}
		ids[i] = id
		msgs[i] = broker.Message{EventID: id, Channels: []string{channel}, Data: data}
	}
	return ids, b.Publish(context.Background(), msgs...)
}

// eventData returns a fresh encoded event and its id; pad makes it bigger.
func eventData(i, pad int) (string, []byte, error) {
	ev := events.Event{
		Name: "shop.Order",
		Meta: events.Meta{EventType: events.TypeUpdate, Timestamp: events.Timestamp(time.Now()), ID: events.NewID(), PK: i},
		Data: json.RawMessage(`{"id":` + strconv.Itoa(i) + `,"note":"` + strings.Repeat("x", pad) + `"}`),
	}
	data, err := ev.Encode()
	return ev.Meta.ID, data, err
}

// expectEvents reads events on channel and checks their ids and that their
// offsets follow from after.
func (c *client) expectEvents(channel string, after uint64, ids []string) uint64 {
	c.t.Helper()
	for i, id := range ids {
		m := c.expect("event")
		if m.Channel != channel || m.Offset != after+uint64(i)+1 || m.eventID() != id {
			c.t.Fatalf("event %d: got %s, want channel %s offset %d id %s", i, m, channel, after+uint64(i)+1, id)
		}
	}
	return after + uint64(len(ids))
}

// metric scrapes /metrics and returns the value of the sample whose line
// starts with name (labels included), or -1.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return -1
}

// waitMetric returns the metric's value once it is want, or its last value
// after 5 s.
func (e *env) waitMetric(name string, want float64) float64 {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.metric(name)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
