package jsclient_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telegraphy-go/telegraphy/broker"
	"github.com/telegraphy-go/telegraphy/events"
	"github.com/telegraphy-go/telegraphy/hub"
	"github.com/telegraphy-go/telegraphy/internal/testenv"
	"github.com/telegraphy-go/telegraphy/tokens"
)

// hubServer is a real hub on a fixed 127.0.0.1 address that the test can
// stop and start again over the same broker, as a restarted hub process.
type hubServer struct {
	broker broker.Broker
	secret []byte
	addr   string

	mu   sync.Mutex
	hub  *hub.Hub
	srv  *http.Server
	done chan struct{}
}

func (s *hubServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hub != nil {
		return nil
	}
	h, err := hub.New(hub.Config{
		Broker:   s.broker,
		Secret:   s.secret,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Presence: []string{"presence.*"},
	})
	if err != nil {
		return err
	}
	var l net.Listener
	for i := 0; ; i++ {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		if i == 50 {
			_ = h.Close(context.Background())
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.addr = l.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/telegraphy/", http.StripPrefix("/telegraphy", h))
	s.hub, s.srv, s.done = h, &http.Server{Handler: mux}, make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(l)
	}(s.srv, s.done)
	return nil
}

func (s *hubServer) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hub == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The hub closes its WebSockets (hijacked, so unknown to the server);
	// the server then stops listening.
	err := s.hub.Close(ctx)
	if err2 := s.srv.Shutdown(ctx); err == nil {
		err = err2
	}
	<-s.done
	s.hub, s.srv = nil, nil
	return err
}

type publishItem struct {
	Channels []string        `json:"channels"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	ID       string          `json:"id"`
	EventID  string          `json:"eventID"`
	PK       json.RawMessage `json:"pk"`
	Version  json.RawMessage `json:"version"`
}

// control is the HTTP API the node tests drive the Go side with. The
// query parameter hub picks the hub ("main" when absent).
// The stale-event test's app, when given, is served under /stale/ (see
// cardApps).
func control(t *testing.T, hubs map[string]*hubServer, issuer *tokens.Issuer, cards *cardApps) http.Handler {
	mux := http.NewServeMux()
	if cards != nil {
		mux.Handle("/stale/", cards.handler(t))
	}
	mux.Handle("/app/", noteApp(t, hubs["main"].broker))
	mux.Handle("/orders/", orderApp(t, hubs["main"].broker))
	pick := func(r *http.Request) *hubServer {
		if name := r.URL.Query().Get("hub"); name != "" {
			return hubs[name]
		}
		return hubs["main"]
	}
	fail := func(w http.ResponseWriter, err error) {
		t.Logf("control: %v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	mux.HandleFunc("GET /hub/url", func(w http.ResponseWriter, r *http.Request) {
		hs := pick(r)
		hs.mu.Lock()
		defer hs.mu.Unlock()
		_, _ = io.WriteString(w, "ws://"+hs.addr+"/telegraphy/ws")
	})
	mux.HandleFunc("POST /hub/stop", func(w http.ResponseWriter, r *http.Request) {
		if err := pick(r).stop(); err != nil {
			fail(w, err)
		}
	})
	mux.HandleFunc("POST /hub/start", func(w http.ResponseWriter, r *http.Request) {
		if err := pick(r).start(); err != nil {
			fail(w, err)
		}
	})
	mux.HandleFunc("GET /token", func(w http.ResponseWriter, r *http.Request) {
		var channels []string
		if c := r.URL.Query().Get("channels"); c != "" {
			channels = strings.Split(c, ",")
		}
		var info json.RawMessage
		if i := r.URL.Query().Get("info"); i != "" {
			info = json.RawMessage(i)
		}
		tok, err := issuer.IssueInfo(r.URL.Query().Get("sub"), channels, info)
		if err != nil {
			fail(w, err)
			return
		}
		_, _ = io.WriteString(w, tok)
	})
	// The token endpoint an app mounts, for fromPage's tokenURL; the
	// query names the user and the channels.
	mux.Handle("/token-endpoint", tokens.Handler(tokens.HandlerConfig{
		Issuer: issuer,
		Authorize: func(r *http.Request) (string, []string, error) {
			sub := r.URL.Query().Get("sub")
			if sub == "" {
				return "", nil, tokens.ErrUnauthorized
			}
			return sub, strings.Split(r.URL.Query().Get("channels"), ","), nil
		},
	}))
	mux.HandleFunc("GET /position", func(w http.ResponseWriter, r *http.Request) {
		res, err := pick(r).broker.History(r.Context(), r.URL.Query().Get("channel"), nil)
		if err != nil {
			fail(w, err)
			return
		}
		_ = json.NewEncoder(w).Encode(res.Position)
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		var items []publishItem
		if err := json.NewDecoder(r.Body).Decode(&items); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msgs := make([]broker.Message, 0, len(items))
		out := make([]map[string]string, 0, len(items))
		for _, it := range items {
			e := events.Event{Name: "test.Item", Meta: events.Meta{
				EventType: it.Type, Timestamp: events.Timestamp(time.Now()), ID: it.ID,
			}, Data: it.Data}
			if it.PK != nil {
				e.Meta.PK = it.PK
			}
			if it.Version != nil {
				e.Meta.Version = it.Version
			}
			if e.Meta.ID == "" {
				e.Meta.ID = events.NewID()
			}
			data, err := e.Encode()
			if err != nil {
				fail(w, err)
				return
			}
			id := it.EventID
			if id == "" {
				id = e.Meta.ID
			}
			msgs = append(msgs, broker.Message{EventID: id, Channels: it.Channels, Data: data})
			out = append(out, map[string]string{"id": e.Meta.ID})
		}
		// One call, so the hub gets many publications at once and batches
		// them into frames.
		if err := pick(r).broker.Publish(r.Context(), msgs...); err != nil {
			fail(w, err)
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	return mux
}

// nodeCommand returns node and the flags it needs for a global WebSocket
// (a flag before Node 22), or skips the test when node is missing.
func nodeCommand(t *testing.T) (string, []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node not on PATH")
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	major, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0], "v"))
	if major < 20 {
		testenv.Missing(t, "node %s is older than 20", strings.TrimSpace(string(out)))
	}
	if major < 22 {
		return node, []string{"--experimental-websocket", "--no-warnings=ExperimentalWarning"}
	}
	return node, nil
}

// TestNode runs the node tests of telegraphy.js (test/*.test.mjs) against a
// real hub and memory broker on 127.0.0.1.
func TestNode(t *testing.T) {
	testenv.SkipIfShort(t, "runs the node test suite")
	nodeCommand(t) // skips without node
	issuer, err := tokens.NewIssuer(tokens.IssuerConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	hubs := map[string]*hubServer{
		"main": {broker: broker.NewMemory()},
		// A broker that keeps almost nothing: a burst overflows the hub's
		// subscription and the hub cannot fill the gap from history.
		"lossy": {broker: broker.NewMemory(broker.MemoryConfig{SubscriberBuffer: 1, HistorySize: 2})},
	}
	for name, hs := range hubs {
		hs.secret, hs.addr = testSecret, "127.0.0.1:0"
		if err := hs.start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := hs.stop(); err != nil {
				t.Errorf("stop hub %s: %v", name, err)
			}
			_ = hs.broker.Close(context.Background())
		}()
	}
	ctl := httptest.NewServer(control(t, hubs, issuer, nil))
	defer ctl.Close()

	files, err := filepath.Glob("test/*.test.mjs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no node tests found: %v", err)
	}
	runNode(t, ctl.URL, files...)
}

// runNode runs node --test on files, one at a time, with the control
// server at ctlURL.
func runNode(t *testing.T, ctlURL string, files ...string) {
	node, flags := nodeCommand(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One file at a time: the recovery tests stop the shared hub.
	args := append(flags, "--test", "--test-concurrency=1", "--test-reporter=spec")
	cmd := exec.CommandContext(ctx, node, append(args, files...)...)
	cmd.Env = append(os.Environ(), "TELEGRAPHY_TEST_CONTROL="+ctlURL, "NO_COLOR=1")
	// node --test runs each file in a child process: kill the whole group
	// on timeout so none outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("node --test output:\n%s", out)
	}
	if ctx.Err() != nil {
		t.Fatalf("node tests did not finish in time")
	}
	if err != nil {
		t.Fatalf("node tests failed: %v", err)
	}
}
