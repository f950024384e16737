package hub_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/tokens"
)

func TestProtocol(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	c.send(`{"type":"hello","token":"` + e.token("17", "shop.Order", "shop.Order:*") + `"}`)
	w := c.expect("welcome")
	if w.Session == "" || w.Subject != "17" {
		t.Fatalf("welcome %s: want a session and subject 17", w)
	}

	s := c.subscribe(1, "shop.Order", nil)
	if s.Epoch == "" || s.Offset != 0 || !s.Recovered || len(s.Missed) != 0 {
		t.Fatalf("subscribed %s: want an epoch, offset 0, recovered, nothing missed", s)
	}
	ids := e.publish("shop.Order", 3)
	off := c.expectEvents("shop.Order", 0, ids)

	// The event is the published JSON, untouched.
	more := e.publish("shop.Order", 1)
	m := c.expect("event")
	var ev map[string]any
	if err := json.Unmarshal(m.Event, &ev); err != nil || ev["name"] != "shop.Order" || m.eventID() != more[0] || m.Offset != off+1 {
		t.Fatalf("event %s", m)
	}

	// A record channel granted by a pattern; its position starts later.
	// (The memory broker keeps a channel's history from the first time it
	// is asked for it, here as a page rendering the position would.)
	if _, err := e.broker.History(context.Background(), "shop.Order:42", nil); err != nil {
		t.Fatal(err)
	}
	e.publish("shop.Order:42", 2)
	s2 := c.subscribe(2, "shop.Order:42", nil)
	if s2.Offset != 2 || !s2.Recovered {
		t.Fatalf("subscribed %s: want offset 2", s2)
	}
	ids42 := e.publish("shop.Order:42", 1)
	c.expectEvents("shop.Order:42", 2, ids42)

	c.alive(3)

	c.send(`{"type":"unsubscribe","id":4,"channel":"shop.Order"}`)
	u := c.expect("unsubscribed")
	if u.ID == nil || *u.ID != 4 || u.Channel != "shop.Order" {
		t.Fatalf("unsubscribed %s", u)
	}
	e.publish("shop.Order", 2)
	// Nothing for shop.Order arrives any more: the next message is the pong.
	c.alive(5)
}

func TestSeveralMessagesPerFrame(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	// Client to hub: hello, subscribe and ping in one frame.
	c.send(`{"type":"hello","token":"`+e.token("1", "a")+`"}`, `{"type":"subscribe","id":1,"channel":"a"}`, ``, `{"type":"ping","id":2}`)
	c.expect("welcome")
	c.expect("subscribed")
	c.expect("pong")

	// Hub to client: events queued together go out several to a frame.
	const n = 500
	ids := e.publish("a", n)
	before := c.frames
	c.expectEvents("a", 0, ids)
	frames := c.frames - before
	t.Logf("%d events arrived in %d frames", n, frames)
	if frames >= n {
		t.Fatalf("%d events arrived in %d frames: want several per frame", n, frames)
	}
}

// alg none, an RS256 label, and a forged signature are built by hand.
func rawToken(t *testing.T, alg string, secret []byte, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	signing := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	if secret == nil {
		return signing + "."
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestHelloRefused(t *testing.T) {
	now := time.Now()
	good := map[string]any{"sub": "17", "jti": "j1", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "channels": []string{"*"}}
	cases := []struct {
		name   string
		hello  func(t *testing.T, e *env) string
		reason string
	}{
		{"expired", func(t *testing.T, e *env) string {
			tok, err := e.issuer.IssueClaims(tokens.Claims{RegisteredClaims: jwt.RegisteredClaims{
				Subject: "17", IssuedAt: jwt.NewNumericDate(now.Add(-2 * time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(-time.Minute))}})
			if err != nil {
				t.Fatal(err)
			}
			return `{"type":"hello","token":"` + tok + `"}`
		}, "expired"},
		{"forged signature", func(t *testing.T, e *env) string {
			return `{"type":"hello","token":"` + rawToken(t, "HS256", []byte("another-secret-another-secret-xx!"), good) + `"}`
		}, "signature"},
		{"alg none", func(t *testing.T, e *env) string {
			return `{"type":"hello","token":"` + rawToken(t, "none", nil, good) + `"}`
		}, "algorithm"},
		{"RS256 label", func(t *testing.T, e *env) string {
			return `{"type":"hello","token":"` + rawToken(t, "RS256", testSecret, good) + `"}`
		}, "algorithm"},
		{"malformed", func(t *testing.T, e *env) string { return `{"type":"hello","token":"not.a.jwt"}` }, "malformed"},
		{"missing jti", func(t *testing.T, e *env) string {
			return `{"type":"hello","token":"` + rawToken(t, "HS256", testSecret, map[string]any{"exp": now.Add(time.Minute).Unix()}) + `"}`
		}, "missing_claim"},
		{"replayed", func(t *testing.T, e *env) string {
			tok := e.token("17", "*")
			first := e.mustDial()
			first.send(`{"type":"hello","token":"` + tok + `"}`)
			first.expect("welcome")
			return `{"type":"hello","token":"` + tok + `"}`
		}, "replayed"},
		{"anonymous without public channels", func(t *testing.T, e *env) string { return `{"type":"hello"}` }, "anonymous"},
		{"empty token", func(t *testing.T, e *env) string { return `{"type":"hello","token":""}` }, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			hello := tc.hello(t, e)
			c := e.mustDial()
			c.send(hello)
			m := c.expect("error")
			if m.Code != "unauthorized" {
				t.Fatalf("got %s, want code unauthorized", m)
			}
			c.expectClose(4001)
			if got := e.metric(`telegraphy_hub_auth_failures_total{reason="` + tc.reason + `"}`); got != 1 {
				t.Fatalf("auth failures with reason %q: %v, want 1", tc.reason, got)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	type step struct {
		send      string
		code      string // error code expected, "" for none
		id        int    // id the error repeats, 0 for none
		closeCode int    // close expected after it, 0 for none
	}
	big := `{"type":"ping","id":1,"pad":"` + strings.Repeat("x", 2048) + `"}`
	cases := []struct {
		name   string
		hello  bool // say hello first
		steps  []step
		binary bool
	}{
		{"not JSON before hello", false, []step{{`hello?`, "bad_request", 0, 1008}}, false},
		{"subscribe before hello", false, []step{{`{"type":"subscribe","id":1,"channel":"a"}`, "unauthorized", 1, 4001}}, false},
		{"not JSON", true, []step{{`{"type":`, "bad_request", 0, 0}}, false},
		{"JSON but not an object", true, []step{{`[1,2]`, "bad_request", 0, 0}}, false},
		{"missing type", true, []step{{`{"id":7}`, "bad_request", 7, 0}}, false},
		{"unknown type", true, []step{{`{"type":"dance","id":2}`, "bad_request", 2, 0}}, false},
		{"publish", true, []step{{`{"type":"publish","id":3,"channel":"a","data":{}}`, "bad_request", 3, 0}}, false},
		{"subscribe without channel", true, []step{{`{"type":"subscribe","id":4}`, "bad_request", 4, 0}}, false},
		{"subscribe without id", true, []step{{`{"type":"subscribe","channel":"a"}`, "bad_request", 0, 0}}, false},
		{"id not a number", true, []step{{`{"type":"ping","id":"5"}`, "bad_request", 0, 0}}, false},
		{"negative id", true, []step{{`{"type":"ping","id":-5}`, "bad_request", 0, 0}}, false},
		{"ping without id", true, []step{{`{"type":"ping"}`, "bad_request", 0, 0}}, false},
		{"since of the wrong shape", true, []step{{`{"type":"subscribe","id":6,"channel":"a","since":"yesterday"}`, "bad_request", 6, 0}}, false},
		{"second hello", true, []step{{`{"type":"hello","id":8}`, "bad_request", 8, 0}}, false},
		{"channel outside the grants", true, []step{{`{"type":"subscribe","id":9,"channel":"secret"}`, "forbidden", 9, 0}}, false},
		{"reserved channel", true, []step{{`{"type":"subscribe","id":10,"channel":"$telegraphy.control"}`, "forbidden", 10, 0}}, false},
		{"empty channel", true, []step{{`{"type":"subscribe","id":11,"channel":""}`, "bad_request", 11, 0}}, false},
		{"control character in channel", true, []step{{`{"type":"subscribe","id":12,"channel":"a\u0001"}`, "bad_request", 12, 0}}, false},
		{"channel too long", true, []step{{`{"type":"subscribe","id":13,"channel":"a` + strings.Repeat("b", hub.MaxChannelLength) + `"}`, "bad_request", 13, 0}}, false},
		{"wildcard subscription", true, []step{{`{"type":"subscribe","id":14,"channel":"a*"}`, "bad_request", 14, 0}}, false},
		{"unsubscribe unknown", true, []step{{`{"type":"unsubscribe","id":15,"channel":"a"}`, "not_found", 15, 0}}, false},
		{"subscribe twice", true, []step{
			{`{"type":"subscribe","id":16,"channel":"a"}`, "", 0, 0},
			{`{"type":"subscribe","id":17,"channel":"a"}`, "bad_request", 17, 0},
		}, false},
		{"more channels than allowed", true, []step{
			{`{"type":"subscribe","id":18,"channel":"a"}`, "", 0, 0},
			{`{"type":"subscribe","id":19,"channel":"b"}`, "", 0, 0},
			{`{"type":"subscribe","id":20,"channel":"c"}`, "limit", 20, 0},
		}, false},
		{"oversized frame", true, []step{{big, "", 0, 1009}}, false},
		{"binary frame", true, []step{{`{"type":"ping","id":1}`, "bad_request", 0, 1008}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
				c.MaxChannels = 2
				c.MaxMessageSize = 1024
			})
			c := e.mustDial()
			if tc.hello {
				c.send(`{"type":"hello","token":"` + e.token("17", "a", "b", "c", "a*", "$*") + `"}`)
				c.expect("welcome")
			}
			for _, s := range tc.steps {
				if tc.binary {
					if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(s.send)); err != nil {
						t.Fatal(err)
					}
				} else {
					c.send(s.send)
				}
				if s.code == "" && s.closeCode == 0 {
					c.expect("subscribed")
					continue
				}
				if s.code != "" {
					m := c.expect("error")
					if m.Code != s.code {
						t.Fatalf("%s: got %s, want code %s", s.send, m, s.code)
					}
					if s.id == 0 && m.ID != nil || s.id != 0 && (m.ID == nil || *m.ID != uint64(s.id)) {
						t.Fatalf("%s: got %s, want id %d", s.send, m, s.id)
					}
					if m.Message == "" {
						t.Fatalf("%s: error %s has no message", s.send, m)
					}
				}
				if s.closeCode != 0 {
					c.expectClose(s.closeCode)
					return
				}
			}
			c.alive(99)
		})
	}
}

func TestHelloTimeout(t *testing.T) {
	e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.HelloTimeout = 200 * time.Millisecond })
	c := e.mustDial()
	m := c.expect("error")
	if m.Code != "unauthorized" {
		t.Fatalf("got %s", m)
	}
	c.expectClose(4001)
	if got := e.metric(`telegraphy_hub_auth_failures_total{reason="no_hello"}`); got != 1 {
		t.Fatalf("no_hello failures: %v", got)
	}
}

func TestOrigin(t *testing.T) {
	cases := []struct {
		name    string
		allowed []string
		origin  string // "self" for the hub's own origin
		ok      bool
	}{
		{"no Origin header", nil, "", true},
		{"same origin", nil, "self", true},
		{"cross origin", nil, "https://evil.example", false},
		{"allowed origin", []string{"https://app.example.com"}, "https://app.example.com", true},
		{"other origin with a list", []string{"https://app.example.com"}, "https://evil.example", false},
		{"any origin", []string{"*"}, "https://evil.example", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.AllowedOrigins = tc.allowed })
			hdr := http.Header{}
			switch tc.origin {
			case "":
			case "self":
				hdr.Set("Origin", e.srv.URL)
			default:
				hdr.Set("Origin", tc.origin)
			}
			c, resp, err := e.dial(hdr)
			if !tc.ok {
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("dial: err %v, response %v: want 403", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.send(`{"type":"hello","token":"` + e.token("1") + `"}`)
			c.expect("welcome")
		})
	}
}

func TestAnonymous(t *testing.T) {
	t.Run("anonymous-only hub", func(t *testing.T) {
		e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) {
			c.Secret = nil
			c.PublicChannels = []string{"news", "news:*"}
		})
		c := e.mustDial()
		c.send(`{"type":"hello"}`)
		if w := c.expect("welcome"); w.Subject != "" || w.Session == "" {
			t.Fatalf("welcome %s", w)
		}
		c.subscribe(1, "news:1", nil)
		ids := e.publish("news:1", 2)
		c.expectEvents("news:1", 0, ids)
		c.send(`{"type":"subscribe","id":2,"channel":"shop.Order"}`)
		if m := c.expect("error"); m.Code != "forbidden" {
			t.Fatalf("got %s", m)
		}
		// A token cannot be checked without a secret.
		t2 := e.mustDial()
		t2.send(`{"type":"hello","token":"` + e.token("1", "*") + `"}`)
		t2.expect("error")
		t2.expectClose(4001)
	})
	t.Run("public channels beside tokens", func(t *testing.T) {
		e := newEnv(t, func(c *hub.Config, _ *broker.MemoryConfig) { c.PublicChannels = []string{"news"} })
		anon := e.mustDial()
		anon.send(`{"type":"hello"}`)
		anon.expect("welcome")
		anon.subscribe(1, "news", nil)
		user := e.connect("17", "shop.Order")
		user.subscribe(1, "news", nil)
		user.subscribe(2, "shop.Order", nil)
		ids := e.publish("news", 1)
		anon.expectEvents("news", 0, ids)
		user.expectEvents("news", 0, ids)
	})
}

func TestHealthMetricsScript(t *testing.T) {
	e := newEnv(t)
	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := get("/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body, hdr := get("/telegraphy.js"); code != 200 || !strings.Contains(hdr.Get("Content-Type"), "javascript") || len(body) == 0 {
		t.Fatalf("telegraphy.js: %d %q", code, hdr.Get("Content-Type"))
	}
	if code, _, _ := get("/nothing"); code != 404 {
		t.Fatalf("/nothing: %d", code)
	}

	c := e.connect("17", "a")
	c.subscribe(1, "a", nil)
	ids := e.publish("a", 3)
	c.expectEvents("a", 0, ids)
	for name, want := range map[string]float64{
		"telegraphy_hub_connections":                    1,
		"telegraphy_hub_subscriptions":                  1,
		"telegraphy_hub_channels":                       1,
		"telegraphy_hub_events_received_total":          3,
		"telegraphy_hub_events_delivered_total":         3,
		"telegraphy_hub_delivery_latency_seconds_count": 3,
		"telegraphy_hub_broker_up":                      1,
	} {
		// Counted right after the write: the client may read first.
		if got := e.waitMetric(name, want); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.hub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Terse: the reason, which may name the broker's address, is logged.
	if code, body, _ := get("/healthz"); code != 503 || strings.TrimSpace(body) != "unavailable" {
		t.Fatalf("healthz after Close: %d %q, want 503 \"unavailable\"", code, body)
	}
}

func testVerifier(t testing.TB) *tokens.Verifier {
	v, err := tokens.NewVerifier(tokens.VerifierConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestConfigErrors(t *testing.T) {
	b := broker.NewMemory()
	defer b.Close(context.Background())
	cases := []struct {
		name string
		cfg  hub.Config
		want error
	}{
		{"nil broker", hub.Config{Secret: testSecret}, hub.ErrNoBroker},
		{"no secret, no public channels", hub.Config{Broker: b}, hub.ErrNoSecret},
		{"short secret", hub.Config{Broker: b, Secret: []byte("short")}, tokens.ErrShortSecret},
		{"verifier and secret", hub.Config{Broker: b, Secret: testSecret, Verifier: testVerifier(t)}, hub.ErrBadConfig},
		{"verifier and token leeway", hub.Config{Broker: b, TokenLeeway: time.Second, Verifier: testVerifier(t)}, hub.ErrBadConfig},
		{"pattern with inner star", hub.Config{Broker: b, Secret: testSecret, PublicChannels: []string{"a*b"}}, hub.ErrBadConfig},
		{"reserved pattern", hub.Config{Broker: b, Secret: testSecret, PublicChannels: []string{"$x"}}, hub.ErrBadConfig},
		{"empty pattern", hub.Config{Broker: b, Secret: testSecret, PublicChannels: []string{""}}, hub.ErrBadConfig},
		{"bad origin", hub.Config{Broker: b, Secret: testSecret, AllowedOrigins: []string{"app.example.com"}}, hub.ErrBadConfig},
		{"negative limit", hub.Config{Broker: b, Secret: testSecret, MaxChannels: -1}, hub.ErrBadConfig},
		{"negative write delay", hub.Config{Broker: b, Secret: testSecret, WriteDelay: -time.Millisecond}, hub.ErrBadConfig},
		{"write delay over a second", hub.Config{Broker: b, Secret: testSecret, WriteDelay: 2 * time.Second}, hub.ErrBadConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := hub.New(tc.cfg)
			if !errors.Is(err, tc.want) {
				if h != nil {
					_ = h.Close(context.Background())
				}
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "hub") && !strings.Contains(err.Error(), "tokens") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			t.Log(err)
		})
	}
}
