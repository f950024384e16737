package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/broker/redisbroker"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
)

const hubTestSecret = "hub-test-secret-0123456789abcdef0123"

func TestHubCommandStartErrors(t *testing.T) {
	r := testenv.StartRedis(t)
	closed := "redis://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/0"
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantStderr []string
	}{
		{"unknown flag", nil, []string{"--nope"}, []string{"flag provided but not defined: -nope"}},
		{"bad flag value", nil, []string{"--max-channels", "many"}, []string{`invalid value "many" for flag -max-channels`}},
		{"bad env value", map[string]string{"TELEGRAPHY_HISTORY_TTL": "forever"}, []string{"--redis", r.URL},
			[]string{`invalid value "forever" for TELEGRAPHY_HISTORY_TTL`}},
		{"no redis", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, nil, []string{"no Redis: pass --redis or set TELEGRAPHY_REDIS_URL"}},
		{"no secret", nil, []string{"--redis", r.URL}, []string{"no secret: set TELEGRAPHY_SECRET or pass --secret-file"}},
		{"short secret", map[string]string{"TELEGRAPHY_SECRET": "short"}, []string{"--redis", r.URL},
			[]string{"secret from TELEGRAPHY_SECRET is 5 bytes; it must be at least 32"}},
		{"unreachable redis", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", closed},
			[]string{"redisbroker: Redis unavailable: cannot reach Redis at 127.0.0.1:", "connection refused"}},
		{"redis from env, unreachable", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret, "TELEGRAPHY_REDIS_URL": closed}, nil,
			[]string{"cannot reach Redis"}},
		{"bad redis url", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", "http://127.0.0.1"},
			[]string{"redisbroker: bad Redis URL"}},
		{"bad cluster url", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret, "TELEGRAPHY_REDIS_CLUSTER": "1"}, []string{"--redis", "http://127.0.0.1"},
			[]string{"redisbroker: bad Redis Cluster URL"}},
		{"unreachable cluster", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis-cluster", "--redis", closed},
			[]string{"redisbroker: Redis unavailable: cannot reach Redis at 127.0.0.1:"}},
		{"bad log format", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", r.URL, "--log-format", "xml"},
			[]string{`--log-format: "xml" is not text or json`}},
		{"bad origin", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", r.URL, "--allowed-origins", "example.com"},
			[]string{"AllowedOrigins", "example.com"}},
		{"negative limit", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", r.URL, "--send-queue-bytes", "-1"},
			[]string{"--send-queue-bytes must be positive"}},
		{"presence heartbeat too long", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", r.URL, "--presence", "doc:*", "--presence-ttl", "5s", "--presence-heartbeat", "5s"},
			[]string{"PresenceHeartbeat (5s) must be shorter than PresenceTTL (5s)"}},
		{"presence leave delay too short", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret, "TELEGRAPHY_PRESENCE_LEAVE_DELAY": "10ms"}, []string{"--redis", r.URL, "--presence", "doc:*"},
			[]string{"PresenceLeaveDelay (10ms) must be at least 100ms"}},
		{"bad presence pattern", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret, "TELEGRAPHY_PRESENCE": "doc:*:*"}, []string{"--redis", r.URL},
			[]string{"Presence", `"*" is allowed only at the end`}},
		{"address in use", map[string]string{"TELEGRAPHY_SECRET": hubTestSecret}, []string{"--redis", r.URL, "--addr", "127.0.0.1:" + strconv.Itoa(r.Port)},
			[]string{"address already in use"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range hubEnv {
				t.Setenv(name, "")
			}
			t.Setenv("TELEGRAPHY_SECRET", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, append([]string{"hub"}, tt.args...), &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), w)
				}
			}
		})
	}
}

// telegraphyBinary builds the command into the test's temporary directory.
func telegraphyBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "telegraphy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hubProcess is a running "telegraphy hub".
type hubProcess struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testenv.Buffer
	exited chan error
}

func startHubProcess(t *testing.T, redisURL string, extra ...string) *hubProcess {
	t.Helper()
	bin := telegraphyBinary(t)
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	p := &hubProcess{addr: addr, stderr: &testenv.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"hub", "--log-format", "json"}, extra...)...)
	p.cmd.Env = append(os.Environ(), "TELEGRAPHY_SECRET="+hubTestSecret, "TELEGRAPHY_ADDR="+addr, "TELEGRAPHY_REDIS_URL="+redisURL)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("hub stderr:\n%s", p.stderr.String())
		}
	})
	if code := p.waitHealth(t, http.StatusOK); code != http.StatusOK {
		t.Fatalf("hub not healthy: %d\n%s", code, p.stderr.String())
	}
	return p
}

// waitHealth polls /healthz until it answers want, for up to 15 s, and
// returns the last status.
func (p *hubProcess) waitHealth(t *testing.T, want int) int {
	t.Helper()
	code := 0
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if code = resp.StatusCode; code == want {
			return code
		}
	}
	return code
}

// wsClient is a protocol client for tests. One goroutine reads, so a
// test may wait with a timeout and keep using the connection.
type wsClient struct {
	t    *testing.T
	ws   *websocket.Conn
	msgs chan map[string]any
	err  error // why the connection ended, set before msgs is closed
}

func dialHub(t *testing.T, addr, token string) *wsClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &wsClient{t: t, ws: ws, msgs: make(chan map[string]any, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(c.msgs)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.err = err
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				if err := json.Unmarshal(line, &m); err != nil {
					c.err = fmt.Errorf("bad message %q: %w", line, err)
					return
				}
				c.msgs <- m
			}
		}
	}()
	t.Cleanup(func() { ws.Close(); <-done })
	c.send(map[string]any{"type": "hello", "token": token})
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// errNoMessage is next's error when nothing arrived in time.
var errNoMessage = errors.New("no message in time")

// next returns the next protocol message, errNoMessage, or the error that
// ended the connection.
func (c *wsClient) next(within time.Duration) (map[string]any, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return nil, c.err
		}
		return m, nil
	case <-time.After(within):
		return nil, errNoMessage
	}
}

// expect returns the next message, which must be of the given type.
func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	m, err := c.next(10 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if m["type"] != typ {
		c.t.Fatalf("got %v, want a %s message", m, typ)
	}
	return m
}

func issueToken(t *testing.T, sub string, channels ...string) string {
	t.Helper()
	iss, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: []byte(hubTestSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Issue(sub, channels)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func eventData(id string) []byte {
	return []byte(`{"name":"shop.Order","meta":{"event_type":"create","timestamp":"2026-11-25T17:37:03.123456Z","id":"` + id + `","pk":1},"data":{"id":1}}`)
}

// TestHubCommandProcess runs "telegraphy hub" as a process against a real
// Redis: a client connects with a token, receives what an app publishes
// through its own redisbroker, keeps receiving after Redis restarts (told
// recovered:false), and gets 1001 when the hub is sent SIGTERM, which it
// exits 0 on.
func TestHubCommandProcess(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startHubProcess(t, r.URL)

	app, err := redisbroker.New(redisbroker.Config{URL: r.URL, MaxRetryDelay: 200 * time.Millisecond, ErrorHandler: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())

	token := issueToken(t, "17", "shop.Order")
	c := dialHub(t, p.addr, token)
	if w := c.expect("welcome"); w["subject"] != "17" {
		t.Errorf("welcome %v", w)
	}
	c.send(map[string]any{"type": "subscribe", "id": 1, "channel": "shop.Order"})
	sub := c.expect("subscribed")
	epoch := sub["epoch"]

	if err := app.Publish(context.Background(), broker.Message{EventID: "ev-1", Channels: []string{"shop.Order", "shop.Order:1"}, Data: eventData("ev-1")}); err != nil {
		t.Fatal(err)
	}
	ev := c.expect("event")
	meta := ev["event"].(map[string]any)["meta"].(map[string]any)
	if ev["channel"] != "shop.Order" || ev["offset"] != 1.0 || meta["id"] != "ev-1" {
		t.Errorf("event %v", ev)
	}

	// The token is spent, in Redis: a second connection with it is refused.
	again := dialHub(t, p.addr, token)
	m, err := again.next(10 * time.Second)
	switch {
	case err == nil && m["type"] == "error" && m["code"] == "unauthorized":
	case websocket.IsCloseError(err, 4001):
	default:
		t.Errorf("reused token: got %v, %v; want unauthorized", m, err)
	}

	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"telegraphy_hub_broker_up 1", "telegraphy_hub_events_received_total 1", "go_goroutines"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Redis restarts empty: /healthz follows it; the hub resubscribes and
	// the client is told its position is lost, then gets the new events.
	r.Stop()
	if code := p.waitHealth(t, http.StatusServiceUnavailable); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with Redis down: %d", code)
	}
	r.Start()
	if code := p.waitHealth(t, http.StatusOK); code != http.StatusOK {
		t.Errorf("/healthz with Redis back: %d", code)
	}
	var lost bool
	deadline := time.Now().Add(20 * time.Second)
	for i := 2; ; i++ {
		id := "ev-" + strconv.Itoa(i)
		if err := app.Publish(context.Background(), broker.Message{EventID: id, Channels: []string{"shop.Order"}, Data: eventData(id)}); err != nil {
			t.Fatal(err)
		}
		m, err := c.next(300 * time.Millisecond)
		if err == errNoMessage && time.Now().Before(deadline) {
			continue // the hub has not resubscribed yet
		}
		if err != nil {
			t.Fatalf("after the Redis restart: %v", err)
		}
		for m != nil && m["type"] == "subscribed" {
			if m["recovered"] == false && m["epoch"] != epoch {
				lost = true
			}
			// The event just published may be one the notice's position
			// already covers (published while the hub resubscribed, found
			// missing by its sweep): then publish another.
			m, err = c.next(2 * time.Second)
			if err == errNoMessage {
				m = nil
			} else if err != nil {
				t.Fatalf("after the Redis restart: %v", err)
			}
		}
		if m == nil {
			continue
		}
		if m["type"] != "event" {
			t.Fatalf("after the Redis restart: %v", m)
		}
		break
	}
	if !lost {
		t.Error("the client was not told recovered:false after Redis lost the history")
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := c.next(10 * time.Second)
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("on SIGTERM the client got %v, want close 1001", err)
		}
		break
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("hub exited with %v\n%s", err, p.stderr.String())
		}
		p.exited <- err // for the cleanup
	case <-time.After(15 * time.Second):
		t.Fatal("hub did not exit after SIGTERM")
	}
	if !strings.Contains(p.stderr.String(), `"msg":"telegraphy hub stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", p.stderr.String())
	}
}

// TestHubCommandServer: the hub closes idle keep-alive connections after
// --idle-timeout, serves /metrics only on --metrics-addr when it is given,
// and its /healthz failure body does not name the Redis server.
func TestHubCommandServer(t *testing.T) {
	r := testenv.StartRedis(t)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	p := startHubProcess(t, r.URL, "--idle-timeout", "200ms", "--metrics-addr", metricsAddr)

	nc, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("keep-alive GET /healthz: %d, close %v", resp.StatusCode, resp.Close)
	}
	// Idle now: the hub must close the connection by itself.
	_ = nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle keep-alive connection: read %d bytes, %v; want the hub to close it (EOF)", n, err)
	}

	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("http://" + p.addr + "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on --addr with --metrics-addr set: %d, want 404", code)
	}
	if code, body := get("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "telegraphy_hub_broker_up") {
		t.Errorf("/metrics on --metrics-addr: %d %.200q", code, body)
	}

	r.Stop()
	if code := p.waitHealth(t, http.StatusServiceUnavailable); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with Redis down: %d", code)
	}
	if _, body := get("http://" + p.addr + "/healthz"); strings.TrimSpace(body) != "unavailable" {
		t.Errorf("/healthz body with Redis down: %q, want \"unavailable\" (the reason belongs in the log)", body)
	}
}

func TestHubCommandPresence(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startHubProcess(t, r.URL, "--presence", "doc:*", "--presence-ttl", "3s", "--presence-heartbeat", "1s")
	c := dialHub(t, p.addr, issueToken(t, "17", "doc:*"))
	c.expect("welcome")
	c.send(map[string]any{"type": "subscribe", "id": 1, "channel": "doc:1", "presence": true})
	c.expect("subscribed")
	if j := c.expect("join"); j["channel"] != "doc:1" || j["member"].(map[string]any)["subject"] != "17" {
		t.Errorf("join %v", j)
	}
	c.send(map[string]any{"type": "presence", "id": 2, "channel": "doc:1"})
	m := c.expect("presence")
	if members, _ := m["members"].([]any); len(members) != 1 || members[0].(map[string]any)["subject"] != "17" {
		t.Errorf("presence %v", m)
	}
}
