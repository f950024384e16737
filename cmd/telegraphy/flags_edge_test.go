package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/telegraphy-go/telegraphy/internal/testenv"
)

// bench --rate above 1e9, +Inf or NaN is refused with an error naming
// the rate (a zero publish interval divided by zero before).
func TestBenchHugeRate(t *testing.T) {
	bin := telegraphyBinary(t)
	for _, rate := range []string{"2e9", "+Inf", "NaN"} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin, "bench", "--rate", rate, "--clients", "1", "--duration", "1s", "--no-memory")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if code != 1 || strings.Contains(stderr.String(), "panic") || !strings.Contains(stderr.String(), "rate") {
			first, _, _ := strings.Cut(stderr.String(), "\n\n")
			t.Errorf("bench --rate %s: exit %d, stderr %.300q; want exit 1 and an error naming --rate", rate, code, first)
		}
	}
}

// hub --request-rate NaN is refused: a NaN token bucket would let every
// request through.
func TestHubRequestRateNaN(t *testing.T) {
	r := testenv.StartRedis(t)
	for _, name := range hubEnv {
		t.Setenv(name, "")
	}
	t.Setenv("TELEGRAPHY_SECRET", hubTestSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"hub", "--redis", r.URL, "--addr", "127.0.0.1:0", "--request-rate", "NaN"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--request-rate") {
		t.Errorf("hub --request-rate NaN: exit %d (ran until cancelled), stderr %q; want exit 1 naming --request-rate", code, stderr.String())
	}

}

// An unparseable --redis URL is reported without the URL, whose password
// would otherwise reach stderr.
func TestHubRedisPasswordInError(t *testing.T) {
	for _, name := range hubEnv {
		t.Setenv(name, "")
	}
	t.Setenv("TELEGRAPHY_SECRET", hubTestSecret)
	for _, args := range [][]string{
		{"--redis", "redis://:hunter2secret@127.0.0.1:abc/0"},
		{"--redis", "redis://user:hunter2secret@[::1/0"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"hub", "--addr", "127.0.0.1:0"}, args...), &stdout, &stderr)
		if code != 1 || strings.Contains(stderr.String(), "hunter2secret") {
			t.Errorf("hub %v: exit %d, stderr %q: the password is printed", args, code, stderr.String())
		}
	}
}

// A token whose info claim is not UTF-8 is refused by the hub (the hub
// puts info into its text frames, join/presence, and a browser must fail
// a connection that sends one that is not UTF-8, RFC 6455 §8.1). The
// token is signed by hand with the hub's secret, as another JWT library
// could (tokens.Issuer refuses such an info, and encoding/json would
// replace the bytes).
func TestHubInfoNotUTF8(t *testing.T) {
	r := testenv.StartRedis(t)
	p := startHubProcess(t, r.URL, "--presence", "doc:*")
	now := time.Now().Unix()
	payload := `{"sub":"17","exp":` + strconv.FormatInt(now+60, 10) + `,"iat":` + strconv.FormatInt(now, 10) +
		`,"jti":"utf8-hub","channels":["doc:*"],"info":{"name":"` + "\xff" + `Ada"}}`
	tok := testenv.SignHS256([]byte(hubTestSecret), `{"alg":"HS256","typ":"JWT"}`, payload)
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "hello", "token": tok}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		typ, data, err := ws.ReadMessage()
		if websocket.IsCloseError(err, 4001) {
			return
		}
		if err != nil {
			t.Fatalf("read: %v, want the token refused (unauthorized)", err)
		}
		if typ == websocket.TextMessage && !utf8.Valid(data) {
			t.Fatalf("hub sent a text frame that is not UTF-8: %q", data)
		}
		if bytes.Contains(data, []byte(`"welcome"`)) {
			t.Fatalf("hub accepted a token whose info is not UTF-8: %s", data)
		}
		if bytes.Contains(data, []byte(`"unauthorized"`)) {
			return
		}
	}
}

// --allowed-origins refuses an origin written with a trailing slash or a
// path, which would match no browser's Origin header (every page refused
// with 403).
func TestHubAllowedOriginTrailingSlash(t *testing.T) {
	r := testenv.StartRedis(t)
	for _, name := range hubEnv {
		t.Setenv(name, "")
	}
	t.Setenv("TELEGRAPHY_SECRET", hubTestSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"hub", "--redis", r.URL, "--addr", "127.0.0.1:0", "--allowed-origins", "https://app.example.com/"}, &stdout, &stderr)
	if code == 1 && strings.Contains(stderr.String(), "app.example.com/") {
		return // refused, naming the value: fine
	}
	p := startHubProcess(t, r.URL, "--allowed-origins", "https://app.example.com/")
	hdr := http.Header{"Origin": {"https://app.example.com"}}
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws", hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("--allowed-origins https://app.example.com/ was accepted (exit %d), but a page at https://app.example.com is refused: %v (HTTP %d)", code, err, status)
	}
	ws.Close()
}

// An empty --secret-file is reported as such, naming the file.
func TestEmptySecretFile(t *testing.T) {
	t.Setenv("TELEGRAPHY_SECRET", "")
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"token", "--secret-file", file}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), file) {
		t.Errorf("token --secret-file <empty file>: exit %d, stderr %q; want an error naming %s", code, stderr.String(), file)
	}
}
